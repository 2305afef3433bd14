namespace Sluice.Agent;

/// <summary>
/// The agent's log lines. Ids, counts, states and status codes only: never the credential, the serving token, a join
/// token, a task's command line, environment, secrets or output, nor a heartbeat reply's body. Event ids 1650–1699
/// (issue 16's range, kept clear of the server side's compute lines).
/// </summary>
internal static partial class AgentLog
{
    [LoggerMessage(1650, LogLevel.Information, "nvidia-smi is not on PATH: this machine reports no GPUs")]
    public static partial void NoNvidiaSmi(ILogger logger);

    [LoggerMessage(1651, LogLevel.Warning, "nvidia-smi failed (exit code {ExitCode}): GPU figures are missing until it answers again")]
    public static partial void NvidiaSmiFailed(ILogger logger, int exitCode);

    [LoggerMessage(1652, LogLevel.Warning, "nvidia-smi did not answer within {Seconds} s and was stopped (a wedged driver?): GPU figures are missing until it answers again")]
    public static partial void NvidiaSmiTimedOut(ILogger logger, double seconds);

    [LoggerMessage(1653, LogLevel.Information, "nvidia-smi answers again")]
    public static partial void NvidiaSmiAnswers(ILogger logger);

    [LoggerMessage(1654, LogLevel.Warning, "nvidia-smi printed {Count} lines that are not GPUs; they were skipped")]
    public static partial void NvidiaSmiLinesSkipped(ILogger logger, int count);

    [LoggerMessage(1660, LogLevel.Information, "Agent for machine {MachineId} running: heartbeats to {Server}, serving URL {ServingUrl}")]
    public static partial void Running(ILogger logger, string machineId, string server, string servingUrl);

    [LoggerMessage(1661, LogLevel.Debug, "Heartbeat {Sequence} accepted: machine {MachineState}, {TaskCount} desired tasks, next in {IntervalSeconds} s")]
    public static partial void HeartbeatAccepted(ILogger logger, long sequence, string machineState, int taskCount, int intervalSeconds);

    [LoggerMessage(1662, LogLevel.Information, "The server's desired task set changed: {TaskCount} tasks ({TaskIds})")]
    public static partial void DesiredSetChanged(ILogger logger, int taskCount, string taskIds);

    [LoggerMessage(1663, LogLevel.Warning, "Heartbeat {Sequence} failed ({Reason}); tasks keep running; retrying in {DelaySeconds:0.0} s (failure {Failures} in a row)")]
    public static partial void HeartbeatFailed(ILogger logger, long sequence, string reason, double delaySeconds, int failures);

    [LoggerMessage(1664, LogLevel.Information, "The server answers again after {Failures} failed heartbeats")]
    public static partial void HeartbeatRecovered(ILogger logger, int failures);

    [LoggerMessage(1665, LogLevel.Error, "The server refused this machine ({Status}): stopping every task")]
    public static partial void Refused(ILogger logger, int status);

    [LoggerMessage(1666, LogLevel.Information, "Stopping: every task is being stopped")]
    public static partial void Stopping(ILogger logger);

    [LoggerMessage(1667, LogLevel.Warning, "Stopping the tasks did not finish within {Seconds} s")]
    public static partial void StopTimedOut(ILogger logger, double seconds);

    [LoggerMessage(1668, LogLevel.Debug, "Heartbeat {Sequence} sent: {TaskReports} task reports, inventory {InventoryIncluded}")]
    public static partial void HeartbeatSent(ILogger logger, long sequence, int taskReports, bool inventoryIncluded);

    [LoggerMessage(1669, LogLevel.Error, "The task supervisor failed to apply the desired set ({ExceptionType}); it is applied again with the next reply")]
    public static partial void ApplyFailed(ILogger logger, string exceptionType);
}
