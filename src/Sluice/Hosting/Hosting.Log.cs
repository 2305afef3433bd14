namespace Sluice.Hosting;

internal static partial class HostingLog
{
    [LoggerMessage(10, LogLevel.Information, "Sluice is listening on {Urls}")]
    public static partial void Listening(ILogger logger, string urls);
}
