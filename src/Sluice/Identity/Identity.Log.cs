namespace Sluice.Identity;

internal static partial class IdentityLog
{
    [LoggerMessage(100, LogLevel.Warning, "Created platform operator {UserId}; its one-time password was printed to the console")]
    public static partial void OperatorCreated(ILogger logger, Guid userId);

    [LoggerMessage(101, LogLevel.Information, "Another replica created the platform operator")]
    public static partial void OperatorCreatedElsewhere(ILogger logger);
}
