namespace Sluice.Deployments.Routing;

internal static partial class DeploymentRoutingLog
{
    [LoggerMessage(1801, LogLevel.Warning, "Replica {ReplicaId} of deployment {DeploymentId} failed: {Failure}; trying another replica")]
    public static partial void ReplicaFailed(ILogger logger, Guid replicaId, Guid deploymentId, string failure);

    [LoggerMessage(1802, LogLevel.Warning, "Replica {ReplicaId} of deployment {DeploymentId}: circuit opened after {Failures} consecutive failures")]
    public static partial void ReplicaCircuitOpened(ILogger logger, Guid replicaId, Guid deploymentId, int failures);

    [LoggerMessage(1803, LogLevel.Information, "Deployment {DeploymentId} woken from zero by a waiting request (cold start)")]
    public static partial void ColdStart(ILogger logger, Guid deploymentId);

    [LoggerMessage(1804, LogLevel.Warning, "Deployment {DeploymentId}: cold-start queue full ({Capacity} waiting); request refused with 503")]
    public static partial void QueueFull(ILogger logger, Guid deploymentId, int capacity);

    [LoggerMessage(1805, LogLevel.Warning, "Deployment {DeploymentId}: no replica became ready within {TimeoutSeconds} s; request answered 503")]
    public static partial void QueueTimedOut(ILogger logger, Guid deploymentId, double timeoutSeconds);
}
