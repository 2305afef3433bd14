namespace Sluice.Identity;

internal static partial class IdentityLog
{
    [LoggerMessage(100, LogLevel.Warning, "Created platform operator {UserId}; its one-time password was printed to the console")]
    public static partial void OperatorCreated(ILogger logger, Guid userId);

    [LoggerMessage(101, LogLevel.Information, "Another replica created the platform operator")]
    public static partial void OperatorCreatedElsewhere(ILogger logger);

    [LoggerMessage(102, LogLevel.Warning, "Polling for changed API keys failed ({ExceptionType}); will retry")]
    public static partial void KeyChangePollFailed(ILogger logger, string exceptionType);

    [LoggerMessage(103, LogLevel.Warning, "Recording API key last-used times failed ({ExceptionType}); will retry")]
    public static partial void KeyUsageFlushFailed(ILogger logger, string exceptionType);

    [LoggerMessage(104, LogLevel.Information, "User {UserId} signed in")]
    public static partial void SignedIn(ILogger logger, Guid userId);

    [LoggerMessage(105, LogLevel.Information, "Sign-in refused: {Outcome}")]
    public static partial void SignInRefused(ILogger logger, string outcome);

    [LoggerMessage(106, LogLevel.Information, "API key {KeyId} {Change} in organization {OrganizationId}")]
    public static partial void KeyChanged(ILogger logger, Guid keyId, string change, Guid organizationId);

    [LoggerMessage(107, LogLevel.Information, "Organization {OrganizationId} created by {UserId}")]
    public static partial void OrganizationCreated(ILogger logger, Guid organizationId, Guid? userId);
}
