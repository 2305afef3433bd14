using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Sluice.Gateway;

/// <summary>Chat completions to Anthropic's Messages API and back, streaming included.</summary>
internal static class AnthropicTranslation
{
    private const int DefaultMaxTokens = 1024;

    public static byte[] Request(InferenceRequest request, string upstreamModel)
    {
        try
        {
            return Translate(request, upstreamModel);
        }
        catch (Exception ex) when (ex is InvalidOperationException or NullReferenceException or FormatException or KeyNotFoundException)
        {
            // A field of the wrong type or shape (a number for a role, an object for messages…): the client's input,
            // never a server error. The message names no value (it could be content).
            throw OpenAiException.Invalid("The messages could not be translated for this model's provider: a field has an unexpected type or shape.", "messages");
        }
    }

    private static byte[] Translate(InferenceRequest request, string upstreamModel)
    {
        var source = JsonNode.Parse(request.Body.Span)!.AsObject();
        var system = new StringBuilder();
        var messages = new JsonArray();
        foreach (var node in source["messages"]!.AsArray())
        {
            var message = node!.AsObject();
            var role = message["role"]?.GetValue<string>();
            var content = message["content"];
            switch (role)
            {
                case "system" or "developer":
                    system.Append(system.Length > 0 ? "\n" : "").Append(PlainText(content));
                    break;
                case "user" or "assistant":
                    messages.Add(new JsonObject { ["role"] = role, ["content"] = Blocks(content) });
                    break;
                default:
                    throw OpenAiException.Invalid($"Messages with role '{role}' are not supported by this model's provider.", "messages");
            }
        }

        var target = new JsonObject
        {
            ["model"] = upstreamModel,
            ["max_tokens"] = request.CompletionLimit > 0 ? request.CompletionLimit : request.MaxTokens ?? DefaultMaxTokens, // what Sluice held
            ["messages"] = messages,
        };
        if (system.Length > 0)
        {
            target["system"] = system.ToString();
        }

        foreach (var name in new[] { "temperature", "top_p" })
        {
            if (source[name] is { } value)
            {
                target[name] = value.DeepClone();
            }
        }

        if (source["stop"] is { } stop)
        {
            target["stop_sequences"] = stop is JsonArray ? stop.DeepClone() : new JsonArray(stop.DeepClone());
        }

        if (request.Stream)
        {
            target["stream"] = true;
        }

        return JsonSerializer.SerializeToUtf8Bytes(target);
    }

    /// <summary>A Messages API response as a chat completion.</summary>
    public static byte[] Response(ReadOnlySpan<byte> body, string model, long created)
    {
        var message = JsonNode.Parse(body)!.AsObject();
        var text = string.Concat((message["content"] as JsonArray ?? []).Select(b => b?["type"]?.GetValue<string>() == "text" ? b["text"]?.GetValue<string>() : ""));
        var usage = message["usage"];
        var input = usage?["input_tokens"]?.GetValue<long>() ?? 0;
        var cached = usage?["cache_read_input_tokens"]?.GetValue<long>() ?? 0;
        var output = usage?["output_tokens"]?.GetValue<long>() ?? 0;
        var completion = new JsonObject
        {
            ["id"] = message["id"]?.GetValue<string>() ?? "chatcmpl-anthropic",
            ["object"] = "chat.completion",
            ["created"] = created,
            ["model"] = message["model"]?.GetValue<string>() ?? model,
            ["choices"] = new JsonArray(new JsonObject
            {
                ["index"] = 0,
                ["message"] = new JsonObject { ["role"] = "assistant", ["content"] = text, ["refusal"] = null },
                ["logprobs"] = null,
                ["finish_reason"] = FinishReason(message["stop_reason"]?.GetValue<string>()),
            }),
            ["usage"] = usage is null ? null : Usage(input + cached, output, cached), // none reported: Sluice counts
        };
        return JsonSerializer.SerializeToUtf8Bytes(completion);
    }

    /// <summary>An Anthropic error body as OpenAI's error message, or null.</summary>
    public static string? ErrorMessage(ReadOnlySpan<byte> body)
    {
        try
        {
            return JsonNode.Parse(body)?["error"]?["message"]?.GetValue<string>();
        }
        catch (JsonException)
        {
            return null;
        }
    }

    /// <summary>Turns Anthropic stream events into OpenAI chunks, keeping the usage they report.</summary>
    internal sealed class StreamTranslator(string model, long created)
    {
        private string _id = "chatcmpl-anthropic";
        private long _input;
        private long _cached;
        private long _output;
        private string? _finish;

        public long PromptTokens => _input + _cached;

        public long CompletionTokens => _output;

        public long CachedTokens => _cached;

        /// <summary>The OpenAI chunks for one Anthropic event; an error event throws.</summary>
        public IEnumerable<string> Translate(string eventType, string data)
        {
            var node = JsonNode.Parse(data);
            if (eventType == "message_start")
            {
                var message = node?["message"];
                _id = message?["id"]?.GetValue<string>() ?? _id;
                _input = message?["usage"]?["input_tokens"]?.GetValue<long>() ?? 0;
                _cached = message?["usage"]?["cache_read_input_tokens"]?.GetValue<long>() ?? 0;
                yield return Chunk(new JsonObject { ["role"] = "assistant", ["content"] = "" }, null);
            }
            else if (eventType == "content_block_delta")
            {
                var delta = node?["delta"];
                if (delta?["type"]?.GetValue<string>() == "text_delta")
                {
                    yield return Chunk(new JsonObject { ["content"] = delta["text"]?.GetValue<string>() ?? "" }, null);
                }
            }
            else if (eventType == "message_delta")
            {
                _output = node?["usage"]?["output_tokens"]?.GetValue<long>() ?? _output;
                _finish = FinishReason(node?["delta"]?["stop_reason"]?.GetValue<string>());
                yield return Chunk(new JsonObject(), _finish);
            }
            else if (eventType == "error")
            {
                throw new UpstreamStreamException(node?["error"]?["message"]?.GetValue<string>() ?? "the provider reported an error");
            }
        }

        public string UsageChunk()
        {
            var chunk = Base();
            chunk["choices"] = new JsonArray();
            chunk["usage"] = Usage(PromptTokens, _output, _cached);
            return chunk.ToJsonString();
        }

        private string Chunk(JsonObject delta, string? finish)
        {
            var chunk = Base();
            chunk["choices"] = new JsonArray(new JsonObject { ["index"] = 0, ["delta"] = delta, ["logprobs"] = null, ["finish_reason"] = finish });
            chunk["usage"] = null;
            return chunk.ToJsonString();
        }

        private JsonObject Base() => new() { ["id"] = _id, ["object"] = "chat.completion.chunk", ["created"] = created, ["model"] = model };
    }

    private static JsonNode Blocks(JsonNode? content) =>
        content is JsonArray parts ? new JsonArray(parts.Select(TextBlock).ToArray()) : JsonValue.Create(PlainText(content))!;

    private static JsonNode? TextBlock(JsonNode? part)
    {
        if (part is JsonObject block && block["type"]?.GetValue<string>() == "text")
        {
            return new JsonObject { ["type"] = "text", ["text"] = block["text"]?.GetValue<string>() ?? "" };
        }

        throw OpenAiException.Invalid("Only text content parts are supported by this model's provider.", "messages");
    }

    private static string PlainText(JsonNode? content) => content switch
    {
        JsonArray parts => string.Concat(parts.Select(p => p?["text"]?.GetValue<string>() ?? "")),
        JsonValue value when value.TryGetValue<string>(out var text) => text,
        _ => "",
    };

    private static string? FinishReason(string? stopReason) => stopReason switch
    {
        null => null,
        "max_tokens" => "length",
        "tool_use" => "tool_calls",
        _ => "stop",
    };

    private static JsonObject Usage(long prompt, long completion, long cached) => new()
    {
        ["prompt_tokens"] = prompt,
        ["completion_tokens"] = completion,
        ["total_tokens"] = prompt + completion,
        ["prompt_tokens_details"] = new JsonObject { ["cached_tokens"] = cached },
    };
}

/// <summary>The upstream failed after the stream to the client had begun.</summary>
public sealed class UpstreamStreamException(string message) : Exception(message);
