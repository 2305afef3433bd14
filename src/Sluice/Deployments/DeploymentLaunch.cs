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
}

[JsonSourceGenerationOptions(JsonSerializerDefaults.Web, DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(DeploymentLaunchSettings))]
[JsonSerializable(typeof(Dictionary<string, string>))]
public sealed partial class DeploymentJson : JsonSerializerContext;

/// <summary>
/// Turns a deployment into the task a replica runs: which command or image, with which arguments, probe and
/// environment, for each engine. The scheduler calls it for every replica it places; routing calls
/// <see cref="ServedModelName"/> to name the model in requests it forwards.
/// </summary>
public static class DeploymentLaunch
{
    /// <summary>The model name the engine serves, which routing writes into each forwarded request's <c>model</c>.</summary>
    public static string ServedModelName(Deployment deployment) => deployment.Name;

    /// <summary>The task spec for one replica (task id, generation and GPU indices are set by placement).</summary>
    public static TaskSpec ToTaskSpec(Deployment deployment, IReadOnlyDictionary<string, string>? secrets)
    {
        var settings = JsonSerializer.Deserialize(deployment.LaunchJson, DeploymentJson.Default.DeploymentLaunchSettings) ?? new DeploymentLaunchSettings();
        return deployment.Engine switch
        {
            DeploymentEngines.BuiltInLlama => new TaskSpec
            {
                TaskId = "",
                Generation = deployment.Generation,
                Kind = TaskKinds.ModelServer,
                Runtime = TaskRuntimes.Process,
                Process = new ProcessRuntimeSpec
                {
                    Command = AgentPaths.SluiceCommand,
                    Args = ["engine", "llama", "--model", deployment.Artifact ?? "", "--port", "{port}", "--model-id", ServedModelName(deployment), .. settings.EngineArgs],
                    Environment = settings.Environment,
                },
                Probe = settings.Probe ?? new ProbeSpec { Path = "/health" },
                Secrets = secrets,
            },
            _ => throw new NotSupportedException($"Engine {deployment.Engine} has no launch yet."),
        };
    }
}
