using System.Text.Json;
using System.Text.Json.Nodes;

namespace Sluice.Gateway.Protocols.Anthropic;

/// <summary>A chat completion answer (whole or streamed) as an Anthropic Messages answer.</summary>
internal static class AnthropicAnswerTranslation
{
    public static byte[] Message(byte[] completion, InferenceRequest request)
    {
        var source = JsonNode.Parse(completion)!.AsObject();
        var choice = (source["choices"] as JsonArray)?.FirstOrDefault() as JsonObject;
        var message = choice?["message"] as JsonObject;
        var content = new JsonArray();
        if (Reasoning(message) is { Length: > 0 } reasoning)
        {
            content.Add(new JsonObject { ["type"] = "thinking", ["thinking"] = reasoning, ["signature"] = "" });
        }

        if (message?["content"] is JsonValue text && text.TryGetValue<string>(out var words) && words.Length > 0)
        {
            content.Add(new JsonObject { ["type"] = "text", ["text"] = words });
        }

        if (message?["tool_calls"] is JsonArray calls)
        {
            // A call the length limit cut off has arguments that are not JSON yet: the answer is the text so far with
            // stop_reason max_tokens and no tool_use block (Anthropic's own behaviour when it runs out mid-call).
            var cutOff = choice?["finish_reason"] is JsonValue f && f.TryGetValue<string>(out var finish) && finish == "length";
            foreach (var call in calls.OfType<JsonObject>())
            {
                var function = call["function"] as JsonObject;
                if (cutOff && !IsObject(function?["arguments"]))
                {
                    continue;
                }

                content.Add(new JsonObject
                {
                    ["type"] = "tool_use",
                    ["id"] = call["id"]?.GetValue<string>() ?? "toolu_" + Guid.NewGuid().ToString("N"),
                    ["name"] = function?["name"]?.GetValue<string>() ?? "",
                    ["input"] = Input(function?["arguments"]?.GetValue<string>()),
                });
            }
        }

        var (stopReason, stopSequence) = StopReason(choice?["finish_reason"]?.GetValue<string>(), choice?["stop_reason"], request);
        var answer = new JsonObject
        {
            ["id"] = MessageId(source["id"]?.GetValue<string>()),
            ["type"] = "message",
            ["role"] = "assistant",
            ["model"] = request.Model,
            ["content"] = content,
            ["stop_reason"] = stopReason,
            ["stop_sequence"] = stopSequence,
            ["usage"] = Usage(source["usage"] as JsonObject),
        };
        return JsonSerializer.SerializeToUtf8Bytes(answer);
    }

    /// <summary>Anthropic counts input tokens without the cached ones, which it reports apart.</summary>
    public static JsonObject Usage(JsonObject? usage)
    {
        var prompt = Long(usage?["prompt_tokens"]);
        var cached = Long(usage?["prompt_tokens_details"]?["cached_tokens"]);
        var written = Long(usage?["prompt_tokens_details"]?["cache_write_tokens"]) + Long(usage?["cache_creation_input_tokens"]);
        var translated = new JsonObject
        {
            ["input_tokens"] = Math.Max(0, prompt - cached - written),
            ["output_tokens"] = Long(usage?["completion_tokens"]),
            ["cache_read_input_tokens"] = cached,
            ["cache_creation_input_tokens"] = written,
        };
        if (usage?["cost"] is { } cost)
        {
            translated["cost"] = cost.DeepClone();
        }

        return translated;
    }

    public static string MessageId(string? chatId) =>
        "msg_" + (string.IsNullOrEmpty(chatId) ? Guid.NewGuid().ToString("N") : chatId.StartsWith("chatcmpl-", StringComparison.Ordinal) ? chatId["chatcmpl-".Length..] : chatId);

    public static (string? Reason, string? Sequence) StopReason(string? finish, JsonNode? matched, InferenceRequest request)
    {
        switch (finish)
        {
            case null:
                return (null, null);
            case "length":
                return ("max_tokens", null);
            case "tool_calls" or "function_call":
                return ("tool_use", null);
            case "content_filter":
                return ("refusal", null);
            default:
                // vLLM names the stop string it met (choice.stop_reason); when it is one of the caller's, say which.
                if (matched is JsonValue v && v.TryGetValue<string>(out var sequence) && StopSequences(request).Contains(sequence))
                {
                    return ("stop_sequence", sequence);
                }

                return ("end_turn", null);
        }
    }

    private static HashSet<string> StopSequences(InferenceRequest request)
    {
        var found = new HashSet<string>(StringComparer.Ordinal);
        using var body = JsonDocument.Parse(request.Body);
        if (body.RootElement.TryGetProperty("stop", out var stop) && stop.ValueKind == JsonValueKind.Array)
        {
            foreach (var item in stop.EnumerateArray())
            {
                found.Add(item.GetString()!);
            }
        }

        return found;
    }

    private static string? Reasoning(JsonObject? message) =>
        (message?["reasoning_content"] ?? message?["reasoning"]) is JsonValue v && v.TryGetValue<string>(out var text) ? text : null;

    /// <summary>A tool call's arguments as the tool_use block's input object.</summary>
    public static JsonNode Input(string? arguments)
    {
        if (string.IsNullOrWhiteSpace(arguments))
        {
            return new JsonObject();
        }

        try
        {
            return JsonNode.Parse(arguments) as JsonObject ?? throw new JsonException();
        }
        catch (JsonException)
        {
            // The model wrote arguments that are not a JSON object: Anthropic's shape cannot carry them as input.
            throw new OpenAiException(502, "The model produced tool-call arguments that are not a JSON object; retry the request.", "server_error", "upstream_malformed");
        }
    }

    private static bool IsObject(JsonNode? arguments)
    {
        if (arguments is not JsonValue v || !v.TryGetValue<string>(out var text))
        {
            return false;
        }

        try
        {
            return string.IsNullOrWhiteSpace(text) || JsonNode.Parse(text) is JsonObject;
        }
        catch (JsonException)
        {
            return false;
        }
    }

    private static long Long(JsonNode? node) => node is JsonValue v && v.TryGetValue<long>(out var n) ? n : 0;
}

/// <summary>
/// <c>chat.completion.chunk</c>s as Anthropic's stream: <c>message_start</c>, per block <c>content_block_start</c>,
/// <c>content_block_delta</c> (<c>text_delta</c>, <c>thinking_delta</c>, <c>input_json_delta</c>) and
/// <c>content_block_stop</c>, then <c>message_delta</c> (stop reason and usage) and <c>message_stop</c>.
/// </summary>
internal sealed class AnthropicStreamTranslator(InferenceRequest request) : IStreamTranslator
{
    private enum Block
    {
        None,
        Text,
        Thinking,
        Tool,
    }

    private bool _started;
    private Block _open;
    private int _index = -1;
    private int _toolIndex = -1;
    private string? _finish;
    private JsonNode? _matched;
    private JsonObject? _usage;
    private string? _id;

    public IEnumerable<SseEvent> Chunk(string chunk)
    {
        try
        {
            return Translate(chunk);
        }
        catch (Exception ex) when (ex is InvalidOperationException or FormatException or ArgumentException)
        {
            // A chunk of an unexpected shape is a broken stream (the relay ends it with an error event), never a 500.
            throw new JsonException("A chunk could not be translated.");
        }
    }

    private List<SseEvent> Translate(string chunk)
    {
        var events = new List<SseEvent>(3);
        var source = JsonNode.Parse(chunk)!.AsObject();
        _id ??= source["id"]?.GetValue<string>();
        Start(events);
        if (source["usage"] is JsonObject usage)
        {
            _usage = usage;
        }

        if ((source["choices"] as JsonArray)?.FirstOrDefault() is not JsonObject choice)
        {
            return events;
        }

        if (choice["delta"] is JsonObject delta)
        {
            if ((delta["reasoning_content"] ?? delta["reasoning"]) is JsonValue r && r.TryGetValue<string>(out var thinking) && thinking.Length > 0)
            {
                Open(events, Block.Thinking, new JsonObject { ["type"] = "thinking", ["thinking"] = "", ["signature"] = "" });
                events.Add(Delta(new JsonObject { ["type"] = "thinking_delta", ["thinking"] = thinking }));
            }

            if (delta["content"] is JsonValue c && c.TryGetValue<string>(out var text) && text.Length > 0)
            {
                Open(events, Block.Text, new JsonObject { ["type"] = "text", ["text"] = "" });
                events.Add(Delta(new JsonObject { ["type"] = "text_delta", ["text"] = text }));
            }

            if (delta["tool_calls"] is JsonArray calls)
            {
                foreach (var call in calls.OfType<JsonObject>())
                {
                    var index = call["index"] is JsonValue iv && iv.TryGetValue<int>(out var i) ? i : _toolIndex;
                    var function = call["function"] as JsonObject;
                    if (index != _toolIndex || _open != Block.Tool)
                    {
                        _toolIndex = index;
                        Open(events, Block.Tool, new JsonObject
                        {
                            ["type"] = "tool_use",
                            ["id"] = call["id"]?.GetValue<string>() ?? "toolu_" + Guid.NewGuid().ToString("N"),
                            ["name"] = function?["name"]?.GetValue<string>() ?? "",
                            ["input"] = new JsonObject(),
                        }, force: true);
                    }

                    if (function?["arguments"] is JsonValue a && a.TryGetValue<string>(out var json) && json.Length > 0)
                    {
                        events.Add(Delta(new JsonObject { ["type"] = "input_json_delta", ["partial_json"] = json }));
                    }
                }
            }
        }

        if (choice["finish_reason"] is JsonValue f && f.TryGetValue<string>(out var finish))
        {
            _finish = finish;
            _matched = choice["stop_reason"]?.DeepClone();
        }

        return events;
    }

    public IEnumerable<SseEvent> Finish()
    {
        var events = new List<SseEvent>(3);
        Start(events);
        Close(events);
        var (reason, sequence) = AnthropicAnswerTranslation.StopReason(_finish ?? "stop", _matched, request);
        events.Add(Event("message_delta", new JsonObject
        {
            ["type"] = "message_delta",
            ["delta"] = new JsonObject { ["stop_reason"] = reason, ["stop_sequence"] = sequence },
            ["usage"] = AnthropicAnswerTranslation.Usage(_usage),
        }));
        events.Add(Event("message_stop", new JsonObject { ["type"] = "message_stop" }));
        return events;
    }

    private void Start(List<SseEvent> events)
    {
        if (_started)
        {
            return;
        }

        _started = true;
        events.Add(Event("message_start", new JsonObject
        {
            ["type"] = "message_start",
            ["message"] = new JsonObject
            {
                ["id"] = AnthropicAnswerTranslation.MessageId(_id),
                ["type"] = "message",
                ["role"] = "assistant",
                ["model"] = request.Model,
                ["content"] = new JsonArray(),
                ["stop_reason"] = null,
                ["stop_sequence"] = null,

                // Chat streams report usage at their end: message_delta carries the counts.
                ["usage"] = new JsonObject { ["input_tokens"] = 0, ["output_tokens"] = 0, ["cache_read_input_tokens"] = 0, ["cache_creation_input_tokens"] = 0 },
            },
        }));
    }

    private void Open(List<SseEvent> events, Block kind, JsonObject block, bool force = false)
    {
        if (_open == kind && !force)
        {
            return;
        }

        Close(events);
        _open = kind;
        _index++;
        events.Add(Event("content_block_start", new JsonObject { ["type"] = "content_block_start", ["index"] = _index, ["content_block"] = block }));
    }

    private void Close(List<SseEvent> events)
    {
        if (_open == Block.None)
        {
            return;
        }

        events.Add(Event("content_block_stop", new JsonObject { ["type"] = "content_block_stop", ["index"] = _index }));
        _open = Block.None;
    }

    private SseEvent Delta(JsonObject delta) =>
        Event("content_block_delta", new JsonObject { ["type"] = "content_block_delta", ["index"] = _index, ["delta"] = delta });

    private static SseEvent Event(string name, JsonObject data) => new(name, data.ToJsonString());
}
