using Microsoft.Extensions.Logging;

namespace Sluice.Engine.Llama;

/// <summary>The llama engine's log lines: metadata only (ids, token counts, durations), never prompts or completions.</summary>
internal static partial class LlamaLog
{
    [LoggerMessage(1601, LogLevel.Information, "Listening on http://{Endpoint}; loading model {File}")]
    public static partial void Listening(ILogger logger, string endpoint, string file);

    [LoggerMessage(1602, LogLevel.Information, "Model {ModelId} loaded in {Milliseconds} ms: {Parameters} parameters, context {ContextSize} tokens, {Parallel} parallel slots, chat template: {Template}")]
    public static partial void Loaded(ILogger logger, string modelId, long milliseconds, ulong parameters, int contextSize, int parallel, string template);

    [LoggerMessage(1603, LogLevel.Information, "{RequestId} {Kind}: {PromptTokens} prompt tokens, {CompletionTokens} completion tokens, finish {Finish}, {Milliseconds} ms")]
    public static partial void Completed(ILogger logger, string requestId, string kind, int promptTokens, int completionTokens, string finish, long milliseconds);

    [LoggerMessage(1604, LogLevel.Information, "{RequestId} {Kind}: cancelled by the client after {Milliseconds} ms")]
    public static partial void Cancelled(ILogger logger, string requestId, string kind, long milliseconds);

    [LoggerMessage(1612, LogLevel.Information, "{RequestId} {Kind}: cancelled after {Milliseconds} ms, the engine is stopping")]
    public static partial void CancelledByStop(ILogger logger, string requestId, string kind, long milliseconds);

    [LoggerMessage(1605, LogLevel.Information, "{RequestId} {Kind}: refused ({Param}: {Code})")]
    public static partial void Refused(ILogger logger, string requestId, string kind, string param, string code);

    [LoggerMessage(1606, LogLevel.Warning, "{RequestId} {Kind}: refused, {Waiting} requests already wait for a slot")]
    public static partial void QueueFull(ILogger logger, string requestId, string kind, int waiting);

    [LoggerMessage(1607, LogLevel.Error, "{RequestId} {Kind}: generation failed ({ExceptionType})")]
    public static partial void Failed(ILogger logger, string requestId, string kind, string exceptionType);

    [LoggerMessage(1608, LogLevel.Warning, "llama.cpp: {Message}")]
    public static partial void NativeWarning(ILogger logger, string message);

    [LoggerMessage(1609, LogLevel.Error, "llama.cpp: {Message}")]
    public static partial void NativeError(ILogger logger, string message);

    [LoggerMessage(1611, LogLevel.Debug, "llama.cpp (loading): {Message}")]
    public static partial void NativeDebug(ILogger logger, string message);

    [LoggerMessage(1610, LogLevel.Information, "Stopping: {Processing} requests in progress are cancelled")]
    public static partial void Stopping(ILogger logger, long processing);
}
