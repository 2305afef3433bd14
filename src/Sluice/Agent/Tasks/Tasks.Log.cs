
namespace Sluice.Agent.Tasks;

/// <summary>Task ids, generations, reasons and figures only: never a command line, an environment or task output.</summary>
internal static partial class TasksLog
{
    [LoggerMessage(1761, LogLevel.Information, "Task {TaskId} generation {Generation}: starting")]
    public static partial void Starting(ILogger logger, string taskId, int generation);

    [LoggerMessage(1762, LogLevel.Information, "Task {TaskId} generation {Generation}: ready")]
    public static partial void Ready(ILogger logger, string taskId, int generation);

    [LoggerMessage(1763, LogLevel.Information, "Task {TaskId} generation {Generation}: stopping (no longer wanted here)")]
    public static partial void Stopping(ILogger logger, string taskId, int generation);

    [LoggerMessage(1764, LogLevel.Information, "Task {TaskId} generation {Generation}: terminated ({Reason})")]
    public static partial void Terminated(ILogger logger, string taskId, int generation, string reason);

    [LoggerMessage(1765, LogLevel.Warning, "Task {TaskId}: {Outcome}; restarting in {BackoffSeconds} s")]
    public static partial void Restarting(ILogger logger, string taskId, string outcome, double backoffSeconds);

    [LoggerMessage(1766, LogLevel.Warning, "Task {TaskId}: the readiness probe did not pass within the startup timeout")]
    public static partial void StartupTimedOut(ILogger logger, string taskId);

    [LoggerMessage(1767, LogLevel.Warning, "Task {TaskId}: the liveness probe failed {Failures} times in a row")]
    public static partial void LivenessFailed(ILogger logger, string taskId, int failures);

    [LoggerMessage(1768, LogLevel.Error, "Task {TaskId}: the agent could not run it ({ExceptionType})")]
    public static partial void RunnerFailed(ILogger logger, string taskId, string exceptionType);

    [LoggerMessage(1769, LogLevel.Debug, "Task {TaskId}: forgotten (terminated and no longer listed); its log is dropped")]
    public static partial void Forgotten(ILogger logger, string taskId);

    [LoggerMessage(1770, LogLevel.Warning, "Docker: {Operation} answered {Status}")]
    public static partial void DockerRefused(ILogger logger, string operation, int status);

    [LoggerMessage(1771, LogLevel.Warning, "Ended {Count} task process group(s) a previous agent left running")]
    public static partial void OrphansReaped(ILogger logger, int count);
}
