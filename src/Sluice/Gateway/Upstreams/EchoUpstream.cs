using System.Buffers;
using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;

namespace Sluice.Gateway;

/// <summary>
/// The built-in test model: answers "Echo: " and the last user message (chat) or the prompt (completions), with real
/// token counts from a simple word-and-punctuation tokenizer, streamed one token per chunk; embeddings are
/// deterministic unit vectors derived from SHA-256 of each input. Nothing leaves the process. It behaves like a model
/// for the parameters SDKs send: <c>n</c> identical choices, <c>stop</c> (the answer ends before the first stop
/// sequence), the completion limit (finish reason <c>length</c>), <c>encoding_format: "base64"</c> and
/// <c>dimensions</c> for embeddings; <c>logprobs</c> / <c>top_logprobs</c> are refused with a 400 naming the field
/// rather than ignored.
/// </summary>
internal sealed class EchoUpstream(TimeProvider time) : IUpstream
{
    /// <summary>The most tokens an answer has when the caller sets no limit (documented in docs/api.md): memory stays bounded.</summary>
    internal const int DefaultMaxTokens = 4096;

    /// <summary>The most characters an answer has, whatever the limit (documented in docs/api.md).</summary>
    internal const int MaxAnswerChars = 65536;

    private static List<string> CutToChars(List<string> tokens, int limit)
    {
        var kept = new List<string>();
        var length = 0;
        foreach (var token in tokens)
        {
            if (length + token.Length > limit)
            {
                if (length < limit)
                {
                    kept.Add(token[..(limit - length)]);
                }

                break;
            }

            kept.Add(token);
            length += token.Length;
        }

        return kept;
    }

    private const int EmbeddingDimensions = 16;

    public ProviderKind Kind => ProviderKind.Echo;

    public Task<UpstreamResponse> SendAsync(InferenceRequest request, RouteInfo route, CancellationToken cancellationToken)
    {
        using var document = JsonDocument.Parse(request.Body);
        var root = document.RootElement;
        var body = request.Endpoint switch
        {
            InferenceEndpoint.Embeddings => Embeddings(root),
            _ => Completion(request, root),
        };
        return Task.FromResult(new UpstreamResponse(200, new MemoryStream(body, writable: false), ResponseFormat.OpenAi, length: body.Length));
    }

    private byte[] Completion(InferenceRequest request, JsonElement root)
    {
        var chat = request.Endpoint == InferenceEndpoint.ChatCompletions;
        RefuseLogprobs(root, chat);
        var stops = StopSequences(root);
        var (said, promptText) = chat ? LastUserMessage(root) : (Text(root.GetProperty("prompt")), Text(root.GetProperty("prompt")));
        var answer = "Echo: " + said;
        var cut = stops.Select(stop => answer.IndexOf(stop, StringComparison.Ordinal)).Where(at => at >= 0).DefaultIfEmpty(-1).Min();
        if (cut >= 0)
        {
            answer = answer[..cut];
        }

        var tokens = Tokenize(answer);
        if (tokens.Count > 0 && tokens.Sum(t => t.Length) < answer.Length)
        {
            tokens[^1] += answer[tokens.Sum(t => t.Length)..]; // whitespace before a stop sequence is part of the answer
        }

        var finish = "stop";
        if (answer.Length > MaxAnswerChars)
        {
            // One huge word is one token: the characters are capped too, so n choices stay within n * 64 KiB.
            tokens = CutToChars(tokens, MaxAnswerChars);
            finish = "length";
        }

        var max = (request.CompletionLimit > 0 ? request.CompletionLimit : request.MaxTokens) ?? DefaultMaxTokens;
        if (tokens.Count > max)
        {
            tokens = tokens.Take(max).ToList();
            finish = "length";
        }

        var promptTokens = Tokenize(promptText).Count;
        var id = (chat ? "chatcmpl-" : "cmpl-") + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(12));
        var created = time.GetUtcNow().ToUnixTimeSeconds();
        var choices = Math.Max(1, request.Choices);
        return request.Stream
            ? Stream(chat, id, created, tokens, promptTokens, finish, choices)
            : Whole(chat, id, created, string.Concat(tokens), promptTokens, tokens.Count, finish, choices);
    }

    /// <summary>Log probabilities are not something this model has: asking for them is a 400 naming the field, not a silent omission.</summary>
    private static void RefuseLogprobs(JsonElement root, bool chat)
    {
        foreach (var field in new[] { "logprobs", "top_logprobs" })
        {
            if (root.TryGetProperty(field, out var value) && value.ValueKind is not (JsonValueKind.Null or JsonValueKind.False)
                && !(chat && field == "top_logprobs" && value.ValueKind == JsonValueKind.Number && value.TryGetInt32(out var zero) && zero == 0))
            {
                throw OpenAiException.Invalid($"'{field}' is not supported by this model (the echo test model has no log probabilities); remove it.", field, "unsupported_parameter");
            }
        }
    }

    /// <summary><c>stop</c>: absent, null, a string or an array of up to 4 strings.</summary>
    private static List<string> StopSequences(JsonElement root)
    {
        if (!root.TryGetProperty("stop", out var stop) || stop.ValueKind == JsonValueKind.Null)
        {
            return [];
        }

        if (stop.ValueKind == JsonValueKind.String)
        {
            return stop.GetString() is { Length: > 0 } one ? [one] : [];
        }

        if (stop.ValueKind == JsonValueKind.Array && stop.GetArrayLength() <= 4 && stop.EnumerateArray().All(s => s.ValueKind == JsonValueKind.String))
        {
            return stop.EnumerateArray().Select(s => s.GetString()!).Where(s => s.Length > 0).ToList();
        }

        throw OpenAiException.Invalid("'stop' must be a string or an array of up to 4 strings.", "stop", "invalid_type");
    }

    private static byte[] Whole(bool chat, string id, long created, string text, int promptTokens, int completionTokens, string finish, int choices)
    {
        var output = new ArrayBufferWriter<byte>();
        using (var json = new Utf8JsonWriter(output))
        {
            json.WriteStartObject();
            json.WriteString("id", id);
            json.WriteString("object", chat ? "chat.completion" : "text_completion");
            json.WriteNumber("created", created);
            json.WriteString("model", Catalog.EchoModelId);
            json.WriteStartArray("choices");
            for (var index = 0; index < choices; index++)
            {
                json.WriteStartObject();
                json.WriteNumber("index", index);
                if (chat)
                {
                    json.WriteStartObject("message");
                    json.WriteString("role", "assistant");
                    json.WriteString("content", text);
                    json.WriteNull("refusal");
                    json.WriteEndObject();
                    json.WriteNull("logprobs");
                }
                else
                {
                    json.WriteString("text", text);
                    json.WriteNull("logprobs");
                }

                json.WriteString("finish_reason", finish);
                json.WriteEndObject();
            }

            json.WriteEndArray();
            WriteUsage(json, promptTokens, completionTokens * choices);
            json.WriteString("system_fingerprint", "sluice-echo");
            json.WriteEndObject();
        }

        return output.WrittenSpan.ToArray();
    }

    private static byte[] Stream(bool chat, string id, long created, List<string> tokens, int promptTokens, string finish, int count)
    {
        var sse = new StringBuilder();
        void Chunk(Action<Utf8JsonWriter> choices, bool usage)
        {
            var output = new ArrayBufferWriter<byte>();
            using (var json = new Utf8JsonWriter(output))
            {
                json.WriteStartObject();
                json.WriteString("id", id);
                json.WriteString("object", chat ? "chat.completion.chunk" : "text_completion");
                json.WriteNumber("created", created);
                json.WriteString("model", Catalog.EchoModelId);
                json.WriteString("system_fingerprint", "sluice-echo");
                json.WriteStartArray("choices");
                choices(json);
                json.WriteEndArray();
                if (usage)
                {
                    WriteUsage(json, promptTokens, tokens.Count * count);
                }
                else
                {
                    json.WriteNull("usage");
                }

                json.WriteEndObject();
            }

            sse.Append("data: ").Append(Encoding.UTF8.GetString(output.WrittenSpan)).Append("\n\n");
        }

        void Choice(Utf8JsonWriter json, int index, string? role, string? content, string? finishReason)
        {
            json.WriteStartObject();
            json.WriteNumber("index", index);
            if (chat)
            {
                json.WriteStartObject("delta");
                if (role is not null)
                {
                    json.WriteString("role", role);
                }

                if (content is not null)
                {
                    json.WriteString("content", content);
                }

                json.WriteEndObject();
            }
            else
            {
                json.WriteString("text", content ?? "");
            }

            json.WriteNull("logprobs");
            json.WriteString("finish_reason", finishReason);
            json.WriteEndObject();
        }

        // With n > 1 the choices' chunks interleave, one chunk per choice and token, as OpenAI's do.
        for (var index = 0; index < count; index++)
        {
            var i = index;
            if (chat)
            {
                Chunk(json => Choice(json, i, "assistant", "", null), false);
            }
        }

        foreach (var token in tokens)
        {
            for (var index = 0; index < count; index++)
            {
                var i = index;
                Chunk(json => Choice(json, i, null, token, null), false);
            }
        }

        for (var index = 0; index < count; index++)
        {
            var i = index;
            Chunk(json => Choice(json, i, null, chat ? null : "", finish), false);
        }

        Chunk(_ => { }, true);
        sse.Append("data: [DONE]\n\n");
        return Encoding.UTF8.GetBytes(sse.ToString());
    }

    private static byte[] Embeddings(JsonElement root)
    {
        var input = root.GetProperty("input");
        var inputs = input.ValueKind == JsonValueKind.Array ? input.EnumerateArray().Select(Text).ToList() : [Text(input)];
        var base64 = EncodingFormat(root);
        var dimensions = Dimensions(root);
        Span<byte> bytes = stackalloc byte[EmbeddingDimensions * sizeof(float)];
        var output = new ArrayBufferWriter<byte>();
        using (var json = new Utf8JsonWriter(output))
        {
            json.WriteStartObject();
            json.WriteString("object", "list");
            json.WriteStartArray("data");
            for (var i = 0; i < inputs.Count; i++)
            {
                json.WriteStartObject();
                json.WriteString("object", "embedding");
                json.WriteNumber("index", i);
                var vector = Vector(inputs[i], dimensions);
                if (base64)
                {
                    // OpenAI's base64: the float32 values, little-endian, one after another.
                    var written = bytes[..(vector.Length * sizeof(float))];
                    for (var d = 0; d < vector.Length; d++)
                    {
                        BinaryPrimitives.WriteSingleLittleEndian(written[(d * sizeof(float))..], vector[d]);
                    }

                    json.WriteBase64String("embedding", written);
                }
                else
                {
                    json.WriteStartArray("embedding");
                    foreach (var value in vector)
                    {
                        json.WriteNumberValue(value);
                    }

                    json.WriteEndArray();
                }

                json.WriteEndObject();
            }

            json.WriteEndArray();
            json.WriteString("model", Catalog.EchoModelId);
            var tokens = inputs.Sum(t => Tokenize(t).Count);
            json.WriteStartObject("usage");
            json.WriteNumber("prompt_tokens", tokens);
            json.WriteNumber("total_tokens", tokens);
            json.WriteEndObject();
            json.WriteEndObject();
        }

        return output.WrittenSpan.ToArray();
    }

    /// <summary><c>encoding_format</c>: absent, null, "float" or "base64".</summary>
    private static bool EncodingFormat(JsonElement root) =>
        !root.TryGetProperty("encoding_format", out var format) || format.ValueKind == JsonValueKind.Null
            ? false
            : format.ValueKind == JsonValueKind.String && format.GetString() is "float" or "base64"
                ? format.GetString() == "base64"
                : throw OpenAiException.Invalid("'encoding_format' must be \"float\" or \"base64\".", "encoding_format", "invalid_value");

    /// <summary><c>dimensions</c>: absent, null or 1 to 16; a shorter vector is the first values, normalized again (as OpenAI shortens).</summary>
    private static int Dimensions(JsonElement root) =>
        !root.TryGetProperty("dimensions", out var dimensions) || dimensions.ValueKind == JsonValueKind.Null
            ? EmbeddingDimensions
            : dimensions.ValueKind == JsonValueKind.Number && dimensions.TryGetInt32(out var n) && n is > 0 and <= EmbeddingDimensions
                ? n
                : throw OpenAiException.Invalid($"'dimensions' must be an integer from 1 to {EmbeddingDimensions} for this model.", "dimensions", "invalid_value");

    private static float[] Vector(string text, int dimensions = EmbeddingDimensions)
    {
        var hash = SHA256.HashData(Encoding.UTF8.GetBytes(text));
        var vector = new float[dimensions];
        for (var i = 0; i < dimensions; i++)
        {
            vector[i] = (hash[i * 2] - 127.5f) / 127.5f;
        }

        var norm = MathF.Sqrt(vector.Sum(v => v * v));
        return norm == 0 ? vector : vector.Select(v => v / norm).ToArray();
    }

    private static void WriteUsage(Utf8JsonWriter json, int promptTokens, int completionTokens)
    {
        json.WriteStartObject("usage");
        json.WriteNumber("prompt_tokens", promptTokens);
        json.WriteNumber("completion_tokens", completionTokens);
        json.WriteNumber("total_tokens", promptTokens + completionTokens);
        json.WriteStartObject("prompt_tokens_details");
        json.WriteNumber("cached_tokens", 0);
        json.WriteEndObject();
        json.WriteEndObject();
    }

    private static (string LastUser, string AllText) LastUserMessage(JsonElement root)
    {
        var last = "";
        var all = new StringBuilder();
        foreach (var message in root.GetProperty("messages").EnumerateArray())
        {
            var content = message.TryGetProperty("content", out var c) ? Text(c) : "";
            all.Append(content).Append(' ');
            if (message.TryGetProperty("role", out var role) && role.ValueKind == JsonValueKind.String && role.GetString() == "user")
            {
                last = content;
            }
        }

        return (last, all.ToString());
    }

    private static string Text(JsonElement element) => element.ValueKind switch
    {
        JsonValueKind.String => element.GetString()!,
        JsonValueKind.Array => string.Join(" ", element.EnumerateArray().Select(part =>
            part.ValueKind == JsonValueKind.Object && part.TryGetProperty("text", out var text) ? text.GetString() : part.ValueKind == JsonValueKind.String ? part.GetString() : "")),
        _ => "",
    };

    /// <summary>Words and single punctuation marks, each with the whitespace before it: "Echo: hi!" → ["Echo", ":", " hi", "!"].</summary>
    internal static List<string> Tokenize(string text)
    {
        var tokens = new List<string>();
        var i = 0;
        while (i < text.Length)
        {
            var start = i;
            while (i < text.Length && char.IsWhiteSpace(text[i]))
            {
                i++;
            }

            if (i >= text.Length)
            {
                break;
            }

            if (char.IsLetterOrDigit(text[i]))
            {
                while (i < text.Length && char.IsLetterOrDigit(text[i]))
                {
                    i++;
                }
            }
            else
            {
                i++;
            }

            tokens.Add(text[start..i]);
        }

        return tokens;
    }
}
