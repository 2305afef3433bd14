using Microsoft.Extensions.Logging;

namespace Sluice.Engine.Embeddings;

/// <summary>The embeddings engine's log: counts, durations, exception types; never an input, a vector or a key.</summary>
internal static partial class EmbeddingsLog
{
    [LoggerMessage(1651, LogLevel.Information, "Embeddings engine listening on {Address}; loading {ModelId}")]
    public static partial void Listening(ILogger logger, string address, string modelId);

    [LoggerMessage(1652, LogLevel.Information, "Model {ModelId} loaded in {Milliseconds} ms ({Dimensions} dimensions, {Vocabulary} tokens in its vocabulary, {Parallel} batch(es) at once)")]
    public static partial void Loaded(ILogger logger, string modelId, long milliseconds, int dimensions, int vocabulary, int parallel);

    [LoggerMessage(1653, LogLevel.Critical, "Loading the model failed ({ExceptionType}); the engine exits")]
    public static partial void LoadFailed(ILogger logger, string exceptionType);

    [LoggerMessage(1654, LogLevel.Debug, "Embedded {Inputs} input(s), {Tokens} token(s) in {Milliseconds} ms")]
    public static partial void Embedded(ILogger logger, int inputs, int tokens, double milliseconds);

    [LoggerMessage(1655, LogLevel.Error, "An embeddings request failed unexpectedly ({ExceptionType}); answered 500")]
    public static partial void Failed(ILogger logger, string exceptionType);

    [LoggerMessage(1656, LogLevel.Information, "Standard input closed: the parent process is gone; shutting down")]
    public static partial void ParentGone(ILogger logger);
}
