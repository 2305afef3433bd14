using System.Text.Json;
using System.Text.Json.Nodes;

namespace Sluice.Gateway;

/// <summary>
/// Chat completions to Anthropic's Messages API and back, streaming included: the request (AnthropicRequest.cs), the
/// whole answer (AnthropicResponse.cs) and the event stream (AnthropicStream.cs).
/// </summary>
internal static partial class AnthropicTranslation
{
    private const int DefaultMaxTokens = 1024;

    public static byte[] Request(InferenceRequest request, string upstreamModel)
    {
        try
        {
            return Translate(request, upstreamModel);
        }
        catch (Exception ex) when (ex is InvalidOperationException or NullReferenceException or FormatException or KeyNotFoundException or ArgumentException or JsonException)
        {
            // A field of the wrong type or shape (a number for a role, an object for messages…): the client's input,
            // never a server error. The message names no value (it could be content).
            throw OpenAiException.Invalid("The request could not be translated for this model's provider: a field has an unexpected type or shape.", "messages");
        }
    }

    /// <summary>An Anthropic error body as OpenAI's error message, or null.</summary>
    public static string? ErrorMessage(ReadOnlySpan<byte> body)
    {
        try
        {
            return JsonNode.Parse(body)?["error"]?["message"]?.GetValue<string>();
        }
        catch (Exception ex) when (ex is JsonException or InvalidOperationException)
        {
            return null;
        }
    }

    /// <summary>Anthropic's stop reason as a chat finish reason (documented in docs/api.md).</summary>
    internal static string? FinishReason(string? stopReason, bool answeredAsJson = false) => stopReason switch
    {
        null => null,
        "max_tokens" or "model_context_window_exceeded" => "length",
        "tool_use" => answeredAsJson ? "stop" : "tool_calls",
        "refusal" => "content_filter",
        _ => "stop", // end_turn, stop_sequence, pause_turn
    };

    /// <summary>
    /// Anthropic's usage as OpenAI's: every input token is a prompt token (uncached, read from the cache, or written to
    /// it); <c>cached_tokens</c> are the cache reads, <c>cache_write_tokens</c> the cache writes.
    /// </summary>
    internal static JsonObject Usage(AnthropicUsage usage) => new()
    {
        ["prompt_tokens"] = usage.PromptTokens,
        ["completion_tokens"] = usage.Output,
        ["total_tokens"] = usage.PromptTokens + usage.Output,
        ["prompt_tokens_details"] = new JsonObject { ["cached_tokens"] = usage.CacheRead, ["cache_write_tokens"] = usage.CacheWrite },
    };

    /// <summary>Token counts as Anthropic reports them.</summary>
    internal readonly record struct AnthropicUsage(long Input, long CacheRead, long CacheWrite, long Output)
    {
        public long PromptTokens => Input + CacheRead + CacheWrite;

        /// <summary>Reads the counts present in <paramref name="usage"/>, keeping <paramref name="earlier"/>'s for the others.</summary>
        public static AnthropicUsage Read(JsonNode? usage, AnthropicUsage earlier = default) => usage is null ? earlier : new(
            Count(usage["input_tokens"]) ?? earlier.Input,
            Count(usage["cache_read_input_tokens"]) ?? earlier.CacheRead,
            Count(usage["cache_creation_input_tokens"]) ?? earlier.CacheWrite,
            Count(usage["output_tokens"]) ?? earlier.Output);

        private static long? Count(JsonNode? value) => value is JsonValue number && number.GetValueKind() == JsonValueKind.Number ? number.GetValue<long>() : null;
    }
}

/// <summary>The upstream failed after the stream to the client had begun.</summary>
public sealed class UpstreamStreamException(string message) : Exception(message);
