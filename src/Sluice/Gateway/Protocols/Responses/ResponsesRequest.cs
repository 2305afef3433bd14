using System.Text.Json;
using System.Text.Json.Nodes;

namespace Sluice.Gateway.Protocols.Responses;

/// <summary>
/// A <c>/v1/responses</c> request (OpenAI's <c>CreateResponse</c>) as a chat completion request. Sluice keeps no
/// content, so the API is stateless here: nothing is stored, and whatever needs a stored response or conversation, a
/// built-in tool or a field that has no chat completion equivalent is a 400 naming it. Never a silent drop. Error
/// messages name fields, never quote values.
/// </summary>
internal static class ResponsesRequest
{
    private static string Stateless(string field) =>
        $"Sluice keeps no content, so it cannot store responses or conversations: send the whole conversation in 'input' instead (earlier outputs included) and leave '{field}' out.";

    /// <summary>
    /// 63, not 64: a function tool's <c>parameters</c> moves one level deeper in chat completions
    /// (<c>tools[].function.parameters</c>), and the translated body must stay within the 64 levels the pipeline reads.
    /// </summary>
    internal const int MaxDepth = 63;

    public static byte[] ToChatCompletions(ReadOnlyMemory<byte> body)
    {
        try
        {
            return Translate(body);
        }
        catch (Exception ex) when (ex is ArgumentException or InvalidOperationException or FormatException or JsonException)
        {
            // A property repeated in one object, or a value of a shape JsonNode cannot read: the caller's input, never a 500.
            throw OpenAiException.Invalid("The request body could not be read: a property is repeated or a value has an unexpected shape.");
        }
    }

    private static byte[] Translate(ReadOnlyMemory<byte> body)
    {
        JsonObject request;
        try
        {
            request = JsonNode.Parse(body.Span, documentOptions: new JsonDocumentOptions { MaxDepth = MaxDepth }) as JsonObject
                ?? throw OpenAiException.Invalid("The request body must be a JSON object.");
        }
        catch (JsonException)
        {
            throw OpenAiException.Invalid("The request body is not valid JSON.", code: "invalid_json");
        }

        var chat = new JsonObject();
        var messages = new JsonArray();
        JsonNode? input = null;
        var sawInput = false;
        foreach (var (name, value) in request)
        {
            switch (name)
            {
                case "model":
                    chat["model"] = value?.DeepClone();
                    break;
                case "input":
                    input = value;
                    sawInput = true;
                    break;
                case "instructions":
                    if (value is not null)
                    {
                        messages.Insert(0, new JsonObject { ["role"] = "system", ["content"] = String(value, "instructions") });
                    }

                    break;
                case "tools":
                    if (value is not null)
                    {
                        chat["tools"] = Tools(value);
                    }

                    break;
                case "tool_choice":
                    if (value is not null)
                    {
                        chat["tool_choice"] = ToolChoice(value);
                    }

                    break;
                case "text":
                    Text(value, chat);
                    break;
                case "max_output_tokens":
                    if (value is not null)
                    {
                        chat["max_completion_tokens"] = value.GetValueKind() == JsonValueKind.Number && value.AsValue().TryGetValue<int>(out var max) && max > 0
                            ? max
                            : throw WrongType("max_output_tokens", "a positive integer");
                    }

                    break;
                case "temperature" or "top_p":
                    if (value is not null)
                    {
                        chat[name] = value.GetValueKind() == JsonValueKind.Number ? value.DeepClone() : throw WrongType(name, "a number");
                    }

                    break;
                case "parallel_tool_calls" or "stream":
                    if (value is not null)
                    {
                        chat[name] = value.GetValueKind() is JsonValueKind.True or JsonValueKind.False ? value.DeepClone() : throw WrongType(name, "a boolean");
                    }

                    break;
                case "user" or "safety_identifier" or "prompt_cache_key" or "service_tier":
                    if (value is not null)
                    {
                        chat[name] = String(value, name);
                    }

                    break;
                case "metadata":
                    // Echoed back in the response object; Sluice stores nothing it could be attached to.
                    if (value is not null and not JsonObject)
                    {
                        throw WrongType("metadata", "an object");
                    }

                    break;
                case "stream_options":
                    // include_obfuscation only pads deltas; translated streams carry no padding, and usage always comes.
                    if (value is not null and not JsonObject)
                    {
                        throw WrongType("stream_options", "an object");
                    }

                    foreach (var (option, _) in value as JsonObject ?? [])
                    {
                        if (option != "include_obfuscation")
                        {
                            throw Unsupported($"stream_options.{option}");
                        }
                    }

                    break;
                case "reasoning":
                    Reasoning(value, chat);
                    break;
                case "store":
                    if (value?.GetValueKind() == JsonValueKind.True)
                    {
                        throw OpenAiException.Invalid(Stateless("store") + " Responses are never stored ('store' is false).", "store", "unsupported_parameter");
                    }

                    if (value is not null && value.GetValueKind() != JsonValueKind.False)
                    {
                        throw WrongType("store", "a boolean");
                    }

                    break;
                case "previous_response_id" or "conversation":
                    if (value is not null)
                    {
                        throw OpenAiException.Invalid(Stateless(name), name, "unsupported_parameter");
                    }

                    break;
                case "background":
                    if (value?.GetValueKind() == JsonValueKind.True)
                    {
                        throw OpenAiException.Invalid(
                            "Background responses are not supported: Sluice keeps no content to fetch later. Send the request without 'background' (stream it for long answers).",
                            "background", "unsupported_parameter");
                    }

                    break;
                case "truncation":
                    if (value is not null && (value.GetValueKind() != JsonValueKind.String || value.GetValue<string>() != "disabled"))
                    {
                        throw OpenAiException.Invalid("Only 'disabled' is supported for 'truncation': Sluice does not drop input items.", "truncation", "unsupported_parameter");
                    }

                    break;
                case "include":
                    if (value is JsonArray { Count: > 0 })
                    {
                        throw OpenAiException.Invalid("'include' is not supported: the extra output it asks for (logprobs, encrypted reasoning, tool results) has no equivalent here. Leave it out.", "include", "unsupported_parameter");
                    }

                    if (value is not null and not JsonArray)
                    {
                        throw WrongType("include", "an array");
                    }

                    break;
                default:
                    throw Unsupported(name);
            }
        }

        if (!sawInput || input is null)
        {
            throw OpenAiException.Invalid("'input' is a required property and must not be empty.", "input", "missing_required_parameter");
        }

        Input(input, messages);
        if (messages.Count == 0 || messages.All(m => m!["role"]!.GetValue<string>() == "system"))
        {
            throw OpenAiException.Invalid("'input' is a required property and must not be empty.", "input", "missing_required_parameter");
        }

        chat["messages"] = messages;
        if (chat["stream"]?.GetValue<bool>() == true)
        {
            chat["stream_options"] = new JsonObject { ["include_usage"] = true }; // the closing event carries usage
        }

        return JsonSerializer.SerializeToUtf8Bytes(chat);
    }

    private static void Input(JsonNode input, JsonArray messages)
    {
        if (input.GetValueKind() == JsonValueKind.String)
        {
            messages.Add(new JsonObject { ["role"] = "user", ["content"] = input.GetValue<string>() });
            return;
        }

        if (input is not JsonArray items)
        {
            throw WrongType("input", "a string or an array of input items");
        }

        for (var i = 0; i < items.Count; i++)
        {
            var field = $"input[{i}]";
            if (items[i] is not JsonObject item)
            {
                throw WrongType(field, "an object");
            }

            var type = item["type"] is { } t ? String(t, $"{field}.type") : (item.ContainsKey("role") ? "message" : null);
            switch (type)
            {
                case "message":
                    messages.Add(Message(item, field));
                    break;
                case "function_call":
                    Known(item, field, "type", "id", "call_id", "name", "arguments", "status");
                    var call = new JsonObject
                    {
                        ["id"] = Required(item, "call_id", field),
                        ["type"] = "function",
                        ["function"] = new JsonObject { ["name"] = Required(item, "name", field), ["arguments"] = Required(item, "arguments", field) },
                    };
                    if (messages.Count > 0 && messages[^1] is JsonObject { } last && last["role"]?.GetValue<string>() == "assistant")
                    {
                        if (last["tool_calls"] is not JsonArray calls)
                        {
                            last["tool_calls"] = calls = [];
                        }

                        calls.Add(call);
                    }
                    else
                    {
                        messages.Add(new JsonObject { ["role"] = "assistant", ["content"] = null, ["tool_calls"] = new JsonArray(call) });
                    }

                    break;
                case "function_call_output":
                    Known(item, field, "type", "id", "call_id", "output", "status");
                    var output = item["output"] ?? throw Missing($"{field}.output");
                    messages.Add(new JsonObject
                    {
                        ["role"] = "tool",
                        ["tool_call_id"] = Required(item, "call_id", field),
                        ["content"] = output.GetValueKind() == JsonValueKind.String ? output.GetValue<string>() : Parts(output, $"{field}.output", "tool"),
                    });
                    break;
                case null:
                    throw Missing($"{field}.type");
                default:
                    throw OpenAiException.Invalid(
                        $"Input items of this type cannot be translated ('{field}.type'): Sluice supports messages, function_call and function_call_output items.",
                        $"{field}.type", "unsupported_value");
            }
        }
    }

    private static JsonObject Message(JsonObject item, string field)
    {
        Known(item, field, "type", "role", "content", "id", "status");
        var role = item["role"] is { } r ? String(r, $"{field}.role") : throw Missing($"{field}.role");
        if (role is not ("user" or "assistant" or "system" or "developer"))
        {
            throw OpenAiException.Invalid($"'{field}.role' must be one of user, assistant, system or developer.", $"{field}.role", "invalid_value");
        }

        var content = item["content"] ?? throw Missing($"{field}.content");
        return new JsonObject
        {
            ["role"] = role,
            ["content"] = content.GetValueKind() == JsonValueKind.String ? content.GetValue<string>() : Parts(content, $"{field}.content", role),
        };
    }

    private static JsonArray Parts(JsonNode content, string field, string role)
    {
        if (content is not JsonArray parts)
        {
            throw WrongType(field, "a string or an array of content parts");
        }

        var chat = new JsonArray();
        for (var i = 0; i < parts.Count; i++)
        {
            var partField = $"{field}[{i}]";
            if (parts[i] is not JsonObject part)
            {
                throw WrongType(partField, "an object");
            }

            var type = part["type"] is { } t ? String(t, $"{partField}.type") : throw Missing($"{partField}.type");
            switch (type)
            {
                case "input_text" or "output_text":
                    Known(part, partField, "type", "text", "annotations", "logprobs");
                    chat.Add(new JsonObject { ["type"] = "text", ["text"] = Required(part, "text", partField) });
                    break;
                case "input_image" when role is "user" or "tool":
                    Known(part, partField, "type", "image_url", "detail", "file_id");
                    if (part["file_id"] is not null)
                    {
                        throw OpenAiException.Invalid($"'{partField}.file_id' is not supported: give the image as 'image_url' (a URL or a data URL).", $"{partField}.file_id", "unsupported_parameter");
                    }

                    var image = new JsonObject { ["url"] = Required(part, "image_url", partField) };
                    if (part["detail"] is { } detail)
                    {
                        image["detail"] = String(detail, $"{partField}.detail");
                    }

                    chat.Add(new JsonObject { ["type"] = "image_url", ["image_url"] = image });
                    break;
                default:
                    throw OpenAiException.Invalid(
                        $"Content parts of this type cannot be translated here ('{partField}.type'): Sluice supports input_text and input_image (user), output_text (assistant).",
                        $"{partField}.type", "unsupported_value");
            }
        }

        return chat;
    }

    private static JsonArray Tools(JsonNode value)
    {
        if (value is not JsonArray tools)
        {
            throw WrongType("tools", "an array");
        }

        var chat = new JsonArray();
        for (var i = 0; i < tools.Count; i++)
        {
            var field = $"tools[{i}]";
            if (tools[i] is not JsonObject tool)
            {
                throw WrongType(field, "an object");
            }

            var type = tool["type"] is { } t ? String(t, $"{field}.type") : throw Missing($"{field}.type");
            if (type != "function")
            {
                throw OpenAiException.Invalid(
                    $"Only function tools are supported ('{field}.type'): built-in tools (web search, file search, computer use, code interpreter, image generation, MCP, shell) run on OpenAI's servers, not through Sluice.",
                    $"{field}.type", "unsupported_value");
            }

            Known(tool, field, "type", "name", "description", "parameters", "strict");
            var function = new JsonObject { ["name"] = Required(tool, "name", field) };
            foreach (var optional in new[] { "description", "parameters", "strict" })
            {
                if (tool[optional] is { } v)
                {
                    function[optional] = v.DeepClone();
                }
            }

            chat.Add(new JsonObject { ["type"] = "function", ["function"] = function });
        }

        return chat;
    }

    private static JsonNode ToolChoice(JsonNode value)
    {
        if (value.GetValueKind() == JsonValueKind.String)
        {
            var mode = value.GetValue<string>();
            return mode is "none" or "auto" or "required"
                ? mode
                : throw OpenAiException.Invalid("'tool_choice' must be none, auto, required or a function.", "tool_choice", "invalid_value");
        }

        if (value is JsonObject choice && choice["type"]?.GetValueKind() == JsonValueKind.String && choice["type"]!.GetValue<string>() == "function")
        {
            Known(choice, "tool_choice", "type", "name");
            return new JsonObject { ["type"] = "function", ["function"] = new JsonObject { ["name"] = Required(choice, "name", "tool_choice") } };
        }

        throw OpenAiException.Invalid("Only none, auto, required and a function are supported for 'tool_choice' (built-in tools and allowed_tools are not).", "tool_choice", "unsupported_value");
    }

    private static void Text(JsonNode? value, JsonObject chat)
    {
        if (value is null)
        {
            return;
        }

        if (value is not JsonObject text)
        {
            throw WrongType("text", "an object");
        }

        Known(text, "text", "format", "verbosity");
        if (text["verbosity"] is { } verbosity)
        {
            chat["verbosity"] = String(verbosity, "text.verbosity");
        }

        if (text["format"] is not { } formatNode)
        {
            return;
        }

        if (formatNode is not JsonObject format)
        {
            throw WrongType("text.format", "an object");
        }

        var type = format["type"] is { } t ? String(t, "text.format.type") : throw Missing("text.format.type");
        switch (type)
        {
            case "text" or "json_object":
                Known(format, "text.format", "type");
                chat["response_format"] = new JsonObject { ["type"] = type };
                break;
            case "json_schema":
                Known(format, "text.format", "type", "name", "schema", "description", "strict");
                var schema = new JsonObject { ["name"] = Required(format, "name", "text.format"), ["schema"] = format["schema"]?.DeepClone() ?? throw Missing("text.format.schema") };
                foreach (var optional in new[] { "description", "strict" })
                {
                    if (format[optional] is { } v)
                    {
                        schema[optional] = v.DeepClone();
                    }
                }

                chat["response_format"] = new JsonObject { ["type"] = "json_schema", ["json_schema"] = schema };
                break;
            default:
                throw OpenAiException.Invalid("'text.format.type' must be text, json_object or json_schema.", "text.format.type", "unsupported_value");
        }
    }

    private static void Reasoning(JsonNode? value, JsonObject chat)
    {
        if (value is null)
        {
            return;
        }

        if (value is not JsonObject reasoning)
        {
            throw WrongType("reasoning", "an object");
        }

        foreach (var (name, field) in reasoning)
        {
            if (name == "effort")
            {
                if (field is not null)
                {
                    chat["reasoning_effort"] = String(field, "reasoning.effort");
                }
            }
            else if (field is not null)
            {
                // Summaries of the model's reasoning have no chat completion equivalent.
                throw Unsupported($"reasoning.{name}");
            }
        }
    }

    private static void Known(JsonObject item, string field, params string[] names)
    {
        foreach (var (name, _) in item)
        {
            if (Array.IndexOf(names, name) < 0)
            {
                throw Unsupported($"{field}.{name}");
            }
        }
    }

    private static string Required(JsonObject item, string name, string field) =>
        item[name] is { } value ? String(value, $"{field}.{name}") : throw Missing($"{field}.{name}");

    private static string String(JsonNode value, string field) =>
        value.GetValueKind() == JsonValueKind.String ? value.GetValue<string>() : throw WrongType(field, "a string");

    private static OpenAiException Missing(string field) =>
        OpenAiException.Invalid($"'{field}' is a required property.", field, "missing_required_parameter");

    private static OpenAiException WrongType(string field, string expected) =>
        OpenAiException.Invalid($"'{field}' must be {expected}.", field, "invalid_type");

    private static OpenAiException Unsupported(string field) =>
        OpenAiException.Invalid($"'{field}' is not supported by Sluice's Responses API (it has no translation, and Sluice never drops a field silently). Leave it out.", field, "unsupported_parameter");
}
