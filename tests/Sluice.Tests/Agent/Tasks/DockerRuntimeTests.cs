using System.Text;
using Sluice.Agent.Tasks;
using Sluice.Compute.Protocol;
using Sluice.Tests.TestSupport;

namespace Sluice.Tests.Agent.Tasks;

public sealed class DockerRuntimeTests
{
    private static TaskSpec Container(IReadOnlyList<int> gpus, IReadOnlyDictionary<string, string>? secrets = null) => new()
    {
        TaskId = "task/7 x",
        Generation = 3,
        Kind = TaskKinds.ModelServer,
        Runtime = TaskRuntimes.Container,
        Container = new ContainerRuntimeSpec
        {
            Image = "vllm/vllm-openai:v0.6.3",
            Command = ["--model", "m", "--port", "8000"],
            Environment = new Dictionary<string, string> { ["HF_HOME"] = "/models", ["SELF"] = "http://127.0.0.1:{port}" },
            ContainerPort = 8000,
        },
        GpuIndices = gpus,
        Secrets = secrets,
    };

    [Fact]
    public void The_create_request_asks_for_the_assigned_GPUs_and_publishes_the_port_on_loopback_only()
    {
        var body = DockerRuntime.CreateBody(Container([1, 3]), 41234, secretsDirectory: null);

        Assert.Equal("vllm/vllm-openai:v0.6.3", body["Image"]!.GetValue<string>());
        Assert.Equal(["--model", "m", "--port", "8000"], body["Cmd"]!.AsArray().Select(n => n!.GetValue<string>()));
        var host = body["HostConfig"]!;
        var device = host["DeviceRequests"]!.AsArray().Single()!;
        Assert.Equal("nvidia", device["Driver"]!.GetValue<string>());
        Assert.Equal(["1", "3"], device["DeviceIDs"]!.AsArray().Select(n => n!.GetValue<string>()));
        Assert.Equal("gpu", device["Capabilities"]![0]![0]!.GetValue<string>());
        var binding = host["PortBindings"]!["8000/tcp"]!.AsArray().Single()!;
        Assert.Equal(("127.0.0.1", "41234"), (binding["HostIp"]!.GetValue<string>(), binding["HostPort"]!.GetValue<string>()));
        Assert.NotNull(body["ExposedPorts"]!["8000/tcp"]);
        Assert.Equal("no", host["RestartPolicy"]!["Name"]!.GetValue<string>()); // the agent restarts it, with backoff
        var env = body["Env"]!.AsArray().Select(n => n!.GetValue<string>()).ToList();
        Assert.Contains("HF_HOME=/models", env);
        Assert.Contains("SELF=http://127.0.0.1:41234", env);
        Assert.Contains("PORT=8000", env);
        Assert.DoesNotContain(env, e => e.StartsWith("NVIDIA_VISIBLE_DEVICES", StringComparison.Ordinal));
        Assert.Equal("task/7 x", body["Labels"]!["sluice.task_id"]!.GetValue<string>());
    }

    [Fact]
    public void A_container_without_GPUs_sees_none_and_secrets_are_files_on_a_tmpfs_never_in_its_configuration()
    {
        var secret = "hf_canary_" + Guid.NewGuid().ToString("N");
        var body = DockerRuntime.CreateBody(Container([], new Dictionary<string, string> { ["HF_TOKEN"] = secret }), 41234, "/dev/shm/sluice-x/secrets");

        Assert.Null(body["HostConfig"]!["DeviceRequests"]);
        var env = body["Env"]!.AsArray().Select(n => n!.GetValue<string>()).ToList();
        Assert.Contains("NVIDIA_VISIBLE_DEVICES=void", env);
        Assert.Contains("HF_TOKEN_FILE=/run/secrets/HF_TOKEN", env);
        Assert.Equal("/dev/shm/sluice-x/secrets:/run/secrets:ro", body["HostConfig"]!["Binds"]![0]!.GetValue<string>());
        Canary.AssertAbsent(body.ToJsonString(), secret, "the container's configuration (Docker keeps it on disk)");
    }

    [Fact]
    public void Image_references_and_container_names_are_mapped_for_the_API()
    {
        Assert.Equal(("vllm/vllm-openai", "v0.6.3"), DockerRuntime.SplitImage("vllm/vllm-openai:v0.6.3"));
        Assert.Equal(("registry:5000/team/engine", "latest"), DockerRuntime.SplitImage("registry:5000/team/engine"));
        Assert.Equal(("ubuntu@sha256:abc", null), DockerRuntime.SplitImage("ubuntu@sha256:abc"));
        Assert.Equal("sluice-task-task-7-x-g3", DockerRuntime.ContainerName(Container([])));
    }

    [Fact]
    public async Task Dockers_multiplexed_log_stream_becomes_lines_in_the_tasks_buffer()
    {
        static byte[] Frame(byte stream, string text)
        {
            var payload = Encoding.UTF8.GetBytes(text);
            return [stream, 0, 0, 0, (byte)(payload.Length >> 24), (byte)(payload.Length >> 16), (byte)(payload.Length >> 8), (byte)payload.Length, .. payload];
        }

        using var stream = new MemoryStream([.. Frame(1, "loading model\npar"), .. Frame(2, "tial line\r\n"), .. Frame(1, "last")]);
        var log = new TaskLog(4096);
        await DockerRuntime.ReadFramesAsync(stream, raw: false, log, TestContext.Current.CancellationToken);
        Assert.Equal(["loading model", "partial line", "last"], log.Lines());
    }

    [Fact]
    public void The_task_log_keeps_the_newest_lines_within_its_bound()
    {
        var log = new TaskLog(100);
        for (var i = 0; i < 100; i++)
        {
            log.Append($"line {i}");
        }

        Assert.True(log.Bytes <= 100);
        Assert.Equal("line 99", log.Lines()[^1]);
        Assert.True(log.Dropped > 0);
        log.Append(new string('x', 1000));
        Assert.Equal([new string('x', 50)], log.Lines());
        log.Clear();
        Assert.Empty(log.Lines());
    }
}
