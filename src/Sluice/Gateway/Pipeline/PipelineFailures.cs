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

        GatewayLog.PipelineFailed(logger, exception.GetType().Name);
        return new OpenAiException(500, "The server had an error processing this request; retry shortly.", "server_error", "internal_error");
    }

    /// <summary>The receiver went away: the call ends quietly, recorded as 499.</summary>
    public static bool ClientLeft(Exception exception, CancellationToken aborted) =>
        aborted.IsCancellationRequested && exception is OperationCanceledException or IOException or Microsoft.AspNetCore.Connections.ConnectionResetException;
}
