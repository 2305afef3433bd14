using System.Collections.Concurrent;
using Sluice.Agent.Serving;
using Sluice.Compute.Protocol;

namespace Sluice.Agent.Tasks;

/// <summary>
/// The agent's <see cref="ITaskSupervisor"/>: reconciles the desired set the server sends (start what is missing, stop
/// what is not listed, restart what changed generation) without ever waiting on a task: each task is a
/// <see cref="TaskRunner"/> with its own loop. A terminated task is kept (and reported) while the server still lists it
/// at the same generation, so a finished job is not run again; once unlisted and terminated it is forgotten, its log with it.
/// </summary>
public sealed class ProcessTaskSupervisor : ITaskSupervisor, IAsyncDisposable
{
    private readonly TimeProvider _time;
    private readonly ILoggerFactory _loggers;
    private readonly ILogger _logger;
    private readonly TaskSupervisorOptions _options;
    private readonly ProcessRuntime _process;
    private readonly DockerRuntime _docker;
    private readonly ConcurrentDictionary<string, TaskRunner> _tasks = new(StringComparer.Ordinal);
    private readonly Lock _applyGate = new();
    private readonly HttpClient _probes;

    public ProcessTaskSupervisor(TimeProvider time, ILoggerFactory loggers, TaskSupervisorOptions? options = null, TaskLoad? load = null)
    {
        _time = time;
        _loggers = loggers;
        _logger = loggers.CreateLogger("Sluice.Agent.Tasks");
        _options = options ?? new TaskSupervisorOptions();
        Load = load ?? new TaskLoad();
        var orphans = ProcessRuntime.ReapOrphans(_options.StateDirectory);
        if (orphans > 0)
        {
            TasksLog.OrphansReaped(_logger, orphans);
        }

        _process = new ProcessRuntime(_options.StateDirectory);
        _docker = new DockerRuntime(_options, loggers.CreateLogger("Sluice.Agent.Tasks.Docker"));
        _probes = new HttpClient(new SocketsHttpHandler { UseProxy = false, AllowAutoRedirect = false, UseCookies = false })
        {
            Timeout = _options.ProbeTimeout,
        };
        AppDomain.CurrentDomain.ProcessExit += KillAllOnExit;
    }

    /// <summary>In-flight counts and queue depths, written by the serving endpoint and reported here.</summary>
    public TaskLoad Load { get; }

    public void Apply(IReadOnlyList<TaskSpec> desired)
    {
        lock (_applyGate)
        {
            var wanted = new Dictionary<string, TaskSpec>(StringComparer.Ordinal);
            foreach (var spec in desired)
            {
                wanted[spec.TaskId] = spec; // a duplicate id: the last one wins
            }

            foreach (var (taskId, runner) in _tasks)
            {
                if (wanted.ContainsKey(taskId))
                {
                    continue;
                }

                if (runner.IsTerminated)
                {
                    Forget(taskId, runner);
                }
                else
                {
                    TasksLog.Stopping(_logger, taskId, runner.Generation);
                    runner.RequestStop();
                }
            }

            foreach (var spec in wanted.Values)
            {
                if (_tasks.TryGetValue(spec.TaskId, out var current))
                {
                    if (current.Generation == spec.Generation && !current.IsStopRequested)
                    {
                        continue; // running, or terminated at this generation (a finished job is not run again)
                    }

                    // A new generation, or a task unlisted earlier and listed again: the new run starts once the old one has stopped.

                    current.RequestStop();
                    TasksLog.Starting(_logger, spec.TaskId, spec.Generation);
                    _tasks[spec.TaskId] = Start(spec, after: current.Completion);
                    current.Log.Clear();
                    continue;
                }

                TasksLog.Starting(_logger, spec.TaskId, spec.Generation);
                _tasks[spec.TaskId] = Start(spec, after: Task.CompletedTask);
            }
        }
    }

    public IReadOnlyList<TaskReport> Report() =>
        _tasks.Values.Select(r => r.Report(Load)).OrderBy(r => r.TaskId, StringComparer.Ordinal).ToList();

    public int? ReadyPort(string taskId) => _tasks.TryGetValue(taskId, out var runner) ? runner.ReadyPort : null;

    /// <summary>The last lines a task printed, from this machine's memory only; null for a task this agent does not hold.</summary>
    public IReadOnlyList<string>? Logs(string taskId) => _tasks.TryGetValue(taskId, out var runner) ? runner.Log.Lines() : null;

    public async Task StopAllAsync(CancellationToken cancellationToken)
    {
        List<TaskRunner> runners;
        lock (_applyGate)
        {
            runners = [.. _tasks.Values];
            foreach (var runner in runners)
            {
                runner.RequestStop();
            }
        }

        await Task.WhenAll(runners.Select(r => r.Completion)).WaitAsync(cancellationToken).ConfigureAwait(false);
    }

    public async ValueTask DisposeAsync()
    {
        AppDomain.CurrentDomain.ProcessExit -= KillAllOnExit;
        await StopAllAsync(CancellationToken.None).ConfigureAwait(false);
        _probes.Dispose();
        _docker.Dispose();
    }

    private TaskRunner Start(TaskSpec spec, Task after)
    {
        ITaskRuntime runtime = spec.Runtime switch
        {
            TaskRuntimes.Process => _process,
            TaskRuntimes.Container => _docker,
            _ => new UnknownRuntime(),
        };
        var runner = new TaskRunner(spec, runtime, _options, _time, _probes, new TaskLog(_options.LogBufferBytes), _loggers.CreateLogger("Sluice.Agent.Tasks.Runner"));
        runner.Run(after);
        return runner;
    }

    private void Forget(string taskId, TaskRunner runner)
    {
        if (_tasks.TryRemove(new KeyValuePair<string, TaskRunner>(taskId, runner)))
        {
            runner.Log.Clear();
            runner.Dispose();
            Load.Forget(taskId);
            TasksLog.Forgotten(_logger, taskId);
        }
    }

    private void KillAllOnExit(object? sender, EventArgs e)
    {
        foreach (var runner in _tasks.Values)
        {
            runner.KillNow();
        }
    }

    private sealed class UnknownRuntime : ITaskRuntime
    {
        public string? Unavailable => "unknown runtime (use 'process' or 'container')";

        public Task PrepareAsync(TaskSpec spec, CancellationToken cancellationToken) => Task.CompletedTask;

        public Task<ITaskInstance> StartAsync(TaskSpec spec, int port, TaskLog log, CancellationToken cancellationToken) =>
            throw new TaskSpecException(Unavailable!);
    }
}
