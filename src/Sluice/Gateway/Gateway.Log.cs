namespace Sluice.Gateway;

internal static partial class GatewayLog
{
    [LoggerMessage(301, LogLevel.Warning, "Route {RouteId} ({Provider}) failed: {Failure}; trying the next route")]
    public static partial void RouteFailed(ILogger logger, Guid routeId, string provider, string failure);

    [LoggerMessage(302, LogLevel.Warning, "Route {RouteId} ({Provider}) circuit opened after {Failures} consecutive failures")]
    public static partial void CircuitOpened(ILogger logger, Guid routeId, string provider, int failures);

    [LoggerMessage(303, LogLevel.Error, "Writing usage events failed ({ExceptionType}); {Waiting} wait in memory and are retried with backoff until the database takes them")]
    public static partial void UsageWriteFailed(ILogger logger, int waiting, string exceptionType);

    [LoggerMessage(307, LogLevel.Information, "Writing usage events succeeded again; {Waiting} were waiting")]
    public static partial void UsageWritingAgain(ILogger logger, int waiting);

    [LoggerMessage(308, LogLevel.Error, "Usage event {EventId} was refused by the database ({ExceptionType}) and is not stored")]
    public static partial void UsageRejected(ILogger logger, Guid eventId, string exceptionType);

    [LoggerMessage(309, LogLevel.Critical, "Shutting down with {Waiting} usage events not written ({ExceptionType}): the database was unavailable until the shutdown timeout")]
    public static partial void UsageLostOnShutdown(ILogger logger, int waiting, string exceptionType);

    [LoggerMessage(304, LogLevel.Error, "The usage backlog is full ({Capacity} events, Gateway:UsageQueueCapacity); new usage events are dropped until it drains (total dropped: {Dropped})")]
    public static partial void UsageDropped(ILogger logger, int capacity, long dropped);

    [LoggerMessage(305, LogLevel.Information, "Provider {ProviderId} {Change}")]
    public static partial void ProviderChanged(ILogger logger, Guid providerId, string change);

    [LoggerMessage(306, LogLevel.Error, "A line of batch {BatchId} failed unexpectedly ({ExceptionType}); it is recorded as a server error")]
    public static partial void BatchLineFailed(ILogger logger, Guid batchId, string exceptionType);

    [LoggerMessage(310, LogLevel.Error, "An inference call failed unexpectedly ({ExceptionType}, thrown in {Origin}); it is answered and recorded as a server error")]
    public static partial void PipelineFailed(ILogger logger, string exceptionType, string origin);
}
