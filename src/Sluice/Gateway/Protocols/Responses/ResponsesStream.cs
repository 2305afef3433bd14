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

    // The text item being streamed.
    private string? _messageId;
    private int _messageIndex;
    private StringBuilder? _text;

    // The tool call being streamed (chat's index for it).
    private int? _callIndex;
    private string? _callItemId;
    private int _callOutputIndex;
    private string _callId = "";
    private string _callName = "";
    private StringBuilder? _arguments;

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
                    CloseCall(events);
                    OpenMessage(events);
                    _text!.Append(piece);
                    events.Add(Event("response.output_text.delta", new JsonObject
                    {
                        ["item_id"] = _messageId,
                        ["output_index"] = _messageIndex,
                        ["content_index"] = 0,
                        ["delta"] = piece,
                        ["logprobs"] = new JsonArray(),
                    }));
                }
            }

            foreach (var call in delta?["tool_calls"] as JsonArray ?? [])
            {
                var callIndex = call?["index"] is JsonValue i ? i.GetValue<int>() : 0;
                if (_callIndex != callIndex)
                {
                    CloseMessage(events);
                    CloseCall(events);
                    _callIndex = callIndex;
                    _callItemId = ResponsesShapes.NewId("fc_");
                    _callOutputIndex = _output.Count;
                    _output.Add(null); // its place, filled when it is done
                    _callId = call?["id"]?.GetValue<string>() ?? ResponsesShapes.NewId("call_");
                    _callName = call?["function"]?["name"]?.GetValue<string>() ?? "";
                    _arguments = new StringBuilder();
                    events.Add(Event("response.output_item.added", new JsonObject
                    {
                        ["output_index"] = _callOutputIndex,
                        ["item"] = ResponsesShapes.FunctionCallItem(_callItemId, _callId, _callName, "", "in_progress"),
                    }));
                }

                if (call?["function"]?["arguments"] is JsonValue args && args.GetValue<string>() is { Length: > 0 } argumentsDelta)
                {
                    _arguments!.Append(argumentsDelta);
                    events.Add(Event("response.function_call_arguments.delta", new JsonObject
                    {
                        ["item_id"] = _callItemId,
                        ["output_index"] = _callOutputIndex,
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
        CloseCall(events);
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
        _text = new StringBuilder();
        events.Add(Event("response.output_item.added", new JsonObject
        {
            ["output_index"] = _messageIndex,
            ["item"] = ResponsesShapes.MessageItem(_messageId, "in_progress", []),
        }));
        events.Add(Event("response.content_part.added", new JsonObject
        {
            ["item_id"] = _messageId,
            ["output_index"] = _messageIndex,
            ["content_index"] = 0,
            ["part"] = ResponsesShapes.OutputText(""),
        }));
    }

    private void CloseMessage(List<SseEvent> events)
    {
        if (_messageId is null)
        {
            return;
        }

        var text = _text!.ToString();
        events.Add(Event("response.output_text.done", new JsonObject
        {
            ["item_id"] = _messageId,
            ["output_index"] = _messageIndex,
            ["content_index"] = 0,
            ["text"] = text,
            ["logprobs"] = new JsonArray(),
        }));
        events.Add(Event("response.content_part.done", new JsonObject
        {
            ["item_id"] = _messageId,
            ["output_index"] = _messageIndex,
            ["content_index"] = 0,
            ["part"] = ResponsesShapes.OutputText(text),
        }));
        var item = ResponsesShapes.MessageItem(_messageId, "completed", [ResponsesShapes.OutputText(text)]);
        _output[_messageIndex] = item;
        events.Add(Event("response.output_item.done", new JsonObject { ["output_index"] = _messageIndex, ["item"] = item.DeepClone() }));
        _messageId = null;
        _text = null;
    }

    private void CloseCall(List<SseEvent> events)
    {
        if (_callItemId is null)
        {
            return;
        }

        var arguments = _arguments!.ToString();
        events.Add(Event("response.function_call_arguments.done", new JsonObject
        {
            ["item_id"] = _callItemId,
            ["name"] = _callName,
            ["output_index"] = _callOutputIndex,
            ["arguments"] = arguments,
        }));
        var item = ResponsesShapes.FunctionCallItem(_callItemId, _callId, _callName, arguments, "completed");
        _output[_callOutputIndex] = item;
        events.Add(Event("response.output_item.done", new JsonObject { ["output_index"] = _callOutputIndex, ["item"] = item.DeepClone() }));
        _callItemId = null;
        _callIndex = null;
        _arguments = null;
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

                return true;
            case "error":
                return true;
            default:
                return false;
        }
    }
}
