using System.Buffers;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Sluice.Gateway.Protocols.Anthropic;

/// <summary>
/// Anthropic's Messages API (<c>POST /v1/messages</c>) in front of the pipeline: one instance per call, carrying the
/// caller's <c>anthropic-version</c> and <c>anthropic-beta</c> headers (checked when the body is translated, so a bad
/// header is a metered 400 in Anthropic's shape) for an Anthropic upstream, which gets them with the body as it came.
/// </summary>
public sealed class AnthropicMessagesProtocol : IInboundProtocol
{
    /// <summary>The versions Anthropic has published; Sluice answers in the 2023-06-01 shapes (the events and errors of today's API).</summary>
    public static readonly IReadOnlyList<string> KnownVersions = ["2023-06-01", "2023-01-01"];

    /// <summary>
    /// The betas accepted: each only enables fields Sluice translates or hints with no effect on the answer's shape. Sent
    /// on to an Anthropic upstream; on other targets they change nothing. Any other beta is a 400 naming the header.
    /// </summary>
    public static readonly IReadOnlyList<string> KnownBetas =
    [
        "prompt-caching-2024-07-31", "token-efficient-tools-2025-02-19", "fine-grained-tool-streaming-2025-05-14",
        "interleaved-thinking-2025-05-14", "output-128k-2025-02-19", "extended-cache-ttl-2025-04-11", "context-1m-2025-08-07",
    ];

    /// <summary>An instance for errors only (the API-key gate's 401 and 403), before any header is read.</summary>
    public static readonly AnthropicMessagesProtocol ErrorShape = new(null, null);

    public AnthropicMessagesProtocol(string? version, string? beta)
    {
        Version = version;
        Beta = beta;
    }

    /// <summary>The caller's <c>anthropic-version</c> (null: it sent none).</summary>
    public string? Version { get; }

    /// <summary>The caller's <c>anthropic-beta</c>, comma-separated as sent (null: none).</summary>
    public string? Beta { get; }

    public InferenceProtocol Protocol => InferenceProtocol.AnthropicMessages;

    public string EndpointName => "messages";

    public ResponseFormat? NativeFormat => ResponseFormat.Anthropic;

    /// <summary>The headers are valid: a known version, known betas. Throws a 400 naming the header.</summary>
    public void CheckHeaders()
    {
        if (string.IsNullOrEmpty(Version))
        {
            throw AnthropicRequestTranslation.Invalid("anthropic-version: header is required.", "anthropic-version");
        }

        if (!IsSupportedVersion(Version))
        {
            throw AnthropicRequestTranslation.Invalid(
                $"anthropic-version: this version is not supported; use one of {string.Join(", ", KnownVersions)} or a later dated version (YYYY-MM-DD).", "anthropic-version");
        }

        foreach (var beta in (Beta ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            if (!KnownBetas.Contains(beta))
            {
                throw AnthropicRequestTranslation.Invalid($"anthropic-beta: a beta in this header is not supported by Sluice; supported: {string.Join(", ", KnownBetas)}.", "anthropic-beta");
            }
        }
    }

    /// <summary>
    /// A published version, or a later dated one: Anthropic's SDKs send the version they were built for (the npm SDK 1.14
    /// sends 2026-10-21), and the Messages shapes Sluice speaks are those of 2023-06-01 with later additions, which a
    /// later version keeps. Anything else (not a date, before 2023-01-01) is refused.
    /// </summary>
    public static bool IsSupportedVersion(string version) =>
        KnownVersions.Contains(version)
        || (DateOnly.TryParseExact(version, "yyyy-MM-dd", System.Globalization.CultureInfo.InvariantCulture, System.Globalization.DateTimeStyles.None, out var date)
            && date > new DateOnly(2023, 6, 1));

    public byte[] ToChatCompletions(ReadOnlyMemory<byte> body)
    {
        CheckHeaders();
        var chat = AnthropicRequestTranslation.Translate(body.Span, countOnly: false);
        if (Version == "2023-01-01" && chat["stream"] is not null)
        {
            // 2023-01-01 streamed another event format; Sluice streams only today's (2023-06-01) events.
            throw AnthropicRequestTranslation.Invalid("stream: streaming needs anthropic-version 2023-06-01 (the events of 2023-01-01 are not supported).", "stream");
        }

        return JsonSerializer.SerializeToUtf8Bytes(chat);
    }

    public byte[] FromChatCompletion(byte[] completion, InferenceRequest request)
    {
        try
        {
            return AnthropicAnswerTranslation.Message(completion, request);
        }
        catch (Exception ex) when (ex is JsonException or InvalidOperationException or FormatException or ArgumentException)
        {
            throw new Pipeline.UpstreamAnswerException("upstream_malformed");
        }
    }

    public IStreamTranslator StartStream(InferenceRequest request) => new AnthropicStreamTranslator(request);

    public bool TryReadNativeUsage(ReadOnlySpan<byte> answer, out TokenUsage usage, out bool reported)
    {
        usage = default;
        reported = false;
        try
        {
            using var document = JsonDocument.Parse(answer.ToArray());
            var root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object || !root.TryGetProperty("type", out var type) || type.ValueKind != JsonValueKind.String || type.GetString() != "message")
            {
                return false;
            }

            if (root.TryGetProperty("usage", out var counts) && counts.ValueKind == JsonValueKind.Object)
            {
                usage = NativeUsage(counts, default);
                reported = true;
            }

            return true;
        }
        catch (JsonException)
        {
            return false;
        }
    }

    /// <summary>Anthropic's usage as Sluice counts it: every input token (cached read and written included) is prompt; cached read is cached.</summary>
    internal static TokenUsage NativeUsage(JsonElement counts, TokenUsage before)
    {
        long Read(string name, long otherwise) => counts.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.Number && value.TryGetInt64(out var count) ? count : otherwise;
        var cacheRead = Read("cache_read_input_tokens", before.Cached);
        var hasInput = counts.TryGetProperty("input_tokens", out _);
        var prompt = hasInput
            ? Read("input_tokens", 0) + cacheRead + Read("cache_creation_input_tokens", 0)
            : before.Prompt;
        return new TokenUsage(prompt, Read("output_tokens", before.Completion), cacheRead);
    }

    public INativeStreamMeter StartNativeStream() => new NativeMeter();

    public void WriteError(Utf8JsonWriter json, OpenAiException failure) => AnthropicError.Write(json, failure);

    public SseEvent ErrorEvent(OpenAiException failure)
    {
        var buffer = new ArrayBufferWriter<byte>(256);
        using (var json = new Utf8JsonWriter(buffer))
        {
            AnthropicError.Write(json, failure);
        }

        return new SseEvent("error", System.Text.Encoding.UTF8.GetString(buffer.WrittenSpan));
    }

    /// <summary>
    /// The caller's body for an Anthropic upstream: <c>model</c> set to the route's upstream model and <c>max_tokens</c>
    /// to the limit Sluice held (when there is one); everything else as it came.
    /// </summary>
    public static byte[] NativeBody(InferenceRequest request, string upstreamModel)
    {
        var body = JsonNode.Parse(request.NativeBody.Span)!.AsObject();
        body["model"] = upstreamModel;
        if (request.CompletionLimit > 0)
        {
            body["max_tokens"] = request.CompletionLimit;
        }

        return JsonSerializer.SerializeToUtf8Bytes(body);
    }

    /// <summary>Reads usage from Anthropic's events: <c>message_start</c> (input and cache), <c>message_delta</c> (output), ending at <c>message_stop</c>.</summary>
    private sealed class NativeMeter : INativeStreamMeter
    {
        public TokenUsage Usage { get; private set; }

        public bool SawUsage { get; private set; }

        public long ContentEvents { get; private set; }

        public bool Failed { get; private set; }

        public bool Observe(string? eventType, string data)
        {
            switch (eventType)
            {
                case "message_stop":
                    return true;
                case "error":
                    Failed = true;
                    return true;
                case "content_block_delta":
                    ContentEvents++;
                    return false;
                case "message_start" or "message_delta":
                    using (var document = JsonDocument.Parse(data))
                    {
                        var root = document.RootElement;
                        var holder = eventType == "message_start" && root.TryGetProperty("message", out var message) ? message : root;
                        if (holder.TryGetProperty("usage", out var counts) && counts.ValueKind == JsonValueKind.Object)
                        {
                            Usage = NativeUsage(counts, Usage);
                            SawUsage |= eventType == "message_delta";
                        }
                    }

                    return false;
                default:
                    return false;
            }
        }
    }
}

/// <summary>Errors in Anthropic's shape: <c>{"type":"error","error":{"type","message"}}</c>, the type from the status.</summary>
public static class AnthropicError
{
    public static string TypeFor(int status) => status switch
    {
        400 or 422 => "invalid_request_error",
        401 => "authentication_error",
        402 => "billing_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        504 => "timeout_error",
        503 or 529 => "overloaded_error",
        >= 500 => "api_error",
        _ => "invalid_request_error",
    };

    public static void Write(Utf8JsonWriter json, OpenAiException failure)
    {
        json.WriteStartObject();
        json.WriteString("type", "error");
        json.WriteStartObject("error");
        json.WriteString("type", TypeFor(failure.Status));
        json.WriteString("message", failure.Message);
        json.WriteEndObject();
        json.WriteEndObject();
    }
}
