namespace Sluice.Hosting;

internal static partial class HostingLog
{
    [LoggerMessage(10, LogLevel.Information, "Sluice is listening on {Urls}")]
    public static partial void Listening(ILogger logger, string urls);

    [LoggerMessage(15, LogLevel.Critical, "The server stopped without being asked to by a signal; exiting with a failure status")]
    public static partial void StoppedWithoutSignal(ILogger logger);

    [LoggerMessage(16, LogLevel.Critical, "Stopping the server failed ({ExceptionType}); exiting with a failure status")]
    public static partial void StopFailed(ILogger logger, string exceptionType);
}
