using System.Text.Json;

namespace Sluice.Gateway.Protocols;

/// <summary>How a caller speaks to Sluice: OpenAI's chat completions, completions and embeddings, the Responses API, or Anthropic's Messages API.</summary>
public enum InferenceProtocol
{
    OpenAi,
    Responses,
    AnthropicMessages,
}

/// <summary>
/// An inbound protocol other than OpenAI's own endpoints (the Responses API, Anthropic Messages): a thin adapter in
/// front of the pipeline, which runs every call as a chat completion. The protocol translates the caller's body into a
/// chat completion request and the pipeline's chat completion answer back into its own shape. When the route's upstream
/// speaks the protocol itself (<see cref="NativeFormat"/>), the upstream gets the caller's body (model and limits
/// rewritten) and its answer goes through untouched, only read for usage. Errors reach the caller in the protocol's
/// shape. No method here may put content in an exception message or a log line.
/// </summary>
public interface IInboundProtocol
{
    InferenceProtocol Protocol { get; }

    /// <summary>The usage event's endpoint (<c>responses</c>, <c>messages</c>).</summary>
    string EndpointName { get; }

    /// <summary>The upstream answer format that is this protocol itself (passed through), or null when no upstream speaks it.</summary>
    ResponseFormat? NativeFormat { get; }

    /// <summary>
    /// The caller's body as a chat completion request body. A field that cannot be translated is an
    /// <see cref="OpenAiException"/> (400) naming it, never a silent drop. A stream asks for usage
    /// (<c>stream_options.include_usage</c>): the protocol's closing events carry it.
    /// </summary>
    byte[] ToChatCompletions(ReadOnlyMemory<byte> body);

    /// <summary>A whole <c>chat.completion</c> answer (usage included) as this protocol's answer.</summary>
    byte[] FromChatCompletion(byte[] completion, InferenceRequest request);

    /// <summary>A translator for one streamed answer: <c>chat.completion.chunk</c>s in, this protocol's events out.</summary>
    IStreamTranslator StartStream(InferenceRequest request);

    /// <summary>Reads a native whole answer: false when it is not one well-formed answer; <paramref name="reported"/> says whether it carried usage.</summary>
    bool TryReadNativeUsage(ReadOnlySpan<byte> answer, out TokenUsage usage, out bool reported);

    /// <summary>Reads usage from a native event stream passed through event by event.</summary>
    INativeStreamMeter StartNativeStream();

    /// <summary>An error body in this protocol's shape.</summary>
    void WriteError(Utf8JsonWriter json, OpenAiException failure);

    /// <summary>An error as one event of this protocol's stream (the stream ends after it).</summary>
    SseEvent ErrorEvent(OpenAiException failure);
}

/// <summary>One server-sent event: its name (null: none) and its data.</summary>
public readonly record struct SseEvent(string? Event, string Data)
{
    public string Format() => Event is null ? $"data: {Data}\n\n" : $"event: {Event}\ndata: {Data}\n\n";
}

/// <summary>Translates one streamed chat completion into a protocol's events.</summary>
public interface IStreamTranslator
{
    /// <summary>One <c>chat.completion.chunk</c> (its JSON; the usage-only chunk included) as zero or more events.</summary>
    IEnumerable<SseEvent> Chunk(string chunk);

    /// <summary>The upstream's stream ended (<c>[DONE]</c>): the protocol's closing events.</summary>
    IEnumerable<SseEvent> Finish();
}

/// <summary>Observes a native event stream as it passes through.</summary>
public interface INativeStreamMeter
{
    /// <summary>Observes one event; true when it is the stream's last.</summary>
    bool Observe(string? eventType, string data);

    /// <summary>The usage reported so far.</summary>
    TokenUsage Usage { get; }

    /// <summary>Whether the stream reported usage (otherwise Sluice counts it).</summary>
    bool SawUsage { get; }

    /// <summary>Whether an event carried content (for counting when no usage comes).</summary>
    long ContentEvents { get; }

    /// <summary>
    /// Whether the stream ended in the provider's own failure event (Anthropic's <c>error</c>, the Responses API's
    /// <c>error</c> or <c>response.failed</c>): the call is then a 502, charged only what the provider reported.
    /// </summary>
    bool Failed => false;
}
