using System.Text.Json;
using Sluice.Compute.Protocol;
using Sluice.Deployments;

namespace Sluice.Tests.Deployments;

/// <summary>What each engine's replica runs: command or image, arguments, probe; secrets only in the environment.</summary>
public sealed class DeploymentLaunchTests
{
    private const string Secret = "canary-launch-secret-5d1f";

    private static Deployment Deployment(string engine, string artifactKind, string? artifact, DeploymentLaunchSettings? launch = null, string name = "acme/model") => new()
    {
        Id = Guid.NewGuid(),
        OrganizationId = Guid.NewGuid(),
        Name = name,
        Engine = engine,
        ArtifactKind = artifactKind,
        Artifact = artifact,
        LaunchJson = JsonSerializer.Serialize(launch ?? new DeploymentLaunchSettings(), DeploymentJson.Default.DeploymentLaunchSettings),
        Generation = 3,
        Status = DeploymentStatuses.Pending,
        CreatedBy = "test",
    };

    private static TaskSpec Spec(Deployment deployment)
    {
        var spec = DeploymentLaunch.ToTaskSpec(deployment, new Dictionary<string, string> { ["HF_TOKEN"] = Secret });
        Assert.Equal((TaskKinds.ModelServer, 3), (spec.Kind, spec.Generation));
        Assert.Equal(Secret, spec.Secrets!["HF_TOKEN"]);
        var visible = JsonSerializer.Serialize(spec with { Secrets = null }, ComputeJson.Default.TaskSpec);
        Assert.DoesNotContain(Secret, visible, StringComparison.Ordinal);
        return spec;
    }

    [Fact]
    public void The_built_in_engines_run_the_agents_own_executable()
    {
        var llama = Spec(Deployment(DeploymentEngines.BuiltInLlama, ArtifactKinds.Path, "/models/tiny.gguf", new DeploymentLaunchSettings { EngineArgs = ["--context-size", "4096"] }));
        Assert.Equal((TaskRuntimes.Process, AgentPaths.SluiceCommand, "/health"), (llama.Runtime, llama.Process!.Command, llama.Probe!.Path));
        Assert.Equal(["engine", "llama", "--model", "/models/tiny.gguf", "--port", "{port}", "--model-id", "acme/model", "--context-size", "4096"], llama.Process.Args);

        var embeddings = Spec(Deployment(DeploymentEngines.BuiltInEmbeddings, ArtifactKinds.None, null, name: "embed"));
        Assert.Equal(AgentPaths.SluiceCommand, embeddings.Process!.Command);
        Assert.Equal(["engine", "embeddings", "--port", "{port}", "--model-id", "embed"], embeddings.Process.Args);
        Assert.Equal("/health", embeddings.Probe!.Path);
        Assert.Equal("embed", DeploymentLaunch.ServedModelName(Deployment(DeploymentEngines.BuiltInEmbeddings, ArtifactKinds.None, null, name: "embed")));
    }

    [Fact]
    public void Vllm_runs_as_a_process_or_in_its_container()
    {
        var process = Spec(Deployment(DeploymentEngines.Vllm, ArtifactKinds.Hub, "Qwen/Qwen2.5-0.5B-Instruct", new DeploymentLaunchSettings { EngineArgs = ["--max-model-len", "8192"] }));
        Assert.Equal((TaskRuntimes.Process, "vllm"), (process.Runtime, process.Process!.Command));
        Assert.Equal(["serve", "Qwen/Qwen2.5-0.5B-Instruct", "--host", "127.0.0.1", "--port", "{port}", "--served-model-name", "acme/model", "--max-model-len", "8192"], process.Process.Args);
        Assert.Equal("/health", process.Probe!.Path);

        var container = Spec(Deployment(DeploymentEngines.Vllm, ArtifactKinds.Hub, "Qwen/Qwen2.5-0.5B-Instruct", new DeploymentLaunchSettings { Runtime = TaskRuntimes.Container }));
        Assert.Equal((TaskRuntimes.Container, DeploymentLaunch.VllmImage, 8000), (container.Runtime, container.Container!.Image, container.Container.ContainerPort));
        Assert.Equal(["--model", "Qwen/Qwen2.5-0.5B-Instruct", "--served-model-name", "acme/model", "--port", "8000"], container.Container.Command);
        Assert.Null(container.Process);
    }

    [Fact]
    public void Llama_cpp_serves_a_file_or_a_hub_repository_under_the_deployments_name()
    {
        var file = Spec(Deployment(DeploymentEngines.LlamaCpp, ArtifactKinds.Path, "/models/tiny.gguf"));
        Assert.Equal("llama-server", file.Process!.Command);
        Assert.Equal(["-m", "/models/tiny.gguf", "--host", "127.0.0.1", "--port", "{port}", "--alias", "acme/model"], file.Process.Args);
        var hub = Spec(Deployment(DeploymentEngines.LlamaCpp, ArtifactKinds.Hub, "ggml-org/gemma-3-1b-it-GGUF", new DeploymentLaunchSettings { Command = "/opt/llama/llama-server" }));
        Assert.Equal("/opt/llama/llama-server", hub.Process!.Command);
        Assert.Equal("-hf", hub.Process.Args[0]);
        Assert.Equal("/health", hub.Probe!.Path);
    }

    [Fact]
    public void Ollama_pulls_its_tag_before_it_serves_and_answers_to_the_tag()
    {
        var deployment = Deployment(DeploymentEngines.Ollama, ArtifactKinds.Hub, "llama3.2:1b");
        var process = Spec(deployment);
        Assert.Equal(("/bin/sh", "-c", DeploymentLaunch.OllamaLauncher), (process.Process!.Command, process.Process.Args[0], process.Process.Args[1]));
        Assert.Equal("127.0.0.1:{port}", process.Process.Environment!["OLLAMA_HOST"]);
        Assert.Equal("llama3.2:1b", process.Process.Environment[DeploymentLaunch.OllamaModelVariable]);
        Assert.Equal("/v1/models", process.Probe!.Path);
        Assert.Equal("llama3.2:1b", DeploymentLaunch.ServedModelName(deployment));

        var container = Spec(Deployment(DeploymentEngines.Ollama, ArtifactKinds.Hub, "llama3.2:1b", new DeploymentLaunchSettings { Runtime = TaskRuntimes.Container }));
        Assert.Equal((DeploymentLaunch.OllamaImage, 11434, "0.0.0.0:11434"), (container.Container!.Image, container.Container.ContainerPort, container.Container.Environment!["OLLAMA_HOST"]));
    }

    [Fact]
    public void Tgi_runs_its_container_by_default()
    {
        var spec = Spec(Deployment(DeploymentEngines.Tgi, ArtifactKinds.Hub, "bigscience/bloom-560m"));
        Assert.Equal((TaskRuntimes.Container, DeploymentLaunch.TgiImage, 80, "/health"), (spec.Runtime, spec.Container!.Image, spec.Container.ContainerPort, spec.Probe!.Path));
        Assert.Equal(["--model-id", "bigscience/bloom-560m", "--port", "80"], spec.Container.Command);
    }

    [Fact]
    public void Custom_engines_run_as_given_with_their_own_probe_and_model_name()
    {
        var command = Deployment(DeploymentEngines.CustomCommand, ArtifactKinds.None, null, new DeploymentLaunchSettings
        {
            Command = "/opt/server", Args = ["--listen", "127.0.0.1:{port}"], EngineArgs = ["--verbose"], Environment = new Dictionary<string, string> { ["MODE"] = "fast" },
            Probe = new ProbeSpec { Path = "/v1/models", StartupTimeoutSeconds = 60 }, ServedModel = "my-model",
        });
        var spec = Spec(command);
        Assert.Equal(("/opt/server", "/v1/models", 60), (spec.Process!.Command, spec.Probe!.Path, spec.Probe.StartupTimeoutSeconds));
        Assert.Equal(["--listen", "127.0.0.1:{port}", "--verbose"], spec.Process.Args);
        Assert.Equal("fast", spec.Process.Environment!["MODE"]);
        Assert.Equal("my-model", DeploymentLaunch.ServedModelName(command));

        var container = Spec(Deployment(DeploymentEngines.CustomContainer, ArtifactKinds.None, null, new DeploymentLaunchSettings { Image = "ghcr.io/acme/server:1", ContainerPort = 9000 }));
        Assert.Equal((TaskRuntimes.Container, "ghcr.io/acme/server:1", 9000, "/health"), (container.Runtime, container.Container!.Image, container.Container.ContainerPort, container.Probe!.Path));
        Assert.Null(container.Container.Command);
    }
}
