namespace Sluice.Compute;

/// <summary>The compute plane's log lines: ids, states and counts only, never a spec, a secret or a credential.</summary>
internal static partial class ComputeLog
{
    [LoggerMessage(1601, LogLevel.Information, "Machine {MachineId} joined ({Owner})")]
    public static partial void Joined(ILogger logger, Guid machineId, string owner);

    [LoggerMessage(1602, LogLevel.Information, "Join refused: {Reason}")]
    public static partial void JoinRefused(ILogger logger, string reason);

    [LoggerMessage(1603, LogLevel.Information, "Heartbeat refused for machine {MachineId}: {Reason}")]
    public static partial void HeartbeatRefused(ILogger logger, Guid? machineId, string reason);

    [LoggerMessage(1604, LogLevel.Information, "Machine {MachineId} is {Liveness} (was {Previous})")]
    public static partial void LivenessChanged(ILogger logger, Guid machineId, string liveness, string previous);

    [LoggerMessage(1605, LogLevel.Warning, "Machine {MachineId} is lost: {Count} task(s) terminated with machine_lost")]
    public static partial void TasksLost(ILogger logger, Guid machineId, int count);

    [LoggerMessage(1606, LogLevel.Warning, "Writing heartbeat times failed ({ExceptionType}); {Count} machine(s) kept for the next flush")]
    public static partial void FlushFailed(ILogger logger, string exceptionType, int count);

    [LoggerMessage(1607, LogLevel.Debug, "Nudging machine {MachineId} to heartbeat now failed ({ExceptionType}); its next heartbeat brings the change")]
    public static partial void NudgeFailed(ILogger logger, Guid machineId, string exceptionType);
}
