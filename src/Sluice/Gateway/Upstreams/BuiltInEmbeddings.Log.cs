namespace Sluice.Gateway;

/// <summary>The built-in embeddings engine's supervision: process ids, addresses, exit codes; never a request.</summary>
internal static partial class BuiltInEmbeddingsLog
{
    [LoggerMessage(1601, LogLevel.Information, "Starting the built-in embeddings engine ({Reason})")]
    public static partial void Starting(ILogger logger, string reason);

    [LoggerMessage(1602, LogLevel.Information, "The built-in embeddings engine (pid {ProcessId}) serves at {Address} after {Milliseconds} ms")]
    public static partial void Ready(ILogger logger, int processId, string address, long milliseconds);

    [LoggerMessage(1603, LogLevel.Error, "The built-in embeddings engine (pid {ProcessId}) exited with code {ExitCode}; it is restarted with backoff")]
    public static partial void Exited(ILogger logger, int processId, int exitCode);

    [LoggerMessage(1604, LogLevel.Error, "The built-in embeddings engine (pid {ProcessId}) did not load within {Timeout}; it is killed and restarted with backoff")]
    public static partial void StartupTimedOut(ILogger logger, int processId, TimeSpan timeout);

    [LoggerMessage(1605, LogLevel.Information, "Embeddings engine (pid {ProcessId}): {Line}")]
    public static partial void EngineOutput(ILogger logger, int processId, string line);

    [LoggerMessage(1606, LogLevel.Information, "The built-in embeddings engine (pid {ProcessId}) stopped with the server")]
    public static partial void Stopped(ILogger logger, int processId);
}
