using System.Security.Cryptography;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Sluice.Gateway.Protocols.Responses;

/// <summary>
/// OpenAI's Responses API (<c>POST /v1/responses</c>) in front of the pipeline: requests translated to chat completions
/// (<see cref="ResponsesRequest"/>), answers back into <c>response</c> objects and the typed stream events
/// (<see cref="ResponsesStreamTranslator"/>), or passed through from a provider that speaks the API itself. One instance
/// per call: a stream's error event continues its sequence numbers.
/// </summary>
public sealed class ResponsesProtocol(TimeProvider time) : IInboundProtocol
{
    private ResponsesStreamTranslator? _translator;
    private ResponsesNativeMeter? _native;

    public InferenceProtocol Protocol => InferenceProtocol.Responses;

    public string EndpointName => "responses";

    public ResponseFormat? NativeFormat => ResponseFormat.OpenAiResponses;

    public byte[] ToChatCompletions(ReadOnlyMemory<byte> body) => ResponsesRequest.ToChatCompletions(body);

    public byte[] FromChatCompletion(byte[] completion, InferenceRequest request)
    {
        var chat = JsonNode.Parse(completion)!.AsObject();
        var choice = (chat["choices"] as JsonArray)?.FirstOrDefault() as JsonObject;
        var message = choice?["message"] as JsonObject;
        var output = new JsonArray();
        var text = message?["content"] is JsonValue content && content.GetValueKind() == JsonValueKind.String ? content.GetValue<string>() : null;
        var refusal = message?["refusal"] is JsonValue r && r.GetValueKind() == JsonValueKind.String ? r.GetValue<string>() : null;
        var (status, reason) = ResponsesShapes.Status(choice?["finish_reason"]);
        if (!string.IsNullOrEmpty(text) || refusal is not null)
        {
            var parts = new JsonArray();
            if (!string.IsNullOrEmpty(text))
            {
                parts.Add(ResponsesShapes.OutputText(text));
            }

            if (refusal is not null)
            {
                parts.Add(new JsonObject { ["type"] = "refusal", ["refusal"] = refusal });
            }

            output.Add(ResponsesShapes.MessageItem(ResponsesShapes.NewId("msg_"), status, parts));
        }

        foreach (var call in message?["tool_calls"] as JsonArray ?? [])
        {
            output.Add(ResponsesShapes.FunctionCallItem(
                ResponsesShapes.NewId("fc_"),
                call?["id"]?.GetValue<string>() ?? ResponsesShapes.NewId("call_"),
                call?["function"]?["name"]?.GetValue<string>() ?? "",
                call?["function"]?["arguments"]?.GetValue<string>() ?? "",
                "completed"));
        }

        var response = ResponsesShapes.Response(
            Original(request), ResponsesShapes.NewId("resp_"), time.GetUtcNow().ToUnixTimeSeconds(),
            chat["model"]?.GetValue<string>() ?? request.Model, status, reason, output, ResponsesShapes.Usage(chat["usage"]));
        return JsonSerializer.SerializeToUtf8Bytes(response);
    }

    public IStreamTranslator StartStream(InferenceRequest request) =>
        _translator = new ResponsesStreamTranslator(Original(request), request.Model, time.GetUtcNow().ToUnixTimeSeconds());

    public bool TryReadNativeUsage(ReadOnlySpan<byte> answer, out TokenUsage usage, out bool reported)
    {
        usage = default;
        reported = false;
        try
        {
            using var document = JsonDocument.Parse(answer.ToArray());
            if (document.RootElement.ValueKind != JsonValueKind.Object)
            {
                return false;
            }

            reported = ResponsesShapes.TryReadUsage(document.RootElement, out usage);
            return true;
        }
        catch (JsonException)
        {
            return false;
        }
    }

    public INativeStreamMeter StartNativeStream() => _native = new ResponsesNativeMeter();

    public void WriteError(Utf8JsonWriter json, OpenAiException failure) =>
        OpenAiError.Write(json, failure.Message, failure.Type, failure.Code, failure.Param);

    public SseEvent ErrorEvent(OpenAiException failure)
    {
        var sequence = _translator?.NextSequence ?? _native?.NextSequence ?? 0;
        var error = new JsonObject
        {
            ["type"] = "error",
            ["code"] = failure.Code,
            ["message"] = failure.Message,
            ["param"] = failure.Param,
            ["sequence_number"] = sequence,
        };
        return new SseEvent("error", error.ToJsonString());
    }

    /// <summary>The caller's own request, for the fields a response object echoes (null when it cannot be read).</summary>
    private static JsonObject? Original(InferenceRequest request)
    {
        try
        {
            return request.NativeBody.IsEmpty ? null : JsonNode.Parse(request.NativeBody.Span) as JsonObject;
        }
        catch (JsonException)
        {
            return null;
        }
    }
}

/// <summary>The Responses API's objects, as in OpenAI's API description (<c>Response</c>, its output items and usage).</summary>
internal static class ResponsesShapes
{
    public static string NewId(string prefix) => prefix + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(24));

    /// <summary>A chat finish reason as a response status and, when incomplete, its reason.</summary>
    public static (string Status, string? Reason) Status(JsonNode? finishReason) =>
        (finishReason as JsonValue)?.GetValueKind() == JsonValueKind.String ? finishReason!.GetValue<string>() switch
        {
            "length" => ("incomplete", "max_output_tokens"),
            "content_filter" => ("incomplete", "content_filter"),
            _ => ("completed", null),
        } : ("completed", null);

    public static JsonObject OutputText(string text) => new() { ["type"] = "output_text", ["text"] = text, ["annotations"] = new JsonArray(), ["logprobs"] = new JsonArray() };

    public static JsonObject MessageItem(string id, string status, JsonArray content) => new()
    {
        ["id"] = id,
        ["type"] = "message",
        ["status"] = status,
        ["role"] = "assistant",
        ["content"] = content,
    };

    public static JsonObject FunctionCallItem(string id, string callId, string name, string arguments, string status) => new()
    {
        ["id"] = id,
        ["type"] = "function_call",
        ["status"] = status,
        ["call_id"] = callId,
        ["name"] = name,
        ["arguments"] = arguments,
    };

    /// <summary>A chat completion's usage as the Responses API's (<c>cost</c> copied when the chat usage carries it).</summary>
    public static JsonObject? Usage(JsonNode? chat)
    {
        if (chat is not JsonObject usage)
        {
            return null;
        }

        long Read(JsonNode? node) => node is JsonValue v && v.GetValueKind() == JsonValueKind.Number ? v.GetValue<long>() : 0;
        var input = Read(usage["prompt_tokens"]);
        var output = Read(usage["completion_tokens"]);
        var result = new JsonObject
        {
            ["input_tokens"] = input,
            ["input_tokens_details"] = new JsonObject { ["cached_tokens"] = Read(usage["prompt_tokens_details"]?["cached_tokens"]) },
            ["output_tokens"] = output,
            ["output_tokens_details"] = new JsonObject { ["reasoning_tokens"] = Read(usage["completion_tokens_details"]?["reasoning_tokens"]) },
            ["total_tokens"] = usage["total_tokens"] is JsonValue ? Read(usage["total_tokens"]) : input + output,
        };
        if (usage["cost"] is { } cost)
        {
            result["cost"] = cost.DeepClone();
        }

        return result;
    }

    /// <summary>Reads a Responses API usage object (a response's <c>usage</c>).</summary>
    public static bool TryReadUsage(JsonElement response, out TokenUsage usage)
    {
        usage = default;
        if (!response.TryGetProperty("usage", out var u) || u.ValueKind != JsonValueKind.Object)
        {
            return false;
        }

        long Read(JsonElement parent, string name) =>
            parent.ValueKind == JsonValueKind.Object && parent.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.Number && v.TryGetInt64(out var n) ? n : 0;
        var cached = u.TryGetProperty("input_tokens_details", out var details) ? Read(details, "cached_tokens") : 0;
        usage = new TokenUsage(Read(u, "input_tokens"), Read(u, "output_tokens"), cached);
        return true;
    }

    /// <summary>
    /// A <c>response</c> object: its own fields, and the request's settings echoed back as OpenAI's API does (defaults
    /// where the caller sent none). Always <c>store: false</c>: Sluice keeps no content.
    /// </summary>
    public static JsonObject Response(
        JsonObject? request, string id, long createdAt, string model, string status, string? incompleteReason, JsonArray output, JsonObject? usage)
    {
        JsonNode? Echo(string name, JsonNode? fallback) => request?[name] is { } value ? value.DeepClone() : fallback;
        var response = new JsonObject
        {
            ["id"] = id,
            ["object"] = "response",
            ["created_at"] = createdAt,
            ["status"] = status,
            ["background"] = false,
            ["error"] = null,
            ["incomplete_details"] = incompleteReason is null ? null : new JsonObject { ["reason"] = incompleteReason },
            ["instructions"] = Echo("instructions", null),
            ["max_output_tokens"] = Echo("max_output_tokens", null),
            ["metadata"] = Echo("metadata", new JsonObject()),
            ["model"] = model,
            ["output"] = output,
            ["parallel_tool_calls"] = Echo("parallel_tool_calls", true),
            ["previous_response_id"] = null,
            ["reasoning"] = new JsonObject { ["effort"] = request?["reasoning"]?["effort"]?.DeepClone(), ["summary"] = null },
            ["store"] = false,
            ["temperature"] = Echo("temperature", 1.0),
            ["text"] = Echo("text", new JsonObject { ["format"] = new JsonObject { ["type"] = "text" } }),
            ["tool_choice"] = Echo("tool_choice", "auto"),
            ["tools"] = Echo("tools", new JsonArray()),
            ["top_p"] = Echo("top_p", 1.0),
            ["truncation"] = "disabled",
            ["usage"] = usage,
        };
        foreach (var optional in new[] { "user", "safety_identifier", "prompt_cache_key", "service_tier" })
        {
            if (request?[optional] is { } value)
            {
                response[optional] = value.DeepClone();
            }
        }

        return response;
    }
}
