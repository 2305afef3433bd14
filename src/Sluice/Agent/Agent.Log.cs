namespace Sluice.Agent;

/// <summary>
/// The agent's log lines. Ids, counts, states and status codes only: never the credential, the serving token, a join
/// token, a task's command line, environment, secrets or output, nor a heartbeat reply's body.
/// </summary>
internal static partial class AgentLog
{
    [LoggerMessage(100, LogLevel.Information, "nvidia-smi is not on PATH: this machine reports no GPUs")]
    public static partial void NoNvidiaSmi(ILogger logger);

    [LoggerMessage(101, LogLevel.Warning, "nvidia-smi failed (exit code {ExitCode}): GPU figures are missing until it answers again")]
    public static partial void NvidiaSmiFailed(ILogger logger, int exitCode);

    [LoggerMessage(102, LogLevel.Warning, "nvidia-smi did not answer within {Seconds} s and was stopped (a wedged driver?): GPU figures are missing until it answers again")]
    public static partial void NvidiaSmiTimedOut(ILogger logger, double seconds);

    [LoggerMessage(103, LogLevel.Information, "nvidia-smi answers again")]
    public static partial void NvidiaSmiAnswers(ILogger logger);

    [LoggerMessage(104, LogLevel.Warning, "nvidia-smi printed {Count} lines that are not GPUs; they were skipped")]
    public static partial void NvidiaSmiLinesSkipped(ILogger logger, int count);

    [LoggerMessage(110, LogLevel.Information, "Agent for machine {MachineId} running: heartbeats to {Server}, serving URL {ServingUrl}")]
    public static partial void Running(ILogger logger, string machineId, string server, string servingUrl);

    [LoggerMessage(111, LogLevel.Debug, "Heartbeat {Sequence} accepted: machine {MachineState}, {TaskCount} desired tasks, next in {IntervalSeconds} s")]
    public static partial void HeartbeatAccepted(ILogger logger, long sequence, string machineState, int taskCount, int intervalSeconds);

    [LoggerMessage(112, LogLevel.Information, "The server's desired task set changed: {TaskCount} tasks ({TaskIds})")]
    public static partial void DesiredSetChanged(ILogger logger, int taskCount, string taskIds);

    [LoggerMessage(113, LogLevel.Warning, "Heartbeat {Sequence} failed ({Reason}); tasks keep running; retrying in {DelaySeconds:0.0} s (failure {Failures} in a row)")]
    public static partial void HeartbeatFailed(ILogger logger, long sequence, string reason, double delaySeconds, int failures);

    [LoggerMessage(114, LogLevel.Information, "The server answers again after {Failures} failed heartbeats")]
    public static partial void HeartbeatRecovered(ILogger logger, int failures);

    [LoggerMessage(115, LogLevel.Error, "The server refused this machine ({Status}): stopping every task")]
    public static partial void Refused(ILogger logger, int status);

    [LoggerMessage(116, LogLevel.Information, "Stopping: every task is being stopped")]
    public static partial void Stopping(ILogger logger);

    [LoggerMessage(117, LogLevel.Warning, "Stopping the tasks did not finish within {Seconds} s")]
    public static partial void StopTimedOut(ILogger logger, double seconds);

    [LoggerMessage(118, LogLevel.Debug, "Heartbeat {Sequence} sent: {TaskReports} task reports, inventory {InventoryIncluded}")]
    public static partial void HeartbeatSent(ILogger logger, long sequence, int taskReports, bool inventoryIncluded);

    [LoggerMessage(119, LogLevel.Error, "The task supervisor failed to apply the desired set ({ExceptionType}); it is applied again with the next reply")]
    public static partial void ApplyFailed(ILogger logger, string exceptionType);

    [LoggerMessage(120, LogLevel.Debug, "Placeholder supervisor: {TaskCount} desired tasks received; this build runs none")]
    public static partial void PlaceholderApplied(ILogger logger, int taskCount);
}
