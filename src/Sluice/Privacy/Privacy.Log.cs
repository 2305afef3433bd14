namespace Sluice.Privacy;

/// <summary>The privacy engine's log lines: counts, versions and exception types, never personal data or codes.</summary>
internal static partial class PrivacyLog
{
    [LoggerMessage(701, LogLevel.Information, "Retention sweep deleted {Deleted} records past retention; {Held} kept under legal hold")]
    public static partial void Swept(ILogger logger, int deleted, int held);

    [LoggerMessage(702, LogLevel.Warning, "Service email could not be sent ({ExceptionType})")]
    public static partial void SendFailed(ILogger logger, string exceptionType);

    [LoggerMessage(703, LogLevel.Information, "Published privacy policy version {Version}; {Owners} organization owners notified")]
    public static partial void Published(ILogger logger, int version, int owners);
}
