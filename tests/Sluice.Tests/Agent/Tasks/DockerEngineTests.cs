using System.Collections.Concurrent;
using System.Text;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using Sluice.Compute.Protocol;
using Sluice.Tests.TestSupport;

namespace Sluice.Tests.Agent.Tasks;

/// <summary>
/// The container runtime against a Docker Engine API stand-in on a Unix socket (Docker is outside Sluice and not on
/// this machine): the calls the agent makes, in order, and what happens to a task's secrets.
/// </summary>
public sealed class DockerEngineTests
{
    [Fact]
    [System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
    public async Task A_container_task_is_pulled_created_with_its_GPUs_and_loopback_port_started_logged_stopped_and_removed()
    {
        var root = Path.Combine(Path.GetTempPath(), "sluice-docker-" + Guid.NewGuid().ToString("N")[..12]);
        Directory.CreateDirectory(root);
        var secretsRoot = Path.Combine(root, "shm");
        Directory.CreateDirectory(secretsRoot);
        await using var docker = await FakeDocker.StartAsync(Path.Combine(root, "docker.sock"));
        var secret = "hf_canary_" + Guid.NewGuid().ToString("N");
        try
        {
            await using var kit = new TaskKit(TaskKit.Fast with { DockerSocket = docker.Socket, SecretsRoot = secretsRoot, StopGrace = TimeSpan.FromSeconds(3) });
            kit.Supervisor.Apply([new TaskSpec
            {
                TaskId = "vllm-1",
                Generation = 2,
                Kind = TaskKinds.ModelServer,
                Runtime = TaskRuntimes.Container,
                Container = new ContainerRuntimeSpec { Image = "vllm/vllm-openai:v0.6.3", ContainerPort = 8000, Command = ["--port", "8000"] },
                GpuIndices = [0, 1],
                Secrets = new Dictionary<string, string> { ["HF_TOKEN"] = secret },
            }]);

            await kit.WaitForStateAsync("vllm-1", TaskStates.Ready);
            await AgentWait.Until(() => kit.LogText("vllm-1").Contains("engine up", StringComparison.Ordinal), "the container's log to reach the task's buffer");
            Assert.Equal(
                ["POST /v1.41/images/create?fromImage=vllm%2Fvllm-openai&tag=v0.6.3", "DELETE /v1.41/containers/sluice-task-vllm-1-g2?force=true",
                 "POST /v1.41/containers/create?name=sluice-task-vllm-1-g2", "POST /v1.41/containers/c0ffee/start"],
                docker.Calls.Where(c => !c.Contains("/wait", StringComparison.Ordinal) && !c.Contains("/logs", StringComparison.Ordinal)).ToList());

            var body = JsonNode.Parse(docker.CreateBody!)!;
            Assert.Equal(["0", "1"], body["HostConfig"]!["DeviceRequests"]![0]!["DeviceIDs"]!.AsArray().Select(n => n!.GetValue<string>()));
            Assert.Equal("127.0.0.1", body["HostConfig"]!["PortBindings"]!["8000/tcp"]![0]!["HostIp"]!.GetValue<string>());
            var bind = body["HostConfig"]!["Binds"]![0]!.GetValue<string>();
            var secretsDir = bind[..bind.IndexOf(':', StringComparison.Ordinal)];
            Assert.Equal(secret, await File.ReadAllTextAsync(Path.Combine(secretsDir, "HF_TOKEN"), TestContext.Current.CancellationToken));
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute, File.GetUnixFileMode(Path.GetDirectoryName(secretsDir)!));
            Canary.AssertAbsent(docker.CreateBody!, secret, "the container's configuration");

            kit.Supervisor.Apply([]);
            await kit.WaitForStateAsync("vllm-1", TaskStates.Terminated);
            Assert.Equal(TaskReasons.Stopped, kit.Report("vllm-1")!.Reason);
            Assert.Contains("POST /v1.41/containers/c0ffee/stop?t=3", docker.Calls);
            Assert.Contains("DELETE /v1.41/containers/c0ffee?force=true", docker.Calls);
            Assert.False(Directory.Exists(secretsDir));
            Assert.Empty(Directory.GetFileSystemEntries(secretsRoot));
            Canary.AssertAbsent(kit.ReportJson() + kit.Logs.All, secret, "the reports and the agent's log");
        }
        finally
        {
            Directory.Delete(root, recursive: true);
        }
    }

    [Fact]
    public async Task An_image_Docker_cannot_find_fails_the_task_clearly()
    {
        var root = Path.Combine(Path.GetTempPath(), "sluice-docker-" + Guid.NewGuid().ToString("N")[..12]);
        Directory.CreateDirectory(root);
        await using var docker = await FakeDocker.StartAsync(Path.Combine(root, "docker.sock"));
        docker.PullStatus = 404;
        try
        {
            await using var kit = new TaskKit(TaskKit.Fast with { DockerSocket = docker.Socket });
            kit.Supervisor.Apply([new TaskSpec
            {
                TaskId = "c",
                Generation = 1,
                Kind = TaskKinds.Job,
                Runtime = TaskRuntimes.Container,
                Container = new ContainerRuntimeSpec { Image = "private/secret-image-name" },
            }]);
            await kit.WaitForStateAsync("c", TaskStates.Terminated);
            Assert.Equal((TaskReasons.Failed, "Docker could not find the task's image"), (kit.Report("c")!.Reason, kit.Report("c")!.Detail));
            Assert.DoesNotContain("secret-image-name", kit.ReportJson() + kit.Logs.All, StringComparison.Ordinal);
        }
        finally
        {
            Directory.Delete(root, recursive: true);
        }
    }

    private sealed class FakeDocker : IAsyncDisposable
    {
        private readonly WebApplication _app;
        private readonly TaskCompletionSource _stopped = new(TaskCreationOptions.RunContinuationsAsynchronously);

        private FakeDocker(WebApplication app, string socket)
        {
            _app = app;
            Socket = socket;
        }

        public string Socket { get; }

        public ConcurrentQueue<string> Calls { get; } = new();

        public string? CreateBody { get; private set; }

        public int PullStatus { get; set; } = 200;

        public static async Task<FakeDocker> StartAsync(string socket)
        {
            var builder = WebApplication.CreateSlimBuilder();
            builder.Logging.ClearProviders();
            builder.WebHost.ConfigureKestrel(k => k.ListenUnixSocket(socket));
            var app = builder.Build();
            var docker = new FakeDocker(app, socket);
            app.Run(docker.HandleAsync);
            await app.StartAsync(TestContext.Current.CancellationToken);
            return docker;
        }

        private async Task HandleAsync(HttpContext context)
        {
            var call = $"{context.Request.Method} {context.Request.Path}{context.Request.QueryString}";
            Calls.Enqueue(call);
            var path = context.Request.Path.Value!;
            if (path.EndsWith("/images/create", StringComparison.Ordinal))
            {
                context.Response.StatusCode = PullStatus;
                await context.Response.WriteAsync(PullStatus == 200 ? "{\"status\":\"Pulling from vllm/vllm-openai\"}\n{\"status\":\"Digest: sha256:1\"}\n" : "{\"message\":\"pull access denied\"}");
            }
            else if (path.EndsWith("/containers/create", StringComparison.Ordinal))
            {
                using var reader = new StreamReader(context.Request.Body);
                CreateBody = await reader.ReadToEndAsync();
                context.Response.StatusCode = 201;
                await context.Response.WriteAsync("{\"Id\":\"c0ffee\",\"Warnings\":[]}");
            }
            else if (path.EndsWith("/wait", StringComparison.Ordinal))
            {
                await _stopped.Task.WaitAsync(context.RequestAborted);
                await context.Response.WriteAsync("{\"StatusCode\":137}");
            }
            else if (path.EndsWith("/logs", StringComparison.Ordinal))
            {
                context.Response.ContentType = "application/vnd.docker.multiplexed-stream";
                var payload = Encoding.UTF8.GetBytes("engine up\n");
                await context.Response.Body.WriteAsync(new byte[] { 2, 0, 0, 0, 0, 0, 0, (byte)payload.Length });
                await context.Response.Body.WriteAsync(payload);
                await context.Response.Body.FlushAsync();
                await _stopped.Task.WaitAsync(context.RequestAborted);
            }
            else if (path.EndsWith("/stop", StringComparison.Ordinal))
            {
                _stopped.TrySetResult();
                context.Response.StatusCode = 204;
            }
            else if (context.Request.Method == "DELETE")
            {
                context.Response.StatusCode = path.Contains("sluice-task-", StringComparison.Ordinal) ? 404 : 204;
            }
            else
            {
                context.Response.StatusCode = 204;
            }
        }

        public async ValueTask DisposeAsync()
        {
            _stopped.TrySetResult();
            await _app.DisposeAsync();
        }
    }
}
