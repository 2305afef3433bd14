using System.Text.Json;
using System.Text.Json.Serialization;
using Sluice.Compute.Protocol;

namespace Sluice.Deployments;

/// <summary>
/// A deployment's launch settings (<see cref="Deployment.LaunchJson"/>): extra engine arguments and, for custom engines,
/// the command or container. No secrets (those are <see cref="Deployment.SecretsSealed"/>).
/// </summary>
public sealed record DeploymentLaunchSettings
{
    /// <summary>Extra arguments appended to the engine's command line (vLLM's <c>--max-model-len 8192</c>).</summary>
    public IReadOnlyList<string> EngineArgs { get; init; } = [];

    /// <summary>custom-command: the executable and its arguments (<c>{port}</c> is replaced by the task's port).</summary>
    public string? Command { get; init; }

    public IReadOnlyList<string>? Args { get; init; }

    /// <summary>custom-container (and container-run engines): the image and the port it serves on.</summary>
    public string? Image { get; init; }

    public int? ContainerPort { get; init; }

    /// <summary>Non-secret environment for the engine.</summary>
    public IReadOnlyDictionary<string, string>? Environment { get; init; }

    /// <summary><see cref="TaskRuntimes"/>: process or container; null means the engine's default.</summary>
    public string? Runtime { get; init; }

    /// <summary>Readiness and liveness probe; null means the engine's default.</summary>
    public ProbeSpec? Probe { get; init; }

    /// <summary>
    /// custom engines: the model name the server expects in a request's <c>model</c> (routing writes it there); null
    /// means the deployment's name.
    /// </summary>
    public string? ServedModel { get; init; }
}

[JsonSourceGenerationOptions(JsonSerializerDefaults.Web, DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(DeploymentLaunchSettings))]
[JsonSerializable(typeof(Dictionary<string, string>))]
public sealed partial class DeploymentJson : JsonSerializerContext;

/// <summary>
/// Turns a deployment into the task a replica runs: which command or image, with which arguments, probe and
/// environment, for each engine. The scheduler calls it for every replica it places; routing calls
/// <see cref="ServedModelName"/> to name the model in requests it forwards. Secrets only ever go into
/// <see cref="TaskSpec.Secrets"/> (the engine's environment), never into arguments.
/// </summary>
public static class DeploymentLaunch
{
    public const string VllmImage = "vllm/vllm-openai:latest";
    public const int VllmContainerPort = 8000;
    public const string OllamaImage = "ollama/ollama:latest";
    public const int OllamaContainerPort = 11434;
    public const string TgiImage = "ghcr.io/huggingface/text-generation-inference:latest";
    public const int TgiContainerPort = 80;

    /// <summary>The environment variable the Ollama launcher reads the tag to pull from.</summary>
    public const string OllamaModelVariable = "SLUICE_OLLAMA_MODEL";

    /// <summary>
    /// Ollama as a process: pulls the tag with a private server on 127.0.0.2 (same port, another loopback address, so
    /// the agent's probe cannot see it), then serves on 127.0.0.1:{port}, so the replica is ready only once the model is
    /// on the machine. A pull that keeps failing ends the task after 10 tries (the agent reports it failed).
    /// </summary>
    public const string OllamaLauncher =
        "p=\"$PORT\"; OLLAMA_HOST=127.0.0.2:$p ollama serve & s=$!; n=0; " +
        "until OLLAMA_HOST=127.0.0.2:$p ollama pull \"$SLUICE_OLLAMA_MODEL\"; do n=$((n+1)); [ $n -ge 10 ] && { kill $s; exit 3; }; sleep 3; done; " +
        "kill $s; wait $s; exec ollama serve";

    /// <summary>
    /// The model name the engine serves, which routing writes into each forwarded request's <c>model</c>: the
    /// deployment's name, except for Ollama (the tag it pulled) and custom engines that name another.
    /// </summary>
    public static string ServedModelName(Deployment deployment)
    {
        if (deployment.Engine == DeploymentEngines.Ollama && !string.IsNullOrEmpty(deployment.Artifact))
        {
            return deployment.Artifact;
        }

        if (deployment.Engine is DeploymentEngines.CustomCommand or DeploymentEngines.CustomContainer && Settings(deployment).ServedModel is { Length: > 0 } served)
        {
            return served;
        }

        return deployment.Name;
    }

    /// <summary>The deployment's launch settings (defaults when its JSON is empty).</summary>
    public static DeploymentLaunchSettings Settings(Deployment deployment) =>
        string.IsNullOrWhiteSpace(deployment.LaunchJson)
            ? new DeploymentLaunchSettings()
            : JsonSerializer.Deserialize(deployment.LaunchJson, DeploymentJson.Default.DeploymentLaunchSettings) ?? new DeploymentLaunchSettings();

    /// <summary>The runtime the engine runs in: the settings' choice, else the engine's default.</summary>
    public static string Runtime(string engine, DeploymentLaunchSettings settings) => settings.Runtime ?? engine switch
    {
        DeploymentEngines.Tgi or DeploymentEngines.CustomContainer => TaskRuntimes.Container,
        _ => TaskRuntimes.Process,
    };

    /// <summary>The task spec for one replica (task id, generation and GPU indices are set by placement).</summary>
    public static TaskSpec ToTaskSpec(Deployment deployment, IReadOnlyDictionary<string, string>? secrets)
    {
        var settings = Settings(deployment);
        var name = ServedModelName(deployment);
        var artifact = deployment.Artifact ?? "";
        var extra = settings.EngineArgs ?? [];
        var runtime = Runtime(deployment.Engine, settings);
        var health = settings.Probe ?? new ProbeSpec { Path = "/health" };
        ProcessRuntimeSpec? process = null;
        ContainerRuntimeSpec? container = null;
        switch (deployment.Engine, runtime)
        {
            case (DeploymentEngines.BuiltInLlama, _):
                runtime = TaskRuntimes.Process;
                process = Process(AgentPaths.SluiceCommand, ["engine", "llama", "--model", artifact, "--port", "{port}", "--model-id", name, .. extra], settings.Environment);
                break;
            case (DeploymentEngines.BuiltInEmbeddings, _):
                runtime = TaskRuntimes.Process;
                process = Process(AgentPaths.SluiceCommand, ["engine", "embeddings", "--port", "{port}", "--model-id", name, .. extra], settings.Environment);
                break;
            case (DeploymentEngines.Vllm, TaskRuntimes.Container):
                container = Container(settings.Image ?? VllmImage, ["--model", artifact, "--served-model-name", name, "--port", Port(settings, VllmContainerPort), .. extra],
                    settings.Environment, settings.ContainerPort ?? VllmContainerPort);
                break;
            case (DeploymentEngines.Vllm, _):
                process = Process(settings.Command ?? "vllm", ["serve", artifact, "--host", "127.0.0.1", "--port", "{port}", "--served-model-name", name, .. extra], settings.Environment);
                break;
            case (DeploymentEngines.LlamaCpp, _):
                runtime = TaskRuntimes.Process;
                process = Process(settings.Command ?? "llama-server",
                    [deployment.ArtifactKind == ArtifactKinds.Hub ? "-hf" : "-m", artifact, "--host", "127.0.0.1", "--port", "{port}", "--alias", name, .. extra], settings.Environment);
                break;
            case (DeploymentEngines.Ollama, TaskRuntimes.Container):
                container = Container(settings.Image ?? OllamaImage, ["serve", .. extra],
                    With(settings.Environment, "OLLAMA_HOST", $"0.0.0.0:{settings.ContainerPort ?? OllamaContainerPort}"), settings.ContainerPort ?? OllamaContainerPort);
                health = settings.Probe ?? new ProbeSpec { Path = "/v1/models" };
                break;
            case (DeploymentEngines.Ollama, _):
                process = Process(settings.Command ?? "/bin/sh", ["-c", OllamaLauncher, .. extra],
                    With(With(settings.Environment, "OLLAMA_HOST", "127.0.0.1:{port}"), OllamaModelVariable, artifact));
                health = settings.Probe ?? new ProbeSpec { Path = "/v1/models" };
                break;
            case (DeploymentEngines.Tgi, TaskRuntimes.Process):
                process = Process(settings.Command ?? "text-generation-launcher", ["--model-id", artifact, "--hostname", "127.0.0.1", "--port", "{port}", .. extra], settings.Environment);
                break;
            case (DeploymentEngines.Tgi, _):
                container = Container(settings.Image ?? TgiImage, ["--model-id", artifact, "--port", Port(settings, TgiContainerPort), .. extra],
                    settings.Environment, settings.ContainerPort ?? TgiContainerPort);
                break;
            case (DeploymentEngines.CustomCommand, _):
                runtime = TaskRuntimes.Process;
                process = Process(settings.Command ?? "", [.. settings.Args ?? [], .. extra], settings.Environment);
                break;
            case (DeploymentEngines.CustomContainer, _):
                runtime = TaskRuntimes.Container;
                container = Container(settings.Image ?? "", settings.Args is null && extra.Count == 0 ? null : [.. settings.Args ?? [], .. extra],
                    settings.Environment, settings.ContainerPort);
                break;
            default:
                throw new NotSupportedException($"Engine {deployment.Engine} has no launch.");
        }

        return new TaskSpec
        {
            TaskId = "",
            Generation = deployment.Generation,
            Kind = TaskKinds.ModelServer,
            Runtime = runtime,
            Process = process,
            Container = container,
            Probe = health,
            Secrets = secrets is { Count: > 0 } ? secrets : null,
        };
    }

    private static string Port(DeploymentLaunchSettings settings, int fallback) =>
        (settings.ContainerPort ?? fallback).ToString(System.Globalization.CultureInfo.InvariantCulture);

    private static ProcessRuntimeSpec Process(string command, IReadOnlyList<string> args, IReadOnlyDictionary<string, string>? environment) =>
        new() { Command = command, Args = args, Environment = environment is { Count: > 0 } ? environment : null };

    private static ContainerRuntimeSpec Container(string image, IReadOnlyList<string>? command, IReadOnlyDictionary<string, string>? environment, int? port) =>
        new() { Image = image, Command = command, Environment = environment is { Count: > 0 } ? environment : null, ContainerPort = port };

    private static Dictionary<string, string> With(IReadOnlyDictionary<string, string>? environment, string name, string value)
    {
        var result = new Dictionary<string, string>(environment ?? new Dictionary<string, string>(), StringComparer.Ordinal);
        result.TryAdd(name, value);
        return result;
    }
}
