namespace Sluice.Gateway.Pipeline;

/// <summary>
/// How a failure inside the pipeline becomes the answer: the one place to add a mapping (for example "the database is
/// unavailable" → 503 with Retry-After). Whatever is not mapped is a 500 in OpenAI's shape, logged by exception type only
/// (a message may quote input).
/// </summary>
internal static class PipelineFailures
{
    public static OpenAiException Map(Exception exception, ILogger logger)
    {
        if (exception is OpenAiException error)
        {
            return error;
        }

        if (Storage.DatabaseFailures.IsUnavailable(exception))
        {
            // Not cached and the database is down (an organization's policy, a lease to take or renew): 503 with Retry-After.
            return OpenAiError.DatabaseUnavailable();
        }

        GatewayLog.PipelineFailed(logger, exception.GetType().Name, Origin(exception));
        return new OpenAiException(500, "The server had an error processing this request; retry shortly.", "server_error", "internal_error");
    }

    /// <summary>
    /// Where an unexpected failure came from, in code names only (the method that threw, and the first Sluice method on
    /// the way up), never the message, which may quote input.
    /// </summary>
    internal static string Origin(Exception exception)
    {
        var frames = new System.Diagnostics.StackTrace(exception, fNeedFileInfo: false).GetFrames();
        string? thrower = null;
        string? sluice = null;
        foreach (var frame in frames)
        {
            if (frame.GetMethod() is not { DeclaringType: { } type } method)
            {
                continue;
            }

            var name = $"{type.FullName}.{method.Name}";
            thrower ??= name;
            if (type.FullName?.StartsWith("Sluice.", StringComparison.Ordinal) == true)
            {
                sluice = name;
                break;
            }
        }

        var disposed = exception is ObjectDisposedException { ObjectName: { Length: > 0 } objectName } ? $" (disposed: {objectName})" : "";
        return thrower is null ? "unknown" : sluice is null || sluice == thrower ? thrower + disposed : $"{thrower} via {sluice}{disposed}";
    }

    /// <summary>The receiver went away: the call ends quietly, recorded as 499.</summary>
    public static bool ClientLeft(Exception exception, CancellationToken aborted) =>
        aborted.IsCancellationRequested && exception is OperationCanceledException or IOException or Microsoft.AspNetCore.Connections.ConnectionResetException;
}
