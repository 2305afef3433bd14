using System.Globalization;
using System.Text.Json;
using Microsoft.Extensions.Logging;
using Sluice.Agent.Tasks;
using Sluice.Compute.Protocol;
using Sluice.Tests.TestSupport;

namespace Sluice.Tests.Agent.Tasks;

/// <summary>A supervisor under test with its log captured, and task specs for real processes.</summary>
internal sealed class TaskKit : IAsyncDisposable
{
    private readonly ILoggerFactory _loggers;

    public TaskKit(TaskSupervisorOptions? options = null, TimeProvider? time = null)
    {
        _loggers = LoggerFactory.Create(b => b.AddProvider(Logs).SetMinimumLevel(LogLevel.Trace));
        Supervisor = new ProcessTaskSupervisor(time ?? TimeProvider.System, _loggers, options ?? Fast);
        Directory.CreateDirectory(WorkDir);
    }

    public static TaskSupervisorOptions Fast { get; } = new()
    {
        StopGrace = TimeSpan.FromSeconds(2),
        ReadinessPollInterval = TimeSpan.FromMilliseconds(200),
        ProbeTimeout = TimeSpan.FromSeconds(2),
    };

    public LogCapture Logs { get; } = new();

    public ProcessTaskSupervisor Supervisor { get; }

    public string WorkDir { get; } = Path.Combine(Path.GetTempPath(), "sluice-tasks-" + Guid.NewGuid().ToString("N"));

    public TaskReport? Report(string taskId) => Supervisor.Report().SingleOrDefault(r => r.TaskId == taskId);

    public string State(string taskId) => Report(taskId)?.State ?? "(absent)";

    public string LogText(string taskId) => string.Join('\n', Supervisor.Logs(taskId) ?? []);

    /// <summary>A task running <c>sh -c SCRIPT</c>.</summary>
    public TaskSpec Shell(string taskId, string script, string kind = TaskKinds.Job, int generation = 1, ProbeSpec? probe = null,
        IReadOnlyDictionary<string, string>? environment = null, IReadOnlyDictionary<string, string>? secrets = null, IReadOnlyList<int>? gpus = null) => new()
    {
        TaskId = taskId,
        Generation = generation,
        Kind = kind,
        Runtime = TaskRuntimes.Process,
        Process = new ProcessRuntimeSpec { Command = "/bin/sh", Args = ["-c", script], Environment = environment, WorkingDirectory = WorkDir },
        Probe = probe,
        Secrets = secrets,
        GpuIndices = gpus ?? [],
    };

    /// <summary><c>sluice serve</c> as a model server on the task's port: /healthz, /v1/models, the built-in echo model.</summary>
    public TaskSpec SluiceServer(string taskId, ProbeSpec? probe = null, int generation = 1)
    {
        var dataDir = Path.Combine(WorkDir, taskId + "-" + generation.ToString(CultureInfo.InvariantCulture));
        Directory.CreateDirectory(dataDir);
        return new TaskSpec
        {
            TaskId = taskId,
            Generation = generation,
            Kind = TaskKinds.ModelServer,
            Runtime = TaskRuntimes.Process,
            Process = new ProcessRuntimeSpec
            {
                Command = "dotnet",
                Args = [SluiceProcess.ExecutablePath, "serve", "--urls", "http://127.0.0.1:{port}", "--data-dir", dataDir],
                Environment = new Dictionary<string, string> { ["DOTNET_NOLOGO"] = "1" },
                WorkingDirectory = dataDir,
            },
            Probe = probe ?? new ProbeSpec { Path = "/healthz", StartupTimeoutSeconds = 120, IntervalSeconds = 1 },
        };
    }

    /// <summary>The heartbeat body the agent would send with these reports, as JSON.</summary>
    public string ReportJson() => JsonSerializer.Serialize(new HeartbeatRequest
    {
        Sequence = 1,
        AgentVersion = "test",
        Telemetry = new TelemetrySample { At = DateTimeOffset.UnixEpoch },
        Tasks = Supervisor.Report(),
    }, ComputeJson.Default.HeartbeatRequest);

    public Task WaitForStateAsync(string taskId, string state, TimeSpan? timeout = null) =>
        Eventually.TrueAsync(() => State(taskId) == state, $"task {taskId} to be {state} (it is {State(taskId)}; log: {LogText(taskId)})", timeout ?? AgentWait.Timeout);

    /// <summary>The number a task printed as "NAME=123".</summary>
    public int PrintedNumber(string taskId, string name) =>
        int.Parse(LogText(taskId).Split('\n').Last(l => l.StartsWith(name + "=", StringComparison.Ordinal))[(name.Length + 1)..], CultureInfo.InvariantCulture);

    public static bool ProcessAlive(int pid)
    {
        var stat = $"/proc/{pid}/stat";
        if (!File.Exists(stat))
        {
            return false;
        }

        try
        {
            var text = File.ReadAllText(stat);
            var state = text[(text.LastIndexOf(')') + 2)..][0];
            return state is not ('Z' or 'X'); // a zombie has exited; only its parent has not reaped it yet
        }
        catch (IOException)
        {
            return false;
        }
    }

    public async ValueTask DisposeAsync()
    {
        await Supervisor.DisposeAsync();
        _loggers.Dispose();
        try
        {
            Directory.Delete(WorkDir, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}
