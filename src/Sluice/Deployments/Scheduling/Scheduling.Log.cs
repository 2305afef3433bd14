namespace Sluice.Deployments.Scheduling;

/// <summary>The scheduler's log lines: ids, states, counts and fixed sentences only, never a spec, a secret or an artifact.</summary>
internal static partial class SchedulingLog
{
    [LoggerMessage(1840, LogLevel.Information, "Scheduler lease taken by this server replica ({Holder})")]
    public static partial void LeaseTaken(ILogger logger, string holder);

    [LoggerMessage(1841, LogLevel.Information, "Deployment {DeploymentId}: replica {ReplicaId} placed on machine {MachineId} (generation {Generation})")]
    public static partial void ReplicaPlaced(ILogger logger, Guid deploymentId, Guid replicaId, Guid machineId, int generation);

    [LoggerMessage(1842, LogLevel.Information, "Deployment {DeploymentId}: replica {ReplicaId} is {State}")]
    public static partial void ReplicaState(ILogger logger, Guid deploymentId, Guid replicaId, string state);

    [LoggerMessage(1843, LogLevel.Warning, "Deployment {DeploymentId} is unschedulable: {Reason}")]
    public static partial void Unschedulable(ILogger logger, Guid deploymentId, string reason);

    [LoggerMessage(1844, LogLevel.Warning, "Deployment {DeploymentId} failed: {Reason}")]
    public static partial void Failed(ILogger logger, Guid deploymentId, string reason);

    [LoggerMessage(1845, LogLevel.Warning, "Deployment {DeploymentId}: converging failed ({ExceptionType}); retried next pass")]
    public static partial void ConvergeFailed(ILogger logger, Guid deploymentId, string exceptionType);

    [LoggerMessage(1846, LogLevel.Information, "Scheduler lease lost by this server replica; another one schedules now")]
    public static partial void LeaseLost(ILogger logger);

    [LoggerMessage(1849, LogLevel.Warning, "A scheduler pass for a woken deployment failed ({ExceptionType}); the periodic pass places it")]
    public static partial void SoonPassFailed(ILogger logger, string exceptionType);
}
