using System.Net;
using System.Net.Sockets;
using Sluice.Agent.Serving;
using Sluice.Compute.Protocol;

namespace Sluice.Agent.Tasks;

/// <summary>
/// One task at one generation: pending → preparing → starting → ready → terminating → terminated. Model servers are
/// probed (readiness until the startup timeout, then liveness every interval) and restarted with capped exponential
/// backoff when they exit or fail the liveness probe <c>FailureThreshold</c> times in a row; a job runs once (exit 0:
/// completed, otherwise failed). Every wait is on the injected <see cref="TimeProvider"/>, except the stop grace and a
/// probe request's own timeout (wall time).
/// </summary>
internal sealed class TaskRunner(
    TaskSpec spec, ITaskRuntime runtime, TaskSupervisorOptions options, TimeProvider time, HttpClient probes, TaskLog log, ILogger logger)
    : IDisposable
{
    private readonly Lock _gate = new();
    private readonly CancellationTokenSource _stop = new();
    private readonly TaskCompletionSource _stopRequested = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private string _state = TaskStates.Pending;
    private string? _reason;
    private string? _detail;
    private int _restarts;
    private int? _exitCode;
    private DateTimeOffset? _startedAt;
    private DateTimeOffset? _readyAt;
    private int? _port;
    private ITaskInstance? _instance;

    public int Generation => spec.Generation;

    public TaskLog Log => log;

    public Task Completion { get; private set; } = Task.CompletedTask;

    public bool IsStopRequested => _stop.IsCancellationRequested;

    public bool IsTerminated
    {
        get
        {
            lock (_gate)
            {
                return _state == TaskStates.Terminated;
            }
        }
    }

    public int? ReadyPort
    {
        get
        {
            lock (_gate)
            {
                return _state == TaskStates.Ready ? _port : null;
            }
        }
    }

    public TaskReport Report(TaskLoad load)
    {
        lock (_gate)
        {
            return new TaskReport
            {
                TaskId = spec.TaskId,
                Generation = spec.Generation,
                State = _state,
                Reason = _reason,
                Detail = _detail,
                Restarts = _restarts,
                ExitCode = _exitCode,
                StartedAt = _startedAt,
                ReadyAt = _readyAt,
                InFlight = load.InFlight(spec.TaskId),
                QueueDepth = _state == TaskStates.Ready ? load.QueueDepth(spec.TaskId) : null,
            };
        }
    }

    public void Run(Task after) => Completion = Task.Run(() => RunAsync(after));

    public void RequestStop()
    {
        lock (_gate)
        {
            if (_state != TaskStates.Terminated)
            {
                _state = TaskStates.Terminating;
                _reason = TaskReasons.Stopped;
            }
        }

        _stopRequested.TrySetResult();
        try
        {
            _stop.Cancel();
        }
        catch (ObjectDisposedException)
        {
        }
    }

    public void KillNow()
    {
        ITaskInstance? instance;
        lock (_gate)
        {
            instance = _instance;
        }

        instance?.KillNow();
    }

    private async Task RunAsync(Task after)
    {
        try
        {
            await after.ConfigureAwait(false);
            if (IsStopRequested)
            {
                Terminate(TaskReasons.Stopped, null);
                return;
            }

            Set(TaskStates.Preparing);
            if (Validate() is { } problem)
            {
                Terminate(TaskReasons.Failed, problem);
                return;
            }

            if (runtime.Unavailable is { } unavailable)
            {
                Terminate(TaskReasons.Failed, unavailable);
                return;
            }

            await runtime.PrepareAsync(spec, _stop.Token).ConfigureAwait(false);
            var backoff = options.RestartBackoffInitial;
            while (true)
            {
                var port = FreeLoopbackPort();
                lock (_gate)
                {
                    if (_state == TaskStates.Terminating)
                    {
                        break;
                    }

                    _state = TaskStates.Starting;
                    _port = port;
                    _startedAt = time.GetUtcNow();
                    _readyAt = null;
                }

                var instance = await runtime.StartAsync(spec, port, log, _stop.Token).ConfigureAwait(false);
                lock (_gate)
                {
                    _instance = instance;
                }

                var (outcome, exitCode) = await SuperviseAsync(instance, port).ConfigureAwait(false);
                await StopInstanceAsync(instance).ConfigureAwait(false);
                lock (_gate)
                {
                    _instance = null;
                }

                await instance.DisposeAsync().ConfigureAwait(false);
                if (outcome == Outcome.Stopped)
                {
                    break;
                }

                if (spec.Kind == TaskKinds.Job && outcome == Outcome.Exited)
                {
                    lock (_gate)
                    {
                        _exitCode = exitCode;
                    }

                    Terminate(exitCode == 0 ? TaskReasons.Completed : TaskReasons.Failed, null);
                    return;
                }

                if (outcome == Outcome.StartupTimeout)
                {
                    Terminate(TaskReasons.HealthCheckFailed, "the readiness probe did not pass within the startup timeout");
                    return;
                }

                // A model server that exited or failed its liveness probe: restart after the backoff.
                DateTimeOffset? readyAt;
                lock (_gate)
                {
                    readyAt = _readyAt;
                    _state = TaskStates.Starting;
                    _reason = outcome == Outcome.Unhealthy ? TaskReasons.HealthCheckFailed : TaskReasons.Failed;
                    _exitCode = outcome == Outcome.Exited ? exitCode : null;
                    _readyAt = null;
                }

                if (readyAt is { } since && time.GetUtcNow() - since >= options.BackoffResetAfter)
                {
                    backoff = options.RestartBackoffInitial;
                }

                TasksLog.Restarting(logger, spec.TaskId, outcome.ToString(), backoff.TotalSeconds);
                if (!await WaitAsync(backoff).ConfigureAwait(false))
                {
                    break;
                }

                lock (_gate)
                {
                    _restarts++;
                }

                backoff = TimeSpan.FromTicks(Math.Min(backoff.Ticks * 2, options.RestartBackoffMax.Ticks));
            }

            Terminate(TaskReasons.Stopped, null);
        }
        catch (OperationCanceledException) when (IsStopRequested)
        {
            Terminate(TaskReasons.Stopped, null);
        }
        catch (TaskSpecException exception)
        {
            Terminate(TaskReasons.Failed, exception.Message);
        }
        catch (Exception exception)
        {
            // The type only: a message could quote the spec (a command, an image with credentials in it).
            TasksLog.RunnerFailed(logger, spec.TaskId, exception.GetType().Name);
            Terminate(TaskReasons.Failed, $"the agent could not run the task ({exception.GetType().Name})");
        }
        finally
        {
            ITaskInstance? instance;
            lock (_gate)
            {
                instance = _instance;
                _instance = null;
            }

            if (instance is not null)
            {
                await StopInstanceAsync(instance).ConfigureAwait(false);
                await instance.DisposeAsync().ConfigureAwait(false);
            }
        }
    }

    /// <summary>Once the run has completed and the task is forgotten.</summary>
    public void Dispose() => _stop.Dispose();

    private string? Validate()
    {
        if (spec.Kind is not (TaskKinds.ModelServer or TaskKinds.Job))
        {
            return "unknown kind (use 'model_server' or 'job')";
        }

        return spec.Runtime switch
        {
            TaskRuntimes.Process when string.IsNullOrWhiteSpace(spec.Process?.Command) => "a process task needs 'process' with a command",
            TaskRuntimes.Container when string.IsNullOrWhiteSpace(spec.Container?.Image) => "a container task needs 'container' with an image",
            TaskRuntimes.Process or TaskRuntimes.Container => spec.GpuIndices.Any(i => i < 0) ? "a GPU index is negative" : null,
            _ => "unknown runtime (use 'process' or 'container')",
        };
    }

    private enum Outcome
    {
        Exited,
        Unhealthy,
        StartupTimeout,
        Stopped,
    }

    private async Task<(Outcome Outcome, int ExitCode)> SuperviseAsync(ITaskInstance instance, int port)
    {
        var probe = spec.Kind == TaskKinds.ModelServer ? spec.Probe : null;
        if (probe is null)
        {
            SetReady(); // running is all there is to know (a job, or a model server without a probe)

            await Task.WhenAny(instance.Exited, _stopRequested.Task).ConfigureAwait(false);
            return Ended(instance);
        }

        var deadline = time.GetUtcNow() + TimeSpan.FromSeconds(Math.Max(1, probe.StartupTimeoutSeconds));
        while (true)
        {
            if (Ended(instance) is { Outcome: not Outcome.Unhealthy } ended)
            {
                return ended;
            }

            if (await ProbeAsync(port, probe.Path).ConfigureAwait(false))
            {
                break;
            }

            if (time.GetUtcNow() >= deadline)
            {
                TasksLog.StartupTimedOut(logger, spec.TaskId);
                return (Outcome.StartupTimeout, 0);
            }

            await WhenAnyAsync(instance, options.ReadinessPollInterval).ConfigureAwait(false);
        }

        SetReady();
        var failures = 0;
        var interval = TimeSpan.FromSeconds(Math.Max(1, probe.IntervalSeconds));
        while (true)
        {
            await WhenAnyAsync(instance, interval).ConfigureAwait(false);
            if (Ended(instance) is { Outcome: not Outcome.Unhealthy } ended)
            {
                return ended;
            }

            failures = await ProbeAsync(port, probe.Path).ConfigureAwait(false) ? 0 : failures + 1;
            if (failures >= Math.Max(1, probe.FailureThreshold))
            {
                TasksLog.LivenessFailed(logger, spec.TaskId, failures);
                return (Outcome.Unhealthy, 0);
            }
        }
    }

    /// <summary>Stopped or exited; (Unhealthy, 0) meaning "neither" (still running).</summary>
    private (Outcome Outcome, int ExitCode) Ended(ITaskInstance instance)
    {
        if (IsStopRequested)
        {
            return (Outcome.Stopped, 0);
        }

        return instance.Exited.IsCompleted ? (Outcome.Exited, instance.Exited.Result) : (Outcome.Unhealthy, 0);
    }

    private async Task WhenAnyAsync(ITaskInstance instance, TimeSpan delay)
    {
        using var cancel = CancellationTokenSource.CreateLinkedTokenSource(_stop.Token);
        var wait = Task.Delay(delay, time, cancel.Token);
        await Task.WhenAny(wait, instance.Exited, _stopRequested.Task).ConfigureAwait(false);
        await cancel.CancelAsync().ConfigureAwait(false);
    }

    /// <summary>False when a stop was requested during the wait.</summary>
    private async Task<bool> WaitAsync(TimeSpan delay)
    {
        try
        {
            await Task.Delay(delay, time, _stop.Token).ConfigureAwait(false);
            return true;
        }
        catch (OperationCanceledException)
        {
            return false;
        }
    }

    private async Task<bool> ProbeAsync(int port, string path)
    {
        var relative = string.IsNullOrEmpty(path) ? "/health" : path.StartsWith('/') ? path : "/" + path;
        try
        {
            using var response = await probes.GetAsync(new Uri($"http://127.0.0.1:{port}{relative}"), HttpCompletionOption.ResponseHeadersRead, _stop.Token).ConfigureAwait(false);
            return response.StatusCode == HttpStatusCode.OK;
        }
        catch (Exception exception) when (exception is HttpRequestException or TaskCanceledException or OperationCanceledException)
        {
            return false;
        }
    }

    private async Task StopInstanceAsync(ITaskInstance instance)
    {
        await instance.StopAsync(options.StopGrace).ConfigureAwait(false);
    }

    private void SetReady()
    {
        lock (_gate)
        {
            if (_state == TaskStates.Starting)
            {
                _state = TaskStates.Ready;
                _readyAt = time.GetUtcNow();
            }
        }

        TasksLog.Ready(logger, spec.TaskId, spec.Generation);
        options.StateChanged?.Invoke();
    }

    private void Set(string state)
    {
        lock (_gate)
        {
            if (_state != TaskStates.Terminating && _state != TaskStates.Terminated)
            {
                _state = state;
            }
        }
    }

    private void Terminate(string reason, string? detail)
    {
        lock (_gate)
        {
            if (_state == TaskStates.Terminated)
            {
                return;
            }

            _state = TaskStates.Terminated;
            _reason = reason;
            _detail = detail;
            _port = null;
        }

        TasksLog.Terminated(logger, spec.TaskId, spec.Generation, reason);
        options.StateChanged?.Invoke();
    }

    private static int FreeLoopbackPort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
