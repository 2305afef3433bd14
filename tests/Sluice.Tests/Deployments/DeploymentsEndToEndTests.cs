using System.ClientModel;
using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using OpenAI;
using OpenAI.Chat;
using Sluice.Compute.Protocol;
using Sluice.Deployments;
using Sluice.Storage;
using Sluice.Tests.TestSupport;

namespace Sluice.Tests.Deployments;

/// <summary>
/// A deployment with every part real: the server on loopback HTTP (in process, its wall clock manual), two `sluice agent`
/// processes with fake nvidia-smi on their PATH and a tiny GGUF in their models directory, the built-in engine started
/// by the agents as each replica, the official OpenAI .NET SDK as the client. Create → ready → chat (plain and
/// streaming) → concurrent load scales 1 → 2 (spread over both machines) → one agent SIGKILLed → its replica placed
/// again, requests keep succeeding → idle → scale to zero → the next request waits through a cold start and succeeds.
/// Another organization cannot see or call the private model, and nothing either sent is kept.
/// </summary>
[Collection(RealProcessLoad.Name)]
public sealed class DeploymentsEndToEndTests
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(120);

    [Fact]
    public async Task A_private_gguf_deployment_serves_the_sdk_scales_out_survives_a_killed_agent_scales_to_zero_and_cold_starts()
    {
        var canary = $"canary-{Guid.NewGuid():N}";
        var outsiderCanary = $"canary-outsider-{Guid.NewGuid():N}";
        var clock = new ManualTimeProvider(DateTimeOffset.UtcNow);
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Sqlite);
        var port = SluiceProcess.FreePort();
        await using var sluice = new SluiceFactory(database, new Dictionary<string, string?>
        {
            ["Compute:HeartbeatInterval"] = "00:00:01",
            ["Compute:LivenessCheckInterval"] = "00:00:00.200",
            ["Compute:HeartbeatFlushInterval"] = "00:00:00.200",
            ["Compute:AllowLoopbackServing"] = "true", // both agents run on this host
            ["Deployments:Scheduler:Interval"] = "00:00:00.250",
            ["Deployments:Routing:DirectoryRefreshInterval"] = "00:00:00.200",
            ["Deployments:Autoscaler:TickInterval"] = "00:00:00.250",
            ["Deployments:Autoscaler:ReportInterval"] = "00:00:00.250",
            ["Deployments:Billing:MeterInterval"] = "00:00:01",
        }, clock);
        sluice.UseKestrel(port);
        sluice.StartServer();
        var server = $"http://127.0.0.1:{port}";
        sluice.ClientOptions.BaseAddress = new Uri(server); // the test kit's clients go over the same loopback HTTP
        var op = sluice.CreateClient(new Microsoft.AspNetCore.Mvc.Testing.WebApplicationFactoryClientOptions { BaseAddress = new Uri(server), HandleCookies = true });
        var (_, account, secret) = Assert.Single(sluice.Credentials.Written);
        Assert.Equal(HttpStatusCode.OK, (await op.PostAsJsonAsync("/api/v1/auth/login", new { email = account, password = secret })).StatusCode);
        var (owner, orgId, key) = await GatewayKit.TenantAsync(sluice, "deployer@example.com");
        var (_, _, outsiderKey) = await GatewayKit.TenantAsync(sluice, "outsider@example.com");
        Assert.True((await op.PostAsJsonAsync($"/api/v1/admin/orgs/{orgId}/wallet/credits", new { amountMicros = 1_000_000_000, reason = "GPU time" })).IsSuccessStatusCode);

        // GPU time is priced per GPU-hour by type; both machines' GPUs have a price.
        foreach (var (gpu, price) in new[] { ("NVIDIA L4", 800_000L), ("NVIDIA H100 80GB HBM3", 2_500_000L) })
        {
            var set = await op.PostAsJsonAsync("/api/v1/gpu-prices", new { gpuType = gpu, perGpuHourMicros = price });
            Assert.True(set.IsSuccessStatusCode, await set.Content.ReadAsStringAsync());
        }

        var work = Directory.CreateTempSubdirectory("sluice-deployments-e2e-").FullName;
        var models = Path.Combine(work, "models");
        var model = TinyGguf.Write(models);
        using var reaper = new EngineReaper(model); // a failing test leaves no engine behind
        using var l4 = FakeNvidiaSmi.L4x1();
        using var h100 = FakeNvidiaSmi.H100x8();
        var agentA = new AgentKit(Path.Combine(work, "agent-a"), models, l4);
        var agentB = new AgentKit(Path.Combine(work, "agent-b"), models, h100);
        await agentA.JoinAsync(server, (await Compute.ComputeKit.CreateJoinTokenAsync(op)).Token);
        await agentB.JoinAsync(server, (await Compute.ComputeKit.CreateJoinTokenAsync(op)).Token);
        await using var runA = agentA.Run();
        await using var runB = agentB.Run();
        await Eventually.TrueAsync(async () => (await MachinesAsync(database)).Count(m => m.Liveness == MachineLiveness.Alive) == 2, "both machines to be alive", Patience);

        // Create: one replica of any GPU, at most two, one request at a time each; scale-down held off until the end.
        var create = await owner.PostAsJsonAsync("/api/v1/deployments", new
        {
            organizationId = orgId,
            name = "acme-tiny",
            engine = DeploymentEngines.BuiltInLlama,
            artifactKind = ArtifactKinds.Path,
            artifact = model,
            gpusPerReplica = 1,
            minReplicas = 1,
            maxReplicas = 2,
            targetConcurrency = 1,
            idleTimeoutSeconds = 60,
            scaleDownDelaySeconds = 3600,
        });
        Assert.True(create.StatusCode == HttpStatusCode.Created, await create.Content.ReadAsStringAsync());
        var deploymentId = (await create.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetGuid();
        await WaitForReadyReplicasAsync(database, deploymentId, 1);

        // The official SDK, plain and streaming, through gateway → agent (pinned HTTPS) → engine.
        var sdk = new OpenAIClient(new ApiKeyCredential(key), new OpenAIClientOptions { Endpoint = new Uri($"{server}/v1") });
        var chat = sdk.GetChatClient("acme-tiny");
        ChatCompletion completion = await chat.CompleteChatAsync([new UserChatMessage(canary)], new ChatCompletionOptions { MaxOutputTokenCount = 8 });
        Assert.Equal("acme-tiny", completion.Model);
        Assert.InRange(completion.Usage.OutputTokenCount, 1, 8);
        var streamed = 0;
        ChatTokenUsage? streamedUsage = null;
        await foreach (var update in chat.CompleteChatStreamingAsync([new UserChatMessage(canary)], new ChatCompletionOptions { MaxOutputTokenCount = 8 }))
        {
            streamed += update.ContentUpdate.Count;
            streamedUsage ??= update.Usage;
        }

        Assert.True(streamed > 0);
        Assert.NotNull(streamedUsage);
        var models0 = (await sdk.GetOpenAIModelClient().GetModelsAsync()).Value;
        Assert.Contains(models0, m => m.Id == "acme-tiny");

        // Another organization: the private model does not exist for it, and what it sent leaves no trace.
        var outsider = new OpenAIClient(new ApiKeyCredential(outsiderKey), new OpenAIClientOptions { Endpoint = new Uri($"{server}/v1") });
        var hidden = await Assert.ThrowsAsync<ClientResultException>(() => outsider.GetChatClient("acme-tiny").CompleteChatAsync([new UserChatMessage(outsiderCanary)]));
        Assert.Equal(404, hidden.Status);
        Assert.DoesNotContain((await outsider.GetOpenAIModelClient().GetModelsAsync()).Value, m => m.Id == "acme-tiny");

        // Concurrent load: the autoscaler sees more in flight than one replica's target and scales to two, spread over
        // both machines (each has a free GPU).
        using (var load = new CancellationTokenSource())
        {
            var clients = Enumerable.Range(0, 4).Select(_ => LoadAsync(server, key, load.Token)).ToList();

            // The autoscaler samples every tick (a quarter second, real time); its windows are measured on the manual
            // clock, moved a second per tick, so its 6 s panic window holds a few samples of the four clients' load.
            var deadline = DateTime.UtcNow + Patience;
            while ((await ReplicasAsync(database, deploymentId)).Count(r => r.State == ReplicaStates.Ready) < 2)
            {
                Assert.True(DateTime.UtcNow < deadline, "the deployment did not scale to two ready replicas under load");
                await Task.Delay(250);
                clock.Advance(TimeSpan.FromSeconds(1));
            }

            await load.CancelAsync();
            Assert.All(await Task.WhenAll(clients), failures => Assert.Equal(0, failures));
        }

        var directory = sluice.Services.GetRequiredService<Sluice.Deployments.Routing.DeploymentDirectory>();
        await Eventually.TrueAsync(() => directory.Get(deploymentId)?.Replicas.Count == 2, "the gateway to route to both replicas", Patience);
        var ready = (await ReplicasAsync(database, deploymentId)).Where(r => r.State == ReplicaStates.Ready).ToList();
        Assert.Equal(2, ready.Select(r => r.MachineId).Distinct().Count());
        await using (var db = database.CreateContext())
        {
            var scaled = await db.DeploymentEvents.Where(e => e.DeploymentId == deploymentId && e.Kind == DeploymentEventKinds.Scaled).ToListAsync();
            Assert.Contains(scaled, e => e.Detail!.Contains("\"to\":2", StringComparison.Ordinal) || e.Detail.Contains("\"new\":2", StringComparison.Ordinal));
        }

        // SIGKILL agent A: its replica cannot be reached, requests go to B's; once A is lost its replica is placed again
        // (on B, the only machine left with free GPUs).
        runA.SendSignal(Signals.Kill);
        await runA.WaitForExitAsync(TimeSpan.FromSeconds(30));
        for (var i = 0; i < 4; i++)
        {
            ChatCompletion during = await chat.CompleteChatAsync([new UserChatMessage(canary)], new ChatCompletionOptions { MaxOutputTokenCount = 4 });
            Assert.Equal("acme-tiny", during.Model);
        }

        await AdvanceKeepingAliveAsync(clock, database, agentB.MachineId, TimeSpan.FromSeconds(330), () => $"\nagent B exited: {runB.HasExited}\n{Tail(runB.Stderr)}");
        await Eventually.TrueAsync(async () => (await MachinesAsync(database)).Single(m => m.Id == agentA.MachineId).Liveness == MachineLiveness.Lost,
            "machine A to be lost", Patience);
        try
        {
            await Eventually.TrueAsync(async () =>
            {
                var replicas = await ReplicasAsync(database, deploymentId);
                return replicas.Count(r => r.State == ReplicaStates.Ready && r.MachineId == agentB.MachineId) == 2;
            }, "A's replica to be placed again on B and become ready", Patience);
        }
        catch (Exception)
        {
            Assert.Fail("A's replica was not placed again on B and ready:\n" + await DescribeAsync(database, deploymentId));
        }
        await using (var db = database.CreateContext())
        {
            Assert.True(await db.DeploymentEvents.AnyAsync(e => e.DeploymentId == deploymentId && e.Kind == DeploymentEventKinds.ReplicaLost));
        }

        ChatCompletion after = await chat.CompleteChatAsync([new UserChatMessage(canary)], new ChatCompletionOptions { MaxOutputTokenCount = 4 });
        Assert.Equal("acme-tiny", after.Model);

        // Idle: serverless now (min 0, scale-down without delay); after the idle timeout it scales to zero.
        var serverless = await owner.PatchAsJsonAsync($"/api/v1/deployments/{deploymentId}", new { minReplicas = 0, scaleDownDelaySeconds = 0 });
        Assert.True(serverless.IsSuccessStatusCode, await serverless.Content.ReadAsStringAsync());
        // The manual clock moves on, in steps that keep B alive, until the idle timeout, the scale-down and the
        // replicas' drain grace have all passed (each measured on it).
        var stepped = 0;
        while (!(await ReplicasAsync(database, deploymentId)).All(r => r.State is ReplicaStates.Stopped or ReplicaStates.Failed))
        {
            Assert.True(stepped++ < 30, "the idle deployment did not scale to zero within 10 minutes on the manual clock:\n" + await DescribeAsync(database, deploymentId));
            await AdvanceKeepingAliveAsync(clock, database, agentB.MachineId, TimeSpan.FromSeconds(20));
            await Task.Delay(300); // a few autoscaler and scheduler ticks (real time) at this point of the manual clock
        }
        await using (var db = database.CreateContext())
        {
            Assert.Equal(DeploymentStatuses.ScaledToZero, (await db.Deployments.SingleAsync(d => d.Id == deploymentId)).Status);
        }

        // A request at zero waits for a cold start and succeeds; it is recorded as having met one.
        var coldStarted = Stopwatch.StartNew();
        ChatCompletion cold = await chat.CompleteChatAsync([new UserChatMessage(canary)], new ChatCompletionOptions { MaxOutputTokenCount = 4 });
        coldStarted.Stop();
        Assert.Equal("acme-tiny", cold.Model);
        await using (var db = database.CreateContext())
        {
            await Eventually.TrueAsync(async () => await db.UsageEvents.AnyAsync(e => e.DeploymentId == deploymentId && e.ColdStart == true && e.Status == 200),
                "the cold-started request's usage event", Patience);
            var coldEvent = await db.UsageEvents.FirstAsync(e => e.DeploymentId == deploymentId && e.ColdStart == true && e.Status == 200);
            Assert.InRange(coldEvent.QueueWaitMicros!.Value, 1, (long)coldStarted.Elapsed.TotalMicroseconds);
        }

        // The window ends after the manual clock's now: the cold start happened at it, and a window's end is exclusive.
        var window = $"from={Uri.EscapeDataString(clock.GetUtcNow().AddHours(-1).ToString("O"))}&to={Uri.EscapeDataString(clock.GetUtcNow().AddMinutes(1).ToString("O"))}";
        var stats = await owner.GetFromJsonAsync<JsonElement>($"/api/v1/deployments/{deploymentId}/stats?{window}");
        Assert.True(stats.GetProperty("coldStarts").GetInt32() >= 1, stats.ToString());
        Assert.True(stats.GetProperty("coldStartRequests").GetInt64() >= 1, stats.ToString());

        // GPU time was charged through the wallet: what the ledger took equals the sum of the replicas' charges.
        await Eventually.TrueAsync(async () =>
        {
            await using var db = database.CreateContext();
            return await db.Database.SqlQueryRaw<long>("SELECT COALESCE(SUM(cost_micros), 0) AS \"Value\" FROM deployment_charges").SingleAsync() > 0;
        }, "GPU time to be charged", Patience);

        // Nothing either organization sent reached the server's logs or database, or the agents' output.
        await runB.DisposeAsync();
        Canary.AssertAbsent(runA.Stdout + runA.Stderr + runB.Stdout + runB.Stderr, canary, "the agents' output");
        foreach (var secretText in new[] { canary, outsiderCanary })
        {
            Canary.AssertAbsent(string.Join('\n', sluice.Logs.Lines), secretText, "the server's logs");
            Canary.AssertAbsent(await Canary.DumpDatabaseAsync(database), secretText, "the database");
        }

        Directory.Delete(work, recursive: true);
    }

    /// <summary>Streams chat requests one after another until cancelled; returns how many failed.</summary>
    private static async Task<int> LoadAsync(string server, string key, CancellationToken stop)
    {
        using var client = new HttpClient { BaseAddress = new Uri(server) };
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", key);
        var failures = 0;
        while (!stop.IsCancellationRequested)
        {
            try
            {
                using var response = await client.PostAsync("/v1/chat/completions", new StringContent(
                    """{"model":"acme-tiny","messages":[{"role":"user","content":"count slowly"}],"max_tokens":48,"stream":true}""", Encoding.UTF8, "application/json"), stop);
                var body = await response.Content.ReadAsStringAsync(stop);
                if (response.StatusCode != HttpStatusCode.OK || !body.Contains("[DONE]", StringComparison.Ordinal))
                {
                    failures++;
                }
            }
            catch (OperationCanceledException) when (stop.IsCancellationRequested)
            {
            }
        }

        return failures;
    }

    /// <summary>
    /// Moves the manual clock forward in steps shorter than the suspect threshold, waiting after each for machine
    /// <paramref name="aliveMachine"/>'s next heartbeat, so only a machine that stopped heartbeating falls behind.
    /// </summary>
    private static async Task AdvanceKeepingAliveAsync(ManualTimeProvider clock, TestDatabase database, Guid aliveMachine, TimeSpan by, Func<string>? diagnostics = null)
    {
        var step = TimeSpan.FromSeconds(20);
        for (var moved = TimeSpan.Zero; moved < by; moved += step)
        {
            clock.Advance(step);
            var now = clock.GetUtcNow();
            try
            {
                // Heartbeat times are kept to the second.
                await Eventually.TrueAsync(async () => (await MachinesAsync(database)).Single(m => m.Id == aliveMachine).ContactAt > now - TimeSpan.FromSeconds(1),
                    "the live machine's next heartbeat", Patience);
            }
            catch (Exception)
            {
                var alive = (await MachinesAsync(database)).Single(m => m.Id == aliveMachine);
                Assert.Fail($"machine {aliveMachine} sent no heartbeat at {now:O}: contact {alive.ContactAt:O}, last heartbeat {alive.LastHeartbeatAt:O}, liveness {alive.Liveness}, state {alive.State}{diagnostics?.Invoke()}");
            }
        }
    }

    private static async Task WaitOrDescribeAsync(TestDatabase database, Guid deploymentId, Func<Task<bool>> condition, string what)
    {
        try
        {
            await Eventually.TrueAsync(condition, what, Patience);
        }
        catch (Exception)
        {
            Assert.Fail($"Timed out waiting for {what}:\n{await DescribeAsync(database, deploymentId)}");
        }
    }

    /// <summary>A deployment's row, replicas, their tasks and its events, for a failure message (metadata only).</summary>
    private static async Task<string> DescribeAsync(TestDatabase database, Guid deploymentId)
    {
        await using var db = database.CreateContext();
        var d = await db.Deployments.AsNoTracking().SingleAsync(x => x.Id == deploymentId);
        var text = new StringBuilder($"deployment: status {d.Status} ({d.StatusReason}), desired {d.DesiredReplicas}, generation {d.Generation}\n");
        foreach (var r in await db.DeploymentReplicas.AsNoTracking().Where(x => x.DeploymentId == deploymentId).OrderBy(x => x.CreatedAt).ToListAsync())
        {
            var t = await db.MachineTasks.AsNoTracking().SingleOrDefaultAsync(x => x.Id == r.TaskId);
            text.Append($"replica {r.Id} on {r.MachineId}: {r.State} ({r.Reason}); task {t?.Desired}/{t?.State} ({t?.Reason}) restarts {t?.Restarts}\n");
        }

        foreach (var e in await db.DeploymentEvents.AsNoTracking().Where(x => x.DeploymentId == deploymentId).OrderBy(x => x.At).ToListAsync())
        {
            text.Append($"{e.At:HH:mm:ss.fff} {e.Kind} {e.Detail}\n");
        }

        return text.ToString();
    }

    private static string Tail(string text) => text.Length > 3000 ? text[^3000..] : text;

    private static async Task WaitForReadyReplicasAsync(TestDatabase database, Guid deploymentId, int count) =>
        await Eventually.TrueAsync(async () => (await ReplicasAsync(database, deploymentId)).Count(r => r.State == ReplicaStates.Ready) == count,
            $"{count} ready replica(s)", Patience);

    private static async Task<List<DeploymentReplica>> ReplicasAsync(TestDatabase database, Guid deploymentId)
    {
        await using var db = database.CreateContext();
        return await db.DeploymentReplicas.AsNoTracking().Where(r => r.DeploymentId == deploymentId).ToListAsync();
    }

    private static async Task<List<Sluice.Compute.Machine>> MachinesAsync(TestDatabase database)
    {
        await using var db = database.CreateContext();
        return await db.Machines.AsNoTracking().ToListAsync();
    }

    private sealed class EngineReaper(string model) : IDisposable
    {
        public void Dispose()
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
                    if (commandLine.Contains(model, StringComparer.Ordinal) && commandLine.Contains("engine", StringComparer.Ordinal))
                    {
                        using var process = Process.GetProcessById(pid);
                        process.Kill(entireProcessTree: true);
                    }
                }
                catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or ArgumentException or InvalidOperationException)
                {
                }
            }
        }
    }

    /// <summary>One machine: its data directory, its models directory, its fake nvidia-smi and the `sluice agent` commands run on it.</summary>
    private sealed class AgentKit(string dataDir, string modelsDir, FakeNvidiaSmi nvidiaSmi)
    {
        private readonly int _servingPort = SluiceProcess.FreePort();

        public Guid MachineId { get; private set; }

        private Dictionary<string, string?> Environment => new() { ["PATH"] = nvidiaSmi.PathWithFakeFirst };

        public async Task JoinAsync(string server, string token)
        {
            var (exitCode, stdout, stderr) = await SluiceProcess.RunAsync(
                ["agent", "join", "--server", server, "--token", token, "--data-dir", dataDir, "--models-dir", modelsDir,
                 "--listen", $"https://127.0.0.1:{_servingPort}", "--advertise", $"https://127.0.0.1:{_servingPort}"],
                Environment, TimeSpan.FromSeconds(60));
            Assert.True(exitCode == 0, $"join failed: {stdout}\n{stderr}");
            using var identity = JsonDocument.Parse(File.ReadAllText(Path.Combine(dataDir, "agent.json")));
            MachineId = Guid.Parse(identity.RootElement.GetProperty("machine_id").GetString()!);
        }

        public SluiceProcess Run() => SluiceProcess.Start(["agent", "run", "--data-dir", dataDir], Environment);
    }
}
