namespace Sluice.Gateway;

internal static partial class GatewayLog
{
    [LoggerMessage(301, LogLevel.Warning, "Route {RouteId} ({Provider}) failed: {Failure}; trying the next route")]
    public static partial void RouteFailed(ILogger logger, Guid routeId, string provider, string failure);

    [LoggerMessage(302, LogLevel.Warning, "Route {RouteId} ({Provider}) circuit opened after {Failures} consecutive failures")]
    public static partial void CircuitOpened(ILogger logger, Guid routeId, string provider, int failures);

    [LoggerMessage(303, LogLevel.Error, "Writing {Count} usage events failed ({ExceptionType}); they are retried")]
    public static partial void UsageWriteFailed(ILogger logger, int count, string exceptionType);

    [LoggerMessage(304, LogLevel.Error, "The usage queue is full; usage event dropped (total dropped: {Dropped})")]
    public static partial void UsageDropped(ILogger logger, long dropped);

    [LoggerMessage(305, LogLevel.Information, "Provider {ProviderId} {Change}")]
    public static partial void ProviderChanged(ILogger logger, Guid providerId, string change);

    [LoggerMessage(306, LogLevel.Error, "A line of batch {BatchId} failed unexpectedly ({ExceptionType}); it is recorded as a server error")]
    public static partial void BatchLineFailed(ILogger logger, Guid batchId, string exceptionType);

    [LoggerMessage(307, LogLevel.Error, "An inference call failed unexpectedly ({ExceptionType}); it is answered and recorded as a server error")]
    public static partial void PipelineFailed(ILogger logger, string exceptionType);
}
