using System.Collections.Concurrent;
using Sluice.Agent;
using Sluice.Agent.Machine;
using Sluice.Compute.Protocol;
using Sluice.Tests.TestSupport;

namespace Sluice.Tests.Agent;

/// <summary>The heartbeat loop in process, against the stand-in control server over real HTTP, on a manual clock.</summary>
public sealed class HeartbeatLoopTests : IAsyncLifetime
{
    private readonly ManualTimeProvider _clock = new() { FollowTimers = true };
    private readonly LogCapture _logs = new();
    private readonly RecordingSupervisor _supervisor = new();
    private readonly FakeNvidiaSmi _smi = FakeNvidiaSmi.L4x1();
    private FakeControlServer _server = null!;

    public async ValueTask InitializeAsync() => _server = await FakeControlServer.StartAsync();

    public async ValueTask DisposeAsync()
    {
        await _server.DisposeAsync();
        _smi.Dispose();
    }

    private (HeartbeatLoop Loop, ControlClient Client) Loop(Uri? server = null, AgentWake? wake = null)
    {
        var identity = new AgentIdentity
        {
            ServerUrl = _server.Url.ToString(),
            MachineId = _server.MachineId,
            Credential = _server.Credential,
            ServingTokenSha256 = new string('0', 64),
            ServingListenUrl = "https://0.0.0.0:8443",
            ServingUrl = "https://127.0.0.1:8443",
            CertificateFile = AgentDataDirectory.CertificateFile,
            CertificateSha256 = "00",
        };
        var client = new ControlClient(server ?? _server.Url, TimeSpan.FromSeconds(10));
        var probe = new MachineProbe(
            new MachineProbeSources
            {
                DiskPath = Path.GetTempPath(),
                NvidiaSmi = new NvidiaSmi(TimeSpan.FromSeconds(10), _smi.ExecutablePath),
                Docker = new DockerProbe("/nonexistent/docker.sock"),
            },
            _clock,
            _logs.CreateLogger("probe"));
        return (new HeartbeatLoop(identity, client, _supervisor, probe, _clock, _logs.CreateLogger("loop"), jitter: new Random(7), wake: wake), client);
    }

    /// <summary>Waits until the loop sleeps on the clock, then moves the clock by <paramref name="by"/>.</summary>
    private async Task AdvanceWhenWaitingAsync(TimeSpan by)
    {
        await Eventually.TrueAsync(() => _clock.PendingTimers > 0, "the loop to wait for its next heartbeat");
        _clock.Advance(by);
    }

    private static TaskSpec Spec(string id, int generation = 1) => new()
    {
        TaskId = id,
        Generation = generation,
        Kind = TaskKinds.ModelServer,
        Runtime = TaskRuntimes.Process,
        Process = new ProcessRuntimeSpec
        {
            Command = "/usr/bin/CANARY-command",
            Args = ["--api-key", "CANARY-arg-" + id],
            Environment = new Dictionary<string, string> { ["HF_TOKEN"] = "CANARY-env-" + id },
        },
        Secrets = new Dictionary<string, string> { ["UPSTREAM_TOKEN"] = "CANARY-secret-" + id },
    };

    [Fact]
    public async Task Heartbeats_carry_telemetry_reports_and_the_inventory_first_and_when_it_changes()
    {
        _supervisor.Reports = [new TaskReport { TaskId = "t1", Generation = 2, State = TaskStates.Ready, InFlight = 3 }];
        var (loop, client) = Loop();
        using var _ = client;
        using var stop = new CancellationTokenSource();
        var running = loop.RunAsync(stop.Token);

        await Eventually.TrueAsync(() => _server.Heartbeats.Count == 1, "the first heartbeat");
        await AdvanceWhenWaitingAsync(TimeSpan.FromSeconds(1));
        await Eventually.TrueAsync(() => _server.Heartbeats.Count == 2, "the second heartbeat");
        _smi.Update(g => g with { Name = "NVIDIA L4 (replaced)" });
        await AdvanceWhenWaitingAsync(TimeSpan.FromSeconds(1));
        await Eventually.TrueAsync(() => _server.Heartbeats.Count == 3, "the third heartbeat");
        stop.Cancel();
        Assert.Equal(AgentStop.Signalled, await running);

        var beats = _server.Heartbeats.ToArray();
        Assert.Equal([1L, 2L, 3L], beats.Select(b => b.Sequence));
        Assert.Equal("NVIDIA L4", Assert.Single(beats[0].Inventory!.Gpus).Name);
        Assert.Null(beats[1].Inventory);
        Assert.Equal("NVIDIA L4 (replaced)", Assert.Single(beats[2].Inventory!.Gpus).Name);
        Assert.All(beats, b => Assert.Equal(_smi.Gpus[0].Uuid, Assert.Single(b.Telemetry.Gpus).Uuid));
        Assert.All(beats, b => Assert.True(b.Telemetry.MemoryTotalBytes > 0 && b.Telemetry.DiskTotalBytes > 0));
        Assert.All(beats, b => Assert.Equal(("t1", TaskStates.Ready, 3), (Assert.Single(b.Tasks).TaskId, b.Tasks[0].State, b.Tasks[0].InFlight)));
        Assert.Equal(_clock.GetUtcNow(), beats[2].Telemetry.At);
    }

    [Fact]
    public async Task The_replys_task_set_reaches_the_supervisor_and_its_interval_paces_the_next_heartbeat()
    {
        _server.DesiredTasks = [Spec("t1"), Spec("t2")];
        _server.HeartbeatIntervalSeconds = 7;
        var (loop, client) = Loop();
        using var _ = client;
        using var stop = new CancellationTokenSource();
        var running = loop.RunAsync(stop.Token);

        await Eventually.TrueAsync(() => _supervisor.Applied.Count == 1, "the first desired set to be applied");
        Assert.Equal(["t1", "t2"], _supervisor.Applied.Single().Select(t => t.TaskId));
        Assert.Equal("CANARY-secret-t1", _supervisor.Applied.Single()[0].Secrets!["UPSTREAM_TOKEN"]);

        _server.DesiredTasks = [];
        await AdvanceWhenWaitingAsync(TimeSpan.FromSeconds(6.9));
        Assert.Single(_server.Heartbeats); // not yet: the reply asked for 7 s
        _clock.Advance(TimeSpan.FromSeconds(0.1));
        await Eventually.TrueAsync(() => _supervisor.Applied.Count == 2, "the second desired set to be applied");
        Assert.Empty(_supervisor.Applied.Last());
        stop.Cancel();
        await running;

        // The desired set is logged by ids only: never a command line, an environment or a secret.
        foreach (var canary in new[] { "CANARY-command", "CANARY-arg-t1", "CANARY-env-t1", "CANARY-secret-t1", _server.Credential })
        {
            Canary.AssertAbsent(_logs.All, canary, "the agent's log");
        }

        Assert.Contains(_logs.Lines, l => l.Contains("2 tasks (t1@1,t2@1)", StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_wake_brings_the_next_heartbeat_forward_but_no_sooner_than_the_minimum_spacing_and_wakes_in_between_coalesce()
    {
        _server.HeartbeatIntervalSeconds = 10;
        var wake = new AgentWake();
        var (loop, client) = Loop(wake: wake);
        using var _ = client;
        using var stop = new CancellationTokenSource();
        var running = loop.RunAsync(stop.Token);
        await Eventually.TrueAsync(() => _server.Heartbeats.Count == 1, "the first heartbeat");
        await Eventually.TrueAsync(() => _clock.PendingTimers > 0, "the loop to wait for its interval");

        // A task became ready (or the server nudged): the next heartbeat goes after the minimum spacing, not 10 s later.
        wake.Signal();
        wake.Signal();
        await Eventually.TrueAsync(() => _clock.PendingTimers > 0, "the loop to wait out the minimum spacing");
        Assert.Single(_server.Heartbeats);
        _clock.Advance(TimeSpan.FromMilliseconds(200));
        await Eventually.TrueAsync(() => _server.Heartbeats.Count == 2, "the heartbeat the wake brought forward");

        // The two signals were one: the loop waits its full interval again.
        await AdvanceWhenWaitingAsync(TimeSpan.FromSeconds(9.5));
        Assert.Equal(2, _server.Heartbeats.Count);
        _clock.Advance(TimeSpan.FromSeconds(0.5));
        await Eventually.TrueAsync(() => _server.Heartbeats.Count == 3, "the regular heartbeat");
        stop.Cancel();
        Assert.Equal(AgentStop.Signalled, await running);
    }

    [Fact]
    public async Task Server_errors_are_retried_with_growing_backoff_while_the_tasks_keep_running()
    {
        _server.FailNextHeartbeats(503, 500, 502);
        var (loop, client) = Loop();
        using var _ = client;
        using var stop = new CancellationTokenSource();
        var running = loop.RunAsync(stop.Token);

        var waited = new List<TimeSpan>();
        while (_server.Heartbeats.IsEmpty)
        {
            await Eventually.TrueAsync(() => _clock.PendingTimers > 0 || !_server.Heartbeats.IsEmpty, "a retry to be scheduled");
            if (!_server.Heartbeats.IsEmpty)
            {
                break;
            }

            var before = _clock.GetUtcNow();
            while (_clock.PendingTimers > 0)
            {
                _clock.Advance(TimeSpan.FromMilliseconds(100));
            }

            waited.Add(_clock.GetUtcNow() - before);
        }

        Assert.Equal([503, 500, 502], _server.Failed);
        Assert.Equal(3, waited.Count);
        Assert.InRange(waited[0].TotalSeconds, 0.5, 1.1);
        Assert.InRange(waited[1].TotalSeconds, 1, 2.1);
        Assert.InRange(waited[2].TotalSeconds, 2, 4.1);
        Assert.False(_supervisor.Stopped);
        Assert.False(running.IsCompleted);
        Assert.Equal(4, Assert.Single(_server.Heartbeats).Sequence);
        Assert.NotNull(_server.Heartbeats.Single().Inventory); // not acknowledged before: sent again
        Assert.Contains(_logs.Lines, l => l.Contains("The server answers again after 3 failed heartbeats", StringComparison.Ordinal));
        stop.Cancel();
        Assert.Equal(AgentStop.Signalled, await running);
    }

    [Fact]
    public async Task An_unreachable_server_is_retried_without_end()
    {
        var nowhere = new Uri($"http://127.0.0.1:{SluiceProcess.FreePort()}/");
        var (loop, client) = Loop(nowhere);
        using var _ = client;
        using var stop = new CancellationTokenSource();
        var running = loop.RunAsync(stop.Token);

        for (var i = 0; i < 8; i++)
        {
            await AdvanceWhenWaitingAsync(TimeSpan.FromSeconds(30));
        }

        await Eventually.TrueAsync(() => _logs.Lines.Count(l => l.Contains("refused or dropped the connection", StringComparison.Ordinal)) >= 8, "eight failed heartbeats");
        Assert.False(running.IsCompleted);
        stop.Cancel();
        Assert.Equal(AgentStop.Signalled, await running);
    }

    [Theory]
    [InlineData(401, AgentStop.CredentialRefused, "revoked")]
    [InlineData(410, AgentStop.Decommissioned, "decommissioned")]
    public async Task A_revoked_or_decommissioned_machine_ends_the_loop_with_the_servers_reason(int status, AgentStop expected, string detail)
    {
        _server.AlwaysAnswer = status;
        var (loop, client) = Loop();
        using var _ = client;

        var ended = await loop.RunAsync(CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(30));

        Assert.Equal(expected, ended);
        Assert.Contains(detail, loop.Detail, StringComparison.Ordinal);
        Assert.Equal([status], _server.Failed);
    }

    [Fact]
    public async Task A_reply_saying_decommissioned_ends_the_loop()
    {
        _server.MachineState = MachineStates.Decommissioned;
        var (loop, client) = Loop();
        using var _ = client;

        Assert.Equal(AgentStop.Decommissioned, await loop.RunAsync(CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(30)));
        Assert.Empty(_supervisor.Applied);
    }

    [Fact]
    public async Task A_supervisor_that_throws_costs_a_heartbeat_not_the_agent()
    {
        _supervisor.FailReports = 1;
        _supervisor.FailApplies = 1;
        var (loop, client) = Loop();
        using var _ = client;
        using var stop = new CancellationTokenSource();
        var running = loop.RunAsync(stop.Token);

        await AdvanceWhenWaitingAsync(TimeSpan.FromSeconds(30)); // after the failed report: a backoff
        await Eventually.TrueAsync(() => _server.Heartbeats.Count == 1, "the heartbeat after the failed report");
        await AdvanceWhenWaitingAsync(TimeSpan.FromSeconds(1)); // the failed apply: the next heartbeat as usual
        await Eventually.TrueAsync(() => _supervisor.Applied.Count == 1, "the desired set applied on the next reply");

        Assert.False(running.IsCompleted);
        Assert.Contains(_logs.Lines, l => l.Contains("failed (unexpected InvalidOperationException)", StringComparison.Ordinal));
        Assert.Contains(_logs.Lines, l => l.Contains("failed to apply the desired set (InvalidOperationException)", StringComparison.Ordinal));
        Assert.DoesNotContain("CANARY", _logs.All, StringComparison.Ordinal); // an exception's message is not logged
        stop.Cancel();
        Assert.Equal(AgentStop.Signalled, await running);
    }

    [Fact]
    public void Backoff_doubles_from_one_second_to_the_cap_with_jitter()
    {
        var (loop, client) = Loop();
        using var _ = client;

        for (var failures = 1; failures <= 40; failures++)
        {
            var ceiling = Math.Min(20, Math.Pow(2, failures - 1));
            var draws = Enumerable.Range(0, 50).Select(_ => loop.Backoff(failures).TotalSeconds).ToList();
            Assert.All(draws, d => Assert.InRange(d, ceiling / 2, ceiling));
            Assert.True(draws.Distinct().Count() > 1, "jittered");
        }
    }

    private sealed class RecordingSupervisor : ITaskSupervisor
    {
        public ConcurrentQueue<IReadOnlyList<TaskSpec>> Applied { get; } = new();

        public IReadOnlyList<TaskReport> Reports { get; set; } = [];

        public bool Stopped { get; private set; }

        public int FailReports { get; set; }

        public int FailApplies { get; set; }

        public void Apply(IReadOnlyList<TaskSpec> desired)
        {
            if (FailApplies-- > 0)
            {
                throw new InvalidOperationException("CANARY-apply");
            }

            Applied.Enqueue(desired);
        }

        public IReadOnlyList<TaskReport> Report() => FailReports-- > 0 ? throw new InvalidOperationException("CANARY-report") : Reports;

        public int? ReadyPort(string taskId) => null;

        public Task StopAllAsync(CancellationToken cancellationToken)
        {
            Stopped = true;
            return Task.CompletedTask;
        }
    }
}
