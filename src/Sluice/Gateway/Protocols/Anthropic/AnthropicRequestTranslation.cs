using System.Text.Json;
using System.Text.Json.Nodes;

namespace Sluice.Gateway.Protocols.Anthropic;

/// <summary>
/// An Anthropic Messages request as a chat completion request. Every field is translated or refused with a 400 naming
/// it (<c>messages[0].content[1].type</c>); nothing is dropped without a documented reason (docs/api.md, "Anthropic
/// Messages"). Messages name fields, never values: the values are content.
/// </summary>
internal static class AnthropicRequestTranslation
{
    private static readonly HashSet<string> TopLevel =
    [
        "model", "messages", "system", "max_tokens", "metadata", "stop_sequences", "stream", "temperature", "top_p", "top_k",
        "tools", "tool_choice", "thinking", "service_tier",
    ];

    /// <summary>Anthropic fields Sluice knows but cannot translate for a chat completion target.</summary>
    private static readonly HashSet<string> Unsupported = ["container", "mcp_servers", "context_management"];

    /// <param name="body">The caller's body (valid UTF-8, checked by the pipeline).</param>
    /// <param name="countOnly">For <c>count_tokens</c>: no <c>max_tokens</c>, no <c>stream</c>.</param>
    public static JsonObject Translate(ReadOnlySpan<byte> body, bool countOnly)
    {
        try
        {
            return TranslateCore(body, countOnly);
        }
        catch (Exception ex) when (ex is ArgumentException or InvalidOperationException or FormatException or JsonException)
        {
            // A property repeated in one object, or a value of a shape JsonNode cannot read: the caller's input, never a 500.
            throw Invalid("The request body could not be read: a property is repeated or a value has an unexpected shape.", null);
        }
    }

    private static JsonObject TranslateCore(ReadOnlySpan<byte> body, bool countOnly)
    {
        JsonNode? parsed;
        try
        {
            // 63, not 64: a tool's input_schema moves one level deeper in chat completions (tools[].function.parameters),
            // and the translated body must stay within the 64 levels the pipeline reads.
            parsed = JsonNode.Parse(body, documentOptions: new JsonDocumentOptions { MaxDepth = 63 });
        }
        catch (JsonException)
        {
            throw Invalid("The request body is not valid JSON.", null);
        }

        if (parsed is not JsonObject source)
        {
            throw Invalid("The request body must be a JSON object.", null);
        }

        foreach (var (name, _) in source)
        {
            if (Unsupported.Contains(name))
            {
                throw Invalid($"{name}: this field is not supported by Sluice's Messages API.", name);
            }

            if (!TopLevel.Contains(name) || (countOnly && name is "max_tokens" or "stream" or "metadata" or "stop_sequences" or "temperature" or "top_p" or "top_k" or "service_tier"))
            {
                throw Invalid($"{name}: Extra inputs are not permitted.", name);
            }
        }

        var chat = new JsonObject();
        chat["model"] = source["model"] is JsonValue model && model.TryGetValue<string>(out var modelName) && modelName.Length > 0
            ? modelName
            : throw Invalid("model: Field required (a string naming the model).", "model");

        if (!countOnly)
        {
            chat["max_tokens"] = source["max_tokens"] switch
            {
                null => throw Invalid("max_tokens: Field required.", "max_tokens"),
                JsonValue v when v.TryGetValue<int>(out var n) && n > 0 => n,
                _ => throw Invalid("max_tokens: must be a positive integer.", "max_tokens"),
            };
        }

        var messages = new JsonArray();
        if (source["system"] is { } system)
        {
            messages.Add(new JsonObject { ["role"] = "system", ["content"] = SystemText(system) });
        }

        var sourceMessages = source["messages"] as JsonArray ?? throw Invalid("messages: Field required (an array of messages).", "messages");
        if (sourceMessages.Count == 0)
        {
            throw Invalid("messages: at least one message is required.", "messages");
        }

        for (var i = 0; i < sourceMessages.Count; i++)
        {
            Message(sourceMessages[i], i, messages);
        }

        chat["messages"] = messages;
        if (!countOnly)
        {
            Sampling(source, chat);
        }

        if (source["tools"] is { } tools)
        {
            chat["tools"] = Tools(tools);
        }

        if (source["tool_choice"] is { } toolChoice)
        {
            ToolChoice(toolChoice, chat);
        }

        if (source["thinking"] is { } thinking && Effort(thinking) is { } effort)
        {
            chat["reasoning_effort"] = effort;
        }

        return chat;
    }

    private static void Sampling(JsonObject source, JsonObject chat)
    {
        foreach (var name in new[] { "temperature", "top_p" })
        {
            if (source[name] is { } value)
            {
                chat[name] = value is JsonValue v && v.TryGetValue<double>(out var number) && number is >= 0 and <= 1
                    ? number
                    : throw Invalid($"{name}: must be a number from 0 to 1.", name);
            }
        }

        if (source["top_k"] is { } topK)
        {
            // No OpenAI field; the extension vLLM, llama.cpp, Ollama and TGI take.
            chat["top_k"] = topK is JsonValue v && v.TryGetValue<int>(out var k) && k > 0 ? k : throw Invalid("top_k: must be a positive integer.", "top_k");
        }

        if (source["stop_sequences"] is { } stops)
        {
            var stop = new JsonArray();
            if (stops is not JsonArray list)
            {
                throw Invalid("stop_sequences: must be an array of strings.", "stop_sequences");
            }

            foreach (var item in list)
            {
                stop.Add(item is JsonValue v && v.TryGetValue<string>(out var s) ? s : throw Invalid("stop_sequences: must be an array of strings.", "stop_sequences"));
            }

            if (stop.Count > 0)
            {
                chat["stop"] = stop;
            }
        }

        if (source["stream"] is { } stream)
        {
            var on = stream is JsonValue v && v.TryGetValue<bool>(out var b) ? b : throw Invalid("stream: must be a boolean.", "stream");
            if (on)
            {
                chat["stream"] = true;
                chat["stream_options"] = new JsonObject { ["include_usage"] = true };
            }
        }

        if (source["metadata"] is { } metadata)
        {
            if (metadata is not JsonObject fields)
            {
                throw Invalid("metadata: must be an object.", "metadata");
            }

            foreach (var (name, value) in fields)
            {
                if (name != "user_id")
                {
                    throw Invalid($"metadata.{name}: Extra inputs are not permitted.", "metadata." + name);
                }

                if (value is not null)
                {
                    chat["user"] = value is JsonValue v && v.TryGetValue<string>(out var user) ? user : throw Invalid("metadata.user_id: must be a string.", "metadata.user_id");
                }
            }
        }

        if (source["service_tier"] is { } tier && !(tier is JsonValue t && t.TryGetValue<string>(out var tierName) && tierName is "auto" or "standard_only"))
        {
            // Sluice has one tier: both values mean "what is available", so there is nothing to send on.
            throw Invalid("service_tier: must be 'auto' or 'standard_only'.", "service_tier");
        }
    }

    private static JsonNode SystemText(JsonNode system)
    {
        if (system is JsonValue v && v.TryGetValue<string>(out var text))
        {
            return text;
        }

        if (system is not JsonArray blocks)
        {
            throw Invalid("system: must be a string or an array of text blocks.", "system");
        }

        var parts = new JsonArray();
        for (var i = 0; i < blocks.Count; i++)
        {
            var block = blocks[i] as JsonObject ?? throw Invalid($"system[{i}]: must be a text block.", $"system[{i}]");
            if (TypeOf(block, $"system[{i}]") != "text")
            {
                throw Invalid($"system[{i}].type: only text blocks are allowed in system.", $"system[{i}].type");
            }

            Keys(block, $"system[{i}]", "type", "text", "cache_control", "citations");
            parts.Add(new JsonObject { ["type"] = "text", ["text"] = Text(block, $"system[{i}]") });
        }

        return parts;
    }

    private static void Message(JsonNode? node, int i, JsonArray messages)
    {
        var path = $"messages[{i}]";
        var message = node as JsonObject ?? throw Invalid($"{path}: must be an object.", path);
        Keys(message, path, "role", "content");
        var role = message["role"] is JsonValue r && r.TryGetValue<string>(out var name) ? name : throw Invalid($"{path}.role: Field required ('user' or 'assistant').", path + ".role");
        if (role is not ("user" or "assistant"))
        {
            throw Invalid($"{path}.role: must be 'user' or 'assistant'.", path + ".role");
        }

        var content = message["content"] ?? throw Invalid($"{path}.content: Field required.", path + ".content");
        if (content is JsonValue cv && cv.TryGetValue<string>(out var plain))
        {
            messages.Add(new JsonObject { ["role"] = role, ["content"] = plain });
            return;
        }

        if (content is not JsonArray blocks)
        {
            throw Invalid($"{path}.content: must be a string or an array of content blocks.", path + ".content");
        }

        if (role == "assistant")
        {
            Assistant(blocks, path, messages);
        }
        else
        {
            User(blocks, path, messages);
        }
    }

    private static void User(JsonArray blocks, string path, JsonArray messages)
    {
        var parts = new JsonArray();
        for (var j = 0; j < blocks.Count; j++)
        {
            var at = $"{path}.content[{j}]";
            var block = blocks[j] as JsonObject ?? throw Invalid($"{at}: must be a content block object.", at);
            switch (TypeOf(block, at))
            {
                case "text":
                    Keys(block, at, "type", "text", "cache_control", "citations");
                    parts.Add(new JsonObject { ["type"] = "text", ["text"] = Text(block, at) });
                    break;
                case "image":
                    Keys(block, at, "type", "source", "cache_control");
                    parts.Add(Image(block, at));
                    break;
                case "document":
                    Keys(block, at, "type", "source", "cache_control", "title", "citations"); // "context" has no chat equivalent: refused by name
                    parts.Add(new JsonObject { ["type"] = "text", ["text"] = Document(block, at) });
                    break;
                case "tool_result":
                    Keys(block, at, "type", "tool_use_id", "content", "is_error", "cache_control");
                    messages.Add(ToolResult(block, at));
                    break;
                case "thinking" or "redacted_thinking" or "tool_use":
                    throw Invalid($"{at}.type: '{TypeOf(block, at)}' blocks are only allowed in assistant messages.", at + ".type");
                default:
                    throw UnknownBlock(at);
            }
        }

        if (parts.Count > 0)
        {
            messages.Add(new JsonObject { ["role"] = "user", ["content"] = parts });
        }
        else if (blocks.Count == 0)
        {
            throw Invalid($"{path}.content: a user message must have content.", path + ".content");
        }
    }

    private static void Assistant(JsonArray blocks, string path, JsonArray messages)
    {
        var text = new System.Text.StringBuilder();
        var reasoning = new System.Text.StringBuilder();
        var calls = new JsonArray();
        for (var j = 0; j < blocks.Count; j++)
        {
            var at = $"{path}.content[{j}]";
            var block = blocks[j] as JsonObject ?? throw Invalid($"{at}: must be a content block object.", at);
            switch (TypeOf(block, at))
            {
                case "text":
                    Keys(block, at, "type", "text", "cache_control", "citations");
                    text.Append(Text(block, at));
                    break;
                case "tool_use":
                    Keys(block, at, "type", "id", "name", "input", "cache_control");
                    var id = String(block, "id", at);
                    var toolName = String(block, "name", at);
                    var input = block["input"] as JsonObject ?? throw Invalid($"{at}.input: must be an object.", at + ".input");
                    calls.Add(new JsonObject
                    {
                        ["id"] = id,
                        ["type"] = "function",
                        ["function"] = new JsonObject { ["name"] = toolName, ["arguments"] = input.ToJsonString() },
                    });
                    break;
                case "thinking":
                    // The chat extension vLLM, DeepSeek and llama.cpp use for reasoning; the signature only Anthropic can check.
                    Keys(block, at, "type", "thinking", "signature");
                    reasoning.Append(String(block, "thinking", at));
                    break;
                case "redacted_thinking":
                    throw Invalid($"{at}.type: 'redacted_thinking' blocks are encrypted for Anthropic and cannot be translated for this model; remove them from the history.", at + ".type");
                case "image" or "document" or "tool_result":
                    throw Invalid($"{at}.type: '{TypeOf(block, at)}' blocks are only allowed in user messages.", at + ".type");
                default:
                    throw UnknownBlock(at);
            }
        }

        var message = new JsonObject { ["role"] = "assistant", ["content"] = calls.Count > 0 && text.Length == 0 ? null : text.ToString() };
        if (reasoning.Length > 0)
        {
            message["reasoning_content"] = reasoning.ToString();
        }

        if (calls.Count > 0)
        {
            message["tool_calls"] = calls;
        }

        messages.Add(message);
    }

    private static JsonObject ToolResult(JsonObject block, string at)
    {
        var id = String(block, "tool_use_id", at);
        var isError = block["is_error"] switch
        {
            null => false,
            JsonValue v when v.TryGetValue<bool>(out var b) => b,
            _ => throw Invalid($"{at}.is_error: must be a boolean.", at + ".is_error"),
        };
        var text = new System.Text.StringBuilder();
        switch (block["content"])
        {
            case null:
                break;
            case JsonValue v when v.TryGetValue<string>(out var s):
                text.Append(s);
                break;
            case JsonArray parts:
                for (var k = 0; k < parts.Count; k++)
                {
                    var partPath = $"{at}.content[{k}]";
                    var part = parts[k] as JsonObject ?? throw Invalid($"{partPath}: must be a content block object.", partPath);
                    var type = TypeOf(part, partPath);
                    if (type is "image" or "document" or "search_result")
                    {
                        throw Invalid($"{partPath}.type: '{type}' blocks in a tool result cannot be translated (chat tool messages carry text only).", partPath + ".type");
                    }

                    if (type != "text")
                    {
                        throw UnknownBlock(partPath);
                    }

                    Keys(part, partPath, "type", "text", "cache_control", "citations");
                    text.Append(text.Length > 0 ? "\n" : "").Append(Text(part, partPath));
                }

                break;
            default:
                throw Invalid($"{at}.content: must be a string or an array of text blocks.", at + ".content");
        }

        // Chat tool messages have no error flag: the note travels in the text, where the model reads it.
        return new JsonObject { ["role"] = "tool", ["tool_call_id"] = id, ["content"] = isError ? "Error: " + text : text.ToString() };
    }

    private static JsonObject Image(JsonObject block, string at)
    {
        var source = block["source"] as JsonObject ?? throw Invalid($"{at}.source: Field required.", at + ".source");
        var url = TypeOf(source, at + ".source") switch
        {
            "base64" => $"data:{String(source, "media_type", at + ".source")};base64,{String(source, "data", at + ".source")}",
            "url" => String(source, "url", at + ".source"),
            _ => throw Invalid($"{at}.source.type: must be 'base64' or 'url' (files are not supported).", at + ".source.type"),
        };
        return new JsonObject { ["type"] = "image_url", ["image_url"] = new JsonObject { ["url"] = url } };
    }

    private static string Document(JsonObject block, string at)
    {
        // A plain-text document is text; PDFs and other files need Anthropic's own document handling.
        var source = block["source"] as JsonObject ?? throw Invalid($"{at}.source: Field required.", at + ".source");
        if (TypeOf(source, at + ".source") != "text" || block["citations"] is JsonObject)
        {
            throw Invalid($"{at}.type: 'document' blocks are supported only with a plain-text source and no citations on this model.", at + ".type");
        }

        var title = block["title"] is JsonValue t && t.TryGetValue<string>(out var name) ? name + "\n" : "";
        return title + String(source, "data", at + ".source");
    }

    private static JsonArray Tools(JsonNode tools)
    {
        var list = tools as JsonArray ?? throw Invalid("tools: must be an array.", "tools");
        var translated = new JsonArray();
        for (var i = 0; i < list.Count; i++)
        {
            var at = $"tools[{i}]";
            var tool = list[i] as JsonObject ?? throw Invalid($"{at}: must be an object.", at);
            if (tool["type"] is { } type && !(type is JsonValue tv && tv.TryGetValue<string>(out var kind) && kind == "custom"))
            {
                throw Invalid($"{at}.type: Anthropic's server tools (web search, bash, computer use, text editor, code execution…) are not supported; define a custom tool with input_schema instead.", at + ".type");
            }

            Keys(tool, at, "type", "name", "description", "input_schema", "cache_control");
            var function = new JsonObject { ["name"] = String(tool, "name", at) };
            if (tool["description"] is { } description)
            {
                function["description"] = description is JsonValue dv && dv.TryGetValue<string>(out var d) ? d : throw Invalid($"{at}.description: must be a string.", at + ".description");
            }

            function["parameters"] = (tool["input_schema"] as JsonObject ?? throw Invalid($"{at}.input_schema: Field required (an object).", at + ".input_schema")).DeepClone();
            translated.Add(new JsonObject { ["type"] = "function", ["function"] = function });
        }

        return translated;
    }

    private static void ToolChoice(JsonNode node, JsonObject chat)
    {
        var choice = node as JsonObject ?? throw Invalid("tool_choice: must be an object.", "tool_choice");
        Keys(choice, "tool_choice", "type", "name", "disable_parallel_tool_use");
        chat["tool_choice"] = TypeOf(choice, "tool_choice") switch
        {
            "auto" => "auto",
            "any" => "required",
            "none" => "none",
            "tool" => new JsonObject { ["type"] = "function", ["function"] = new JsonObject { ["name"] = String(choice, "name", "tool_choice") } },
            _ => throw Invalid("tool_choice.type: must be 'auto', 'any', 'tool' or 'none'.", "tool_choice.type"),
        };
        switch (choice["disable_parallel_tool_use"])
        {
            case null:
                break;
            case JsonValue v when v.TryGetValue<bool>(out var disable):
                if (disable && chat["tools"] is not null)
                {
                    chat["parallel_tool_calls"] = false;
                }

                break;
            default:
                throw Invalid("tool_choice.disable_parallel_tool_use: must be a boolean.", "tool_choice.disable_parallel_tool_use");
        }
    }

    /// <summary>
    /// <c>thinking</c> as <c>reasoning_effort</c>: a budget up to 2,048 tokens is low, up to 8,192 medium, more high;
    /// disabled sends nothing (the model's default).
    /// </summary>
    private static string? Effort(JsonNode node)
    {
        var thinking = node as JsonObject ?? throw Invalid("thinking: must be an object.", "thinking");
        Keys(thinking, "thinking", "type", "budget_tokens");
        switch (TypeOf(thinking, "thinking"))
        {
            case "disabled":
                return null;
            case "enabled":
                var budget = thinking["budget_tokens"] is JsonValue v && v.TryGetValue<int>(out var b) && b > 0
                    ? b
                    : throw Invalid("thinking.budget_tokens: Field required (a positive integer).", "thinking.budget_tokens");
                return budget <= 2048 ? "low" : budget <= 8192 ? "medium" : "high";
            default:
                throw Invalid("thinking.type: must be 'enabled' or 'disabled'.", "thinking.type");
        }
    }

    private static string TypeOf(JsonObject block, string at) =>
        block["type"] is JsonValue v && v.TryGetValue<string>(out var type) ? type : throw Invalid($"{at}.type: Field required (a string).", at + ".type");

    private static string Text(JsonObject block, string at) => String(block, "text", at);

    private static string String(JsonObject block, string field, string at) =>
        block[field] is JsonValue v && v.TryGetValue<string>(out var s) ? s : throw Invalid($"{at}.{field}: Field required (a string).", $"{at}.{field}");

    /// <summary>A field the block's type does not have is refused by name: a silent drop could change the answer.</summary>
    private static void Keys(JsonObject block, string at, params string[] allowed)
    {
        foreach (var (name, _) in block)
        {
            if (Array.IndexOf(allowed, name) < 0)
            {
                throw Invalid($"{at}.{name}: Extra inputs are not permitted.", $"{at}.{name}");
            }
        }
    }

    private static OpenAiException UnknownBlock(string at) =>
        Invalid($"{at}.type: this content block type is not supported (text, image, document, tool_use, tool_result and thinking are).", at + ".type");

    internal static OpenAiException Invalid(string message, string? param) => OpenAiException.Invalid(message, param, "invalid_request_error");
}
