using System.Text.Json;
using Sluice.Agent.Machine;
using Sluice.Compute.Protocol;

namespace Sluice.Agent;

/// <summary>Why the heartbeat loop ended.</summary>
public enum AgentStop
{
    /// <summary>Asked to stop (SIGTERM, Ctrl+C).</summary>
    Signalled,

    /// <summary>The server no longer accepts the machine's credential (401).</summary>
    CredentialRefused,

    /// <summary>The machine was decommissioned (410, or a reply saying so).</summary>
    Decommissioned,
}

public sealed record HeartbeatSettings
{
    /// <summary>Until the server's first reply says otherwise.</summary>
    public TimeSpan InitialInterval { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>Backoff after failures: doubles from <see cref="RetryBase"/> up to <see cref="RetryCap"/>, with jitter.</summary>
    public TimeSpan RetryBase { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>Kept under the server's suspect threshold (30 s), so a recovered server hears from the machine soon.</summary>
    public TimeSpan RetryCap { get; init; } = TimeSpan.FromSeconds(20);

    /// <summary>The least time between two heartbeats that an <see cref="AgentWake"/> brought forward, so a burst of task changes sends one.</summary>
    public TimeSpan MinimumSpacing { get; init; } = TimeSpan.FromMilliseconds(200);
}

/// <summary>
/// Keeps the machine connected: one heartbeat per interval (the server sets it in each reply) carrying a telemetry
/// sample, the inventory when it changed (and on the first heartbeat after a start), and the supervisor's task reports;
/// each reply's desired task set goes to the supervisor. When the server cannot be reached (or answers 5xx) it retries
/// with backoff and jitter while the tasks keep running; a 401 or 410 ends the loop.
/// </summary>
public sealed class HeartbeatLoop(
    AgentIdentity identity,
    ControlClient client,
    ITaskSupervisor supervisor,
    MachineProbe probe,
    TimeProvider time,
    ILogger logger,
    HeartbeatSettings? settings = null,
    Random? jitter = null,
    AgentWake? wake = null)
{
    private readonly HeartbeatSettings _settings = settings ?? new HeartbeatSettings();
    private readonly Random _jitter = jitter ?? Random.Shared;
    private string? _acknowledgedInventory;
    private string? _lastDesired;

    /// <summary>The last refusal's detail from the server (for the <c>error:</c> line).</summary>
    public string? Detail { get; private set; }

    /// <summary>Heartbeats the server accepted since the start.</summary>
    public long Accepted { get; private set; }

    public async Task<AgentStop> RunAsync(CancellationToken cancellationToken)
    {
        var interval = _settings.InitialInterval;
        var failures = 0;
        long sequence = 0;
        try
        {
            while (true)
            {
                var started = time.GetTimestamp();
                wake?.Reset();
                sequence++;
                ControlResult<HeartbeatResponse> result;
                string? inventoryJson = null;
                var sendInventory = false;
                try
                {
                    var (inventory, telemetry) = await probe.SampleAsync(cancellationToken);
                    inventoryJson = JsonSerializer.Serialize(inventory, ComputeJson.Default.MachineInventory);
                    sendInventory = inventoryJson != _acknowledgedInventory;
                    var reports = supervisor.Report();
                    var request = new HeartbeatRequest
                    {
                        Sequence = sequence,
                        AgentVersion = ControlClient.AgentVersion,
                        Inventory = sendInventory ? inventory : null,
                        Telemetry = telemetry,
                        Tasks = reports,
                    };
                    AgentLog.HeartbeatSent(logger, sequence, reports.Count, sendInventory);
                    result = await client.HeartbeatAsync(identity.Credential, request, cancellationToken);
                }
                catch (Exception ex) when (ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
                {
                    // Anything unforeseen on the way (its message is not repeated: it could quote a task's state) is
                    // one more failed heartbeat, never the end of the agent.
                    result = new(ControlOutcome.Unavailable, null, null, $"unexpected {ex.GetType().Name}");
                }

                TimeSpan wait;
                switch (result.Outcome)
                {
                    case ControlOutcome.Ok:
                        var reply = result.Value!;
                        if (failures > 0)
                        {
                            AgentLog.HeartbeatRecovered(logger, failures);
                        }

                        failures = 0;
                        Accepted++;
                        if (sendInventory)
                        {
                            _acknowledgedInventory = inventoryJson;
                        }

                        if (reply.MachineState == MachineStates.Decommissioned)
                        {
                            Detail = "the server says this machine is decommissioned";
                            AgentLog.Refused(logger, 200);
                            return AgentStop.Decommissioned;
                        }

                        interval = TimeSpan.FromSeconds(Math.Clamp(reply.HeartbeatIntervalSeconds, 1, 3600));
                        AgentLog.HeartbeatAccepted(logger, sequence, reply.MachineState, reply.Tasks.Count, (int)interval.TotalSeconds);
                        NoteDesiredSet(reply.Tasks);
                        try
                        {
                            supervisor.Apply(reply.Tasks);
                        }
                        catch (Exception ex)
                        {
                            // The next reply carries the whole desired set again: applying it is retried then.
                            AgentLog.ApplyFailed(logger, ex.GetType().Name);
                        }

                        wait = interval - time.GetElapsedTime(started);
                        break;

                    case ControlOutcome.Unauthorized:
                        Detail = result.Detail;
                        AgentLog.Refused(logger, 401);
                        return AgentStop.CredentialRefused;

                    case ControlOutcome.Gone:
                        Detail = result.Detail;
                        AgentLog.Refused(logger, 410);
                        return AgentStop.Decommissioned;

                    default:
                        // Unreachable, 5xx, 429, or another 4xx (a server that refuses this heartbeat's contents): the
                        // tasks keep running and serving; try again with backoff.
                        failures++;
                        wait = Backoff(failures);
                        AgentLog.HeartbeatFailed(logger, sequence, result.Status is { } s ? $"{s}: {result.Detail}" : result.Detail, wait.TotalSeconds, failures);
                        break;
                }

                if (wait > TimeSpan.Zero)
                {
                    await WaitAsync(wait, started, failures, cancellationToken);
                }
            }
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            return AgentStop.Signalled;
        }
    }

    /// <summary>
    /// Waits out the interval, or less when woken (a task changed state, or the server nudged): never sooner than
    /// <see cref="HeartbeatSettings.MinimumSpacing"/> after the last heartbeat started, and not while backing off.
    /// </summary>
    private async Task WaitAsync(TimeSpan wait, long started, int failures, CancellationToken cancellationToken)
    {
        if (wake is null || failures > 0)
        {
            await Task.Delay(wait, time, cancellationToken);
            return;
        }

        using var interval = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var full = Task.Delay(wait, time, interval.Token);
        var woken = await Task.WhenAny(full, wake.WaitAsync().WaitAsync(cancellationToken)) != full;
        await interval.CancelAsync();
        cancellationToken.ThrowIfCancellationRequested();
        if (woken)
        {
            var spacing = _settings.MinimumSpacing - time.GetElapsedTime(started);
            if (spacing > TimeSpan.Zero)
            {
                await Task.Delay(spacing, time, cancellationToken);
            }
        }
    }

    /// <summary>Doubling from the base up to the cap, each wait drawn between half and all of it (so a fleet does not retry in step).</summary>
    public TimeSpan Backoff(int failures)
    {
        var ceiling = Math.Min(_settings.RetryCap.TotalSeconds, _settings.RetryBase.TotalSeconds * Math.Pow(2, Math.Min(failures - 1, 20)));
        return TimeSpan.FromSeconds(ceiling * (0.5 + 0.5 * _jitter.NextDouble()));
    }

    private void NoteDesiredSet(IReadOnlyList<TaskSpec> tasks)
    {
        // Ids and generations only: a spec's command line, environment and secrets are never logged.
        var desired = string.Join(",", tasks.Select(t => $"{t.TaskId}@{t.Generation}"));
        if (desired != _lastDesired)
        {
            AgentLog.DesiredSetChanged(logger, tasks.Count, tasks.Count == 0 ? "none" : desired);
            _lastDesired = desired;
        }
    }
}
