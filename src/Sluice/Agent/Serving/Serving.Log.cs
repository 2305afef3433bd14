namespace Sluice.Agent.Serving;

/// <summary>Task ids, status codes and durations only: never a body, a header's value or a token.</summary>
internal static partial class ServingLog
{
    [LoggerMessage(1681, LogLevel.Information, "Serving endpoint listening on {Address}")]
    public static partial void Listening(ILogger logger, string address);

    [LoggerMessage(1682, LogLevel.Debug, "Task {TaskId}: {Method} answered {Status} in {ElapsedMs} ms")]
    public static partial void Proxied(ILogger logger, string taskId, string method, int status, long elapsedMs);

    [LoggerMessage(1683, LogLevel.Warning, "Serving endpoint: a request without the serving token was refused")]
    public static partial void Unauthorized(ILogger logger);

    [LoggerMessage(1684, LogLevel.Warning, "Task {TaskId}: the task did not answer ({ExceptionType})")]
    public static partial void UpstreamFailed(ILogger logger, string taskId, string exceptionType);

    [LoggerMessage(1685, LogLevel.Debug, "Task {TaskId}: /metrics could not be read ({Reason})")]
    public static partial void ScrapeFailed(ILogger logger, string taskId, string reason);
}
