namespace Sluice.Audit;

internal static partial class AuditLogMessages
{
    [LoggerMessage(801, LogLevel.Debug, "Audit checkpoint signed at tree size {TreeSize}")]
    public static partial void CheckpointSigned(ILogger logger, long treeSize);

    [LoggerMessage(802, LogLevel.Error, "The audit log's tail could not be signed at shutdown ({ExceptionType}); the next start signs it")]
    public static partial void ShutdownCheckpointFailed(ILogger logger, string exceptionType);
}
