using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Sluice.Gateway.Protocols.Responses;

/// <summary>
/// One streamed chat completion as the Responses API's typed events, each with its <c>sequence_number</c>:
/// <c>response.created</c>, <c>response.in_progress</c>; per text answer <c>response.output_item.added</c>,
/// <c>response.content_part.added</c>, <c>response.output_text.delta</c>…, <c>response.output_text.done</c>,
/// <c>response.content_part.done</c>, <c>response.output_item.done</c>; per tool call <c>response.output_item.added</c>,
/// <c>response.function_call_arguments.delta</c>…/<c>.done</c>, <c>response.output_item.done</c>; then
/// <c>response.completed</c> (or <c>response.incomplete</c>) with the whole response and its usage.
/// </summary>
internal sealed class ResponsesStreamTranslator(JsonObject? request, string model, long createdAt) : IStreamTranslator
{
    private readonly string _id = ResponsesShapes.NewId("resp_");
    private readonly JsonArray _output = [];
    private string _model = model;
    private bool _started;
    private int _sequence;
    private string? _finishReason;
    private JsonObject? _usage;

    // The message item being streamed: its finished parts, and the part being streamed (output_text or refusal).
    private string? _messageId;
    private int _messageIndex;
    private JsonArray? _parts;
    private string? _partType;
    private StringBuilder? _text;

    // The tool calls being streamed, by chat's index for each (deltas of parallel calls may interleave).
    private readonly Dictionary<int, ToolCallItem> _calls = [];

    private sealed class ToolCallItem(string itemId, int outputIndex, string callId, string name)
    {
        public string ItemId { get; } = itemId;

        public int OutputIndex { get; } = outputIndex;

        public string CallId { get; } = callId;

        public string Name { get; } = name;

        public StringBuilder Arguments { get; } = new();
    }

    public int NextSequence => _sequence;

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
        var events = new List<SseEvent>();
        var node = JsonNode.Parse(chunk) as JsonObject ?? throw new JsonException("a chunk is not an object");
        if (node["model"] is JsonValue m && m.GetValueKind() == JsonValueKind.String)
        {
            _model = m.GetValue<string>();
        }

        Start(events);
        if (node["usage"] is JsonObject usage)
        {
            _usage = ResponsesShapes.Usage(usage);
        }

        foreach (var choice in node["choices"] as JsonArray ?? [])
        {
            if (choice?["index"] is JsonValue index && index.GetValue<int>() != 0)
            {
                continue; // a Responses call asks for one choice
            }

            var delta = choice?["delta"] as JsonObject;
            foreach (var field in new[] { "content", "refusal" })
            {
                if (delta?[field] is JsonValue text && text.GetValueKind() == JsonValueKind.String && text.GetValue<string>() is { Length: > 0 } piece)
                {
                    CloseCalls(events);
                    OpenMessage(events);
                    var refusal = field == "refusal";
                    OpenPart(events, refusal ? "refusal" : "output_text");
                    _text!.Append(piece);
                    var fields = new JsonObject
                    {
                        ["item_id"] = _messageId,
                        ["output_index"] = _messageIndex,
                        ["content_index"] = _parts!.Count,
                        ["delta"] = piece,
                    };
                    if (!refusal)
                    {
                        fields["logprobs"] = new JsonArray();
                    }

                    events.Add(Event(refusal ? "response.refusal.delta" : "response.output_text.delta", fields));
                }
            }

            foreach (var call in delta?["tool_calls"] as JsonArray ?? [])
            {
                var callIndex = call?["index"] is JsonValue i ? i.GetValue<int>() : 0;
                if (!_calls.TryGetValue(callIndex, out var item))
                {
                    CloseMessage(events);
                    item = new ToolCallItem(
                        ResponsesShapes.NewId("fc_"), _output.Count, call?["id"]?.GetValue<string>() ?? ResponsesShapes.NewId("call_"), call?["function"]?["name"]?.GetValue<string>() ?? "");
                    _calls[callIndex] = item;
                    _output.Add(null); // its place, filled when it is done
                    events.Add(Event("response.output_item.added", new JsonObject
                    {
                        ["output_index"] = item.OutputIndex,
                        ["item"] = ResponsesShapes.FunctionCallItem(item.ItemId, item.CallId, item.Name, "", "in_progress"),
                    }));
                }

                if (call?["function"]?["arguments"] is JsonValue args && args.GetValue<string>() is { Length: > 0 } argumentsDelta)
                {
                    item.Arguments.Append(argumentsDelta);
                    events.Add(Event("response.function_call_arguments.delta", new JsonObject
                    {
                        ["item_id"] = item.ItemId,
                        ["output_index"] = item.OutputIndex,
                        ["delta"] = argumentsDelta,
                    }));
                }
            }

            if (choice?["finish_reason"] is JsonValue finish && finish.GetValueKind() == JsonValueKind.String)
            {
                _finishReason = finish.GetValue<string>();
            }
        }

        return events;
    }

    public IEnumerable<SseEvent> Finish()
    {
        var events = new List<SseEvent>();
        Start(events);
        CloseMessage(events);
        CloseCalls(events);
        var (status, reason) = ResponsesShapes.Status(_finishReason is null ? null : JsonValue.Create(_finishReason));
        var response = ResponsesShapes.Response(request, _id, createdAt, _model, status, reason, (JsonArray)_output.DeepClone(), _usage);
        events.Add(Event(status == "completed" ? "response.completed" : "response.incomplete", new JsonObject { ["response"] = response }));
        return events;
    }

    private void Start(List<SseEvent> events)
    {
        if (_started)
        {
            return;
        }

        _started = true;
        foreach (var type in new[] { "response.created", "response.in_progress" })
        {
            var response = ResponsesShapes.Response(request, _id, createdAt, _model, "in_progress", null, [], null);
            events.Add(Event(type, new JsonObject { ["response"] = response }));
        }
    }

    private void OpenMessage(List<SseEvent> events)
    {
        if (_messageId is not null)
        {
            return;
        }

        _messageId = ResponsesShapes.NewId("msg_");
        _messageIndex = _output.Count;
        _output.Add(null);
        _parts = [];
        events.Add(Event("response.output_item.added", new JsonObject
        {
            ["output_index"] = _messageIndex,
            ["item"] = ResponsesShapes.MessageItem(_messageId, "in_progress", []),
        }));
    }

    private static JsonObject Part(string type, string text) =>
        type == "refusal" ? new JsonObject { ["type"] = "refusal", ["refusal"] = text } : ResponsesShapes.OutputText(text);

    /// <summary>Opens a content part of this type in the message (closing one of the other type first).</summary>
    private void OpenPart(List<SseEvent> events, string type)
    {
        if (_partType == type)
        {
            return;
        }

        ClosePart(events);
        _partType = type;
        _text = new StringBuilder();
        events.Add(Event("response.content_part.added", new JsonObject
        {
            ["item_id"] = _messageId,
            ["output_index"] = _messageIndex,
            ["content_index"] = _parts!.Count,
            ["part"] = Part(type, ""),
        }));
    }

    private void ClosePart(List<SseEvent> events)
    {
        if (_partType is null)
        {
            return;
        }

        var text = _text!.ToString();
        var refusal = _partType == "refusal";
        var done = new JsonObject
        {
            ["item_id"] = _messageId,
            ["output_index"] = _messageIndex,
            ["content_index"] = _parts!.Count,
            [refusal ? "refusal" : "text"] = text,
        };
        if (!refusal)
        {
            done["logprobs"] = new JsonArray();
        }

        events.Add(Event(refusal ? "response.refusal.done" : "response.output_text.done", done));
        events.Add(Event("response.content_part.done", new JsonObject
        {
            ["item_id"] = _messageId,
            ["output_index"] = _messageIndex,
            ["content_index"] = _parts.Count,
            ["part"] = Part(_partType, text),
        }));
        _parts.Add(Part(_partType, text));
        _partType = null;
        _text = null;
    }

    private void CloseMessage(List<SseEvent> events)
    {
        if (_messageId is null)
        {
            return;
        }

        ClosePart(events);
        var item = ResponsesShapes.MessageItem(_messageId, "completed", _parts!);
        _output[_messageIndex] = item;
        events.Add(Event("response.output_item.done", new JsonObject { ["output_index"] = _messageIndex, ["item"] = item.DeepClone() }));
        _messageId = null;
        _parts = null;
    }

    /// <summary>Closes the tool calls being streamed, in the order they were opened.</summary>
    private void CloseCalls(List<SseEvent> events)
    {
        foreach (var call in _calls.Values.OrderBy(c => c.OutputIndex))
        {
            var arguments = call.Arguments.ToString();
            events.Add(Event("response.function_call_arguments.done", new JsonObject
            {
                ["item_id"] = call.ItemId,
                ["name"] = call.Name,
                ["output_index"] = call.OutputIndex,
                ["arguments"] = arguments,
            }));
            var item = ResponsesShapes.FunctionCallItem(call.ItemId, call.CallId, call.Name, arguments, "completed");
            _output[call.OutputIndex] = item;
            events.Add(Event("response.output_item.done", new JsonObject { ["output_index"] = call.OutputIndex, ["item"] = item.DeepClone() }));
        }

        _calls.Clear();
    }

    private SseEvent Event(string type, JsonObject fields)
    {
        var data = new JsonObject { ["type"] = type };
        foreach (var (name, value) in fields.ToList())
        {
            fields.Remove(name);
            data[name] = value;
        }

        data["sequence_number"] = _sequence++;
        return new SseEvent(type, data.ToJsonString());
    }
}

/// <summary>Reads usage from a provider's own Responses API event stream as it passes through.</summary>
internal sealed class ResponsesNativeMeter : INativeStreamMeter
{
    private int _lastSequence = -1;

    public TokenUsage Usage { get; private set; }

    public bool SawUsage { get; private set; }

    public long ContentEvents { get; private set; }

    public bool Failed { get; private set; }

    public int NextSequence => _lastSequence + 1;

    public bool Observe(string? eventType, string data)
    {
        using var document = JsonDocument.Parse(data);
        var root = document.RootElement;
        var type = eventType ?? (root.TryGetProperty("type", out var t) && t.ValueKind == JsonValueKind.String ? t.GetString() : null);
        if (root.TryGetProperty("sequence_number", out var sequence) && sequence.TryGetInt32(out var number))
        {
            _lastSequence = Math.Max(_lastSequence, number);
        }

        switch (type)
        {
            case "response.output_text.delta" or "response.function_call_arguments.delta" or "response.refusal.delta":
                ContentEvents++;
                return false;
            case "response.completed" or "response.incomplete" or "response.failed":
                if (root.TryGetProperty("response", out var response) && ResponsesShapes.TryReadUsage(response, out var usage))
                {
                    Usage = usage;
                    SawUsage = true;
                }

                Failed = type == "response.failed";
                return true;
            case "error":
                Failed = true;
                return true;
            default:
                return false;
        }
    }
}
