using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Sluice.Compute.Protocol;
using Sluice.Compute.Serving;
using Sluice.Storage;
using Sluice.Tests.TestSupport;

namespace Sluice.Tests.Compute;

/// <summary>
/// The compute plane with every part real: the server on loopback HTTP (in process, on a manual clock), two `sluice agent`
/// processes with a fake nvidia-smi on their PATH, a task running `sluice engine llama` on a tiny GGUF the test writes,
/// served through the agent's HTTPS endpoint by the server's pinned transport, and an agent killed with SIGKILL.
/// </summary>
[Collection(RealProcessLoad.Name)]
public sealed class ComputePlaneEndToEndTests
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(90);

    [Fact]
    public async Task Two_agents_join_report_and_serve_a_real_engine_and_a_killed_agent_goes_suspect_offline_lost_on_the_manual_clock()
    {
        var canary = $"canary-{Guid.NewGuid():N}";
        var clock = new ManualTimeProvider(DateTimeOffset.UtcNow);
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Sqlite);
        var port = SluiceProcess.FreePort();
        await using var sluice = new SluiceFactory(database, new Dictionary<string, string?>
        {
            ["Compute:HeartbeatInterval"] = "00:00:01",
            ["Compute:LivenessCheckInterval"] = "00:00:00.200",
            ["Compute:HeartbeatFlushInterval"] = "00:00:00.200",
            ["Compute:AllowLoopbackServing"] = "true", // both agents run on this host
        }, clock);
        sluice.UseKestrel(port);
        sluice.StartServer();
        var server = $"http://127.0.0.1:{port}";
        var operatorClient = sluice.CreateClient(new Microsoft.AspNetCore.Mvc.Testing.WebApplicationFactoryClientOptions { BaseAddress = new Uri(server), HandleCookies = true });
        var (_, account, secret) = Assert.Single(sluice.Credentials.Written);
        Assert.Equal(HttpStatusCode.OK, (await operatorClient.PostAsJsonAsync("/api/v1/auth/login", new { email = account, password = secret })).StatusCode);

        var work = Directory.CreateTempSubdirectory("sluice-compute-e2e-").FullName;
        using var h100 = FakeNvidiaSmi.H100x8();
        using var l4 = FakeNvidiaSmi.L4x1();
        var (_, tokenA) = await ComputeKit.CreateJoinTokenAsync(operatorClient);
        var (_, tokenB) = await ComputeKit.CreateJoinTokenAsync(operatorClient);

        var agentA = new AgentKit(Path.Combine(work, "agent-a"), h100);
        var agentB = new AgentKit(Path.Combine(work, "agent-b"), l4);
        await agentA.JoinAsync(server, tokenA);
        await agentB.JoinAsync(server, tokenB);

        // A join token joins one machine: the second use is refused and writes nothing.
        var reuse = await new AgentKit(Path.Combine(work, "agent-c"), l4).TryJoinAsync(server, tokenA);
        Assert.Equal(1, reuse.ExitCode);
        Assert.Contains("error: the server refused the join", reuse.Stderr, StringComparison.Ordinal);
        Assert.False(File.Exists(Path.Combine(Path.Combine(work, "agent-c"), "agent.json")));

        await using var runA = agentA.Run();
        await using var runB = agentB.Run();
        var machineA = await WaitForMachineAsync(operatorClient, agentA.MachineId, m => m.GetProperty("liveness").GetString() == MachineLiveness.Alive);
        var machineB = await WaitForMachineAsync(operatorClient, agentB.MachineId, m => m.GetProperty("liveness").GetString() == MachineLiveness.Alive);
        Assert.Equal(8, machineA.GetProperty("inventory").GetProperty("gpus").GetArrayLength());
        Assert.Equal("NVIDIA H100 80GB HBM3", machineA.GetProperty("inventory").GetProperty("gpus")[0].GetProperty("name").GetString());
        Assert.Equal(h100.Driver, machineA.GetProperty("inventory").GetProperty("driverVersion").GetString());
        Assert.Equal(h100.Cuda, machineA.GetProperty("inventory").GetProperty("cudaVersion").GetString());
        Assert.Equal("NVIDIA L4", Assert.Single(machineB.GetProperty("inventory").GetProperty("gpus").EnumerateArray()).GetProperty("name").GetString());

        // A model server task on machine A: the built-in engine on a tiny GGUF, one GPU, a secret only the task sees.
        var model = TinyGguf.Write(Path.Combine(work, "models"));
        using var reaper = new EngineReaper(model); // a failing test leaves no engine behind
        var create = await operatorClient.PostAsJsonAsync($"/api/v1/machines/{agentA.MachineId}/tasks", new
        {
            kind = TaskKinds.ModelServer,
            runtime = TaskRuntimes.Process,
            process = new
            {
                command = "dotnet",
                args = new[] { SluiceProcess.ExecutablePath, "engine", "llama", "--model", model, "--port", "{port}", "--model-id", "tiny" },
            },
            gpus = 1,
            probe = new { path = "/health", startupTimeoutSeconds = 120, intervalSeconds = 2, failureThreshold = 3 },
            secrets = new Dictionary<string, string> { ["ENGINE_TOKEN"] = canary },
        });
        Assert.True(create.StatusCode == HttpStatusCode.Created, await create.Content.ReadAsStringAsync());
        var taskId = (await create.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetGuid();
        var task = await WaitForTaskAsync(operatorClient, agentA.MachineId, taskId, t => t.GetProperty("state").GetString() == TaskStates.Ready);
        Assert.Equal([0], task.GetProperty("gpuIndices").EnumerateArray().Select(i => i.GetInt32()));

        // The server reaches the engine through the agent: HTTPS to the pinned certificate, the serving token, loopback.
        await using (var scope = sluice.Services.CreateAsyncScope())
        {
            var endpoint = await scope.ServiceProvider.GetRequiredService<MachineEndpoints>().FindAsync(agentA.MachineId, CancellationToken.None);
            Assert.NotNull(endpoint);
            var transport = sluice.Services.GetRequiredService<IMachineTransport>();
            var invoker = transport.Invoker(endpoint);

            using var plain = await invoker.SendAsync(Chat(endpoint, taskId, canary, stream: false), CancellationToken.None);
            var plainText = await plain.Content.ReadAsStringAsync();
            Assert.True(plain.StatusCode == HttpStatusCode.OK, plainText);
            var answer = JsonDocument.Parse(plainText).RootElement;
            Assert.Equal("chat.completion", answer.GetProperty("object").GetString());
            Assert.InRange(answer.GetProperty("usage").GetProperty("completion_tokens").GetInt32(), 1, 8);

            using var streamed = await invoker.SendAsync(Chat(endpoint, taskId, canary, stream: true), CancellationToken.None);
            Assert.Equal(HttpStatusCode.OK, streamed.StatusCode);
            Assert.Equal("text/event-stream", streamed.Content.Headers.ContentType?.MediaType);
            var chunks = (await streamed.Content.ReadAsStringAsync()).Split("\n\n", StringSplitOptions.RemoveEmptyEntries);
            Assert.Equal("data: [DONE]", chunks[^1].Trim());
            Assert.Contains(chunks, e => e.Contains("\"usage\"", StringComparison.Ordinal));

            // The agent takes nothing but the serving token (it also presents the certificate the server pinned).
            using var forged = new HttpMessageInvoker(new SocketsHttpHandler
            {
                SslOptions = { RemoteCertificateValidationCallback = (_, certificate, _, _) => certificate is not null && Convert.ToHexStringLower(certificate.GetCertHash(System.Security.Cryptography.HashAlgorithmName.SHA256)) == endpoint.CertificateSha256 },
            });
            var forgedRequest = Chat(endpoint, taskId, canary, stream: false);
            forgedRequest.Headers.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", "sst_forged");
            using var refused = await forged.SendAsync(forgedRequest, CancellationToken.None);
            Assert.Equal(HttpStatusCode.Unauthorized, refused.StatusCode);
        }

        // Telemetry from the fake nvidia-smi reached the server as metadata: the L4's figures, its unreported power as null.
        var range = $"from={Uri.EscapeDataString(DateTimeOffset.UtcNow.AddHours(-1).ToString("O"))}&to={Uri.EscapeDataString(DateTimeOffset.UtcNow.AddHours(1).ToString("O"))}";
        JsonElement telemetry = default;
        await Eventually.TrueAsync(async () =>
        {
            telemetry = await operatorClient.GetFromJsonAsync<JsonElement>($"/api/v1/machines/{agentB.MachineId}/telemetry?{range}");
            return telemetry.GetProperty("samples").GetArrayLength() > 0;
        }, "machine B's telemetry to be stored", Patience);
        var l4Sample = Assert.Single(telemetry.GetProperty("samples")[0].GetProperty("gpus").EnumerateArray());
        Assert.Equal(23034, l4Sample.GetProperty("memoryTotalMib").GetInt64());
        Assert.True(!l4Sample.TryGetProperty("powerDrawW", out var power) || power.ValueKind == JsonValueKind.Null);

        var enginePid = FindProcessWithArgument(model);
        Assert.NotNull(enginePid);

        // SIGKILL agent A: on the manual clock it goes suspect, offline, then lost, and its task with it; B stays alive.
        runA.SendSignal(Signals.Kill);
        await runA.WaitForExitAsync(TimeSpan.FromSeconds(30));
        var killedAt = clock.GetUtcNow();
        foreach (var (after, liveness) in new[] { (31, MachineLiveness.Suspect), (61, MachineLiveness.Offline), (301, MachineLiveness.Lost) })
        {
            clock.Advance(killedAt + TimeSpan.FromSeconds(after) - clock.GetUtcNow());
            await WaitForMachineAsync(operatorClient, agentA.MachineId, m => m.GetProperty("liveness").GetString() == liveness);
        }

        task = await WaitForTaskAsync(operatorClient, agentA.MachineId, taskId, t => t.GetProperty("state").GetString() == TaskStates.Terminated);
        Assert.Equal(TaskReasons.MachineLost, task.GetProperty("reason").GetString());
        await WaitForMachineAsync(operatorClient, agentB.MachineId, m => m.GetProperty("liveness").GetString() == MachineLiveness.Alive);
        var events = await operatorClient.GetFromJsonAsync<JsonElement>($"/api/v1/machines/{agentA.MachineId}/events");
        var kinds = events.EnumerateArray().Select(e => e.GetProperty("detail").GetString() ?? "").ToList();
        Assert.Contains(kinds, d => d.Contains(MachineLiveness.Suspect, StringComparison.Ordinal));
        Assert.Contains(kinds, d => d.Contains(MachineLiveness.Offline, StringComparison.Ordinal));
        Assert.Contains(kinds, d => d.Contains(MachineLiveness.Lost, StringComparison.Ordinal));

        // The engine outlived its SIGKILLed agent; the next agent on the machine ends it and the machine comes back.
        Assert.True(IsRunning(enginePid.Value), "the engine outlives a SIGKILLed agent until the next agent starts");
        await using var rerunA = agentA.Run();
        await Eventually.TrueAsync(() => !IsRunning(enginePid.Value), "the restarted agent to end the orphaned engine", Patience);
        await WaitForMachineAsync(operatorClient, agentA.MachineId, m => m.GetProperty("liveness").GetString() == MachineLiveness.Alive);

        // A revoked credential is refused at the agent's next heartbeat: it stops and says why.
        var revoke = await operatorClient.PostAsync($"/api/v1/machines/{agentB.MachineId}/revoke-credential", null);
        Assert.Equal(HttpStatusCode.OK, revoke.StatusCode);
        Assert.Equal(1, await runB.WaitForExitAsync(Patience));
        Assert.Contains("error: the server no longer accepts this machine's credential", runB.Stderr, StringComparison.Ordinal);

        // Nothing a task was given or served (its secret, the prompt) reached the server's logs or database, the agents'
        // output or their data directories.
        Canary.AssertAbsent(runA.Stdout + runA.Stderr + rerunA.Stdout + rerunA.Stderr, canary, "agent A's output");
        Canary.AssertAbsent(runB.Stdout + runB.Stderr, canary, "agent B's output");
        Canary.AssertAbsent(string.Join('\n', sluice.Logs.Lines), canary, "the server's logs");
        Canary.AssertAbsent(await Canary.DumpDatabaseAsync(database), canary, "the database");
        Canary.AssertAbsent(await Canary.DumpDirectoryAsync(Path.Combine(work, "agent-a")), canary, "agent A's data directory");
        Directory.Delete(work, recursive: true);
    }

    private static HttpRequestMessage Chat(MachineEndpoint endpoint, Guid taskId, string prompt, bool stream)
    {
        var body = JsonSerializer.Serialize(new
        {
            model = "tiny",
            messages = new[] { new { role = "user", content = prompt } },
            max_tokens = 8,
            stream,
            stream_options = stream ? new { include_usage = true } : null,
        });
        return new HttpRequestMessage(HttpMethod.Post, MachineTransportPaths.TaskUri(endpoint, taskId.ToString(), "/v1/chat/completions"))
        {
            Content = new StringContent(body, Encoding.UTF8, "application/json"),
        };
    }

    private static async Task<JsonElement> WaitForMachineAsync(HttpClient client, Guid machineId, Func<JsonElement, bool> condition)
    {
        JsonElement last = default;
        await Eventually.TrueAsync(async () =>
        {
            last = await client.GetFromJsonAsync<JsonElement>($"/api/v1/machines/{machineId}");
            return condition(last);
        }, $"machine {machineId} to reach the expected state", Patience);
        return last;
    }

    private static async Task<JsonElement> WaitForTaskAsync(HttpClient client, Guid machineId, Guid taskId, Func<JsonElement, bool> condition)
    {
        JsonElement last = default;
        await Eventually.TrueAsync(async () =>
        {
            last = await client.GetFromJsonAsync<JsonElement>($"/api/v1/machines/{machineId}/tasks/{taskId}");
            return condition(last);
        }, $"task {taskId} to reach the expected state", Patience);
        return last;
    }

    private static int? FindProcessWithArgument(string argument)
    {
        foreach (var directory in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(directory), out var pid))
            {
                continue;
            }

            try
            {
                var commandLine = File.ReadAllText(Path.Combine(directory, "cmdline")).Split('\0');
                if (commandLine.Contains(argument, StringComparer.Ordinal) && commandLine.Contains("engine", StringComparer.Ordinal))
                {
                    return pid;
                }
            }
            catch (IOException)
            {
            }
            catch (UnauthorizedAccessException)
            {
            }
        }

        return null;
    }

    private static bool IsRunning(int pid)
    {
        try
        {
            using var process = Process.GetProcessById(pid);
            return !process.HasExited;
        }
        catch (ArgumentException)
        {
            return false;
        }
    }

    private sealed class EngineReaper(string model) : IDisposable
    {
        public void Dispose()
        {
            if (FindProcessWithArgument(model) is { } pid && IsRunning(pid))
            {
                using var process = Process.GetProcessById(pid);
                process.Kill(entireProcessTree: true);
            }
        }
    }

    /// <summary>One machine: its data directory, its fake nvidia-smi and the `sluice agent` commands run on it.</summary>
    private sealed class AgentKit(string dataDir, FakeNvidiaSmi nvidiaSmi)
    {
        private readonly int _servingPort = SluiceProcess.FreePort();

        public Guid MachineId { get; private set; }

        private Dictionary<string, string?> Environment => new() { ["PATH"] = nvidiaSmi.PathWithFakeFirst };

        public Task<(int ExitCode, string Stdout, string Stderr)> TryJoinAsync(string server, string token) =>
            SluiceProcess.RunAsync(
                ["agent", "join", "--server", server, "--token", token, "--data-dir", dataDir,
                 "--listen", $"https://127.0.0.1:{_servingPort}", "--advertise", $"https://127.0.0.1:{_servingPort}"],
                Environment, TimeSpan.FromSeconds(60));

        public async Task JoinAsync(string server, string token)
        {
            var (exitCode, stdout, stderr) = await TryJoinAsync(server, token);
            Assert.True(exitCode == 0, $"join failed: {stdout}\n{stderr}");
            using var identity = JsonDocument.Parse(File.ReadAllText(Path.Combine(dataDir, "agent.json")));
            MachineId = Guid.Parse(identity.RootElement.GetProperty("machine_id").GetString()!);
        }

        public SluiceProcess Run() => SluiceProcess.Start(["agent", "run", "--data-dir", dataDir], Environment);
    }
}
