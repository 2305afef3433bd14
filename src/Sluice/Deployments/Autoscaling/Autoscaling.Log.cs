namespace Sluice.Deployments.Autoscaling;

/// <summary>The autoscaler's log lines: ids, counts and figures only.</summary>
internal static partial class AutoscalingLog
{
    [LoggerMessage(1890, LogLevel.Information, "Deployment {DeploymentId} scaled {From} -> {To} ({Reason}; stable {Stable:0.##}, panic {PanicAverage:0.##}, ready {Ready})")]
    public static partial void Scaled(ILogger logger, Guid deploymentId, int from, int to, string reason, double stable, double panicAverage, int ready);

    [LoggerMessage(1891, LogLevel.Information, "Deployment {DeploymentId}: scale-up {From} -> {To} refused by the wallet")]
    public static partial void ScaleUpRefused(ILogger logger, Guid deploymentId, int from, int to);

    [LoggerMessage(1892, LogLevel.Information, "This server replica now decides autoscaling ({ServerId})")]
    public static partial void LeaseTaken(ILogger logger, Guid serverId);

    [LoggerMessage(1893, LogLevel.Information, "This server replica no longer decides autoscaling ({ServerId})")]
    public static partial void LeaseLost(ILogger logger, Guid serverId);

    [LoggerMessage(1894, LogLevel.Warning, "Writing load reports failed ({ExceptionType}); {Count} report(s) will be written again")]
    public static partial void ReportFailed(ILogger logger, string exceptionType, int count);
}
