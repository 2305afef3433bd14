using System.Buffers;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;

namespace Sluice.Gateway;

/// <summary>
/// The built-in test model: answers "Echo: " and the last user message (chat) or the prompt (completions), with real
/// token counts from a simple word-and-punctuation tokenizer, streamed one token per chunk; embeddings are
/// deterministic unit vectors derived from SHA-256 of each input. Nothing leaves the process.
/// </summary>
internal sealed class EchoUpstream(TimeProvider time) : IUpstream
{
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
        var (said, promptText) = chat ? LastUserMessage(root) : (Text(root.GetProperty("prompt")), Text(root.GetProperty("prompt")));
        var tokens = Tokenize("Echo: " + said);
        if ((request.CompletionLimit > 0 ? request.CompletionLimit : request.MaxTokens) is { } max && tokens.Count > max)
        {
            tokens = tokens.Take(max).ToList();
        }

        var promptTokens = Tokenize(promptText).Count;
        var id = (chat ? "chatcmpl-" : "cmpl-") + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(12));
        var created = time.GetUtcNow().ToUnixTimeSeconds();
        var finish = (request.CompletionLimit > 0 ? request.CompletionLimit : request.MaxTokens) is { } limit && Tokenize("Echo: " + said).Count > limit ? "length" : "stop";
        return request.Stream
            ? Stream(chat, id, created, tokens, promptTokens, finish)
            : Whole(chat, id, created, string.Concat(tokens), promptTokens, tokens.Count, finish);
    }

    private static byte[] Whole(bool chat, string id, long created, string text, int promptTokens, int completionTokens, string finish)
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
            json.WriteStartObject();
            json.WriteNumber("index", 0);
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
            json.WriteEndArray();
            WriteUsage(json, promptTokens, completionTokens);
            json.WriteString("system_fingerprint", "sluice-echo");
            json.WriteEndObject();
        }

        return output.WrittenSpan.ToArray();
    }

    private static byte[] Stream(bool chat, string id, long created, List<string> tokens, int promptTokens, string finish)
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
                    WriteUsage(json, promptTokens, tokens.Count);
                }
                else
                {
                    json.WriteNull("usage");
                }

                json.WriteEndObject();
            }

            sse.Append("data: ").Append(Encoding.UTF8.GetString(output.WrittenSpan)).Append("\n\n");
        }

        void Choice(Utf8JsonWriter json, string? role, string? content, string? finishReason)
        {
            json.WriteStartObject();
            json.WriteNumber("index", 0);
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

        if (chat)
        {
            Chunk(json => Choice(json, "assistant", "", null), false);
        }

        foreach (var token in tokens)
        {
            Chunk(json => Choice(json, null, token, null), false);
        }

        Chunk(json => Choice(json, null, chat ? null : "", finish), false);
        Chunk(_ => { }, true);
        sse.Append("data: [DONE]\n\n");
        return Encoding.UTF8.GetBytes(sse.ToString());
    }

    private static byte[] Embeddings(JsonElement root)
    {
        var input = root.GetProperty("input");
        var inputs = input.ValueKind == JsonValueKind.Array ? input.EnumerateArray().Select(Text).ToList() : [Text(input)];
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
                json.WriteStartArray("embedding");
                foreach (var value in Vector(inputs[i]))
                {
                    json.WriteNumberValue(value);
                }

                json.WriteEndArray();
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

    private static float[] Vector(string text)
    {
        var hash = SHA256.HashData(Encoding.UTF8.GetBytes(text));
        var vector = new float[EmbeddingDimensions];
        for (var i = 0; i < EmbeddingDimensions; i++)
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
