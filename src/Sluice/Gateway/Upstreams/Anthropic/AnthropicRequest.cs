using System.Text.Json;
using System.Text.Json.Nodes;

namespace Sluice.Gateway;

/// <summary>
/// A chat completion request as an Anthropic Messages request. Every field is either translated, ignored because
/// ignoring it changes nothing (<see cref="Ignorable"/>), or refused with a 400 naming it: nothing is dropped quietly.
/// Messages name fields, never values (they could be content).
/// </summary>
internal static partial class AnthropicTranslation
{
    /// <summary>The forced tool through which <c>response_format</c> is honoured; its input comes back as the message content.</summary>
    internal const string JsonTool = "json_response";

    /// <summary>The smallest thinking budget Anthropic accepts.</summary>
    internal const int MinThinkingBudget = 1024;

    /// <summary>Fields whose absence upstream changes nothing for the caller (documented in docs/api.md).</summary>
    private static readonly HashSet<string> Ignorable = ["stream_options", "store", "metadata", "prompt_cache_key", "prompt_cache_retention", "service_tier"];

    /// <summary>Thinking budgets for OpenAI's <c>reasoning_effort</c> (documented in docs/api.md); <c>none</c> turns thinking off.</summary>
    internal static int? ThinkingBudget(string effort) => effort switch
    {
        "none" => null,
        "minimal" => 1024,
        "low" => 2048,
        "medium" => 8192,
        "high" => 16384,
        "xhigh" => 24576,
        "max" => 32768,
        _ => throw OpenAiException.Invalid("'reasoning_effort' must be one of none, minimal, low, medium, high, xhigh, max.", "reasoning_effort"),
    };

    /// <summary>True when the request asks for JSON through <c>response_format</c>, which this translation answers through <see cref="JsonTool"/>.</summary>
    internal static bool AnswersAsJson(InferenceRequest request)
    {
        try
        {
            using var document = JsonDocument.Parse(request.Body);
            return document.RootElement.TryGetProperty("response_format", out var format) && format.ValueKind == JsonValueKind.Object
                && format.TryGetProperty("type", out var type) && type.ValueKind == JsonValueKind.String && type.GetString() is "json_object" or "json_schema";
        }
        catch (JsonException)
        {
            return false;
        }
    }

    private static byte[] Translate(InferenceRequest request, string upstreamModel)
    {
        var source = JsonNode.Parse(request.Body.Span)!.AsObject();
        var target = new JsonObject { ["model"] = upstreamModel, ["max_tokens"] = 0 };
        JsonArray? systemBlocks = null;
        JsonArray? tools = null;
        JsonObject? toolChoice = null;
        bool? parallel = null;
        JsonObject? jsonTool = null;
        int? budget = null;
        JsonNode? thinking = null;
        string? userId = null;
        foreach (var (name, value) in source)
        {
            if (value is null || value.GetValueKind() == JsonValueKind.Null || Ignorable.Contains(name))
            {
                if (name == "service_tier" && value is JsonValue tier && tier.GetValueKind() == JsonValueKind.String && tier.GetValue<string>() is not ("auto" or "default"))
                {
                    throw Refused(name, "only 'auto' and 'default' can be honoured");
                }

                continue;
            }

            switch (name)
            {
                case "model" or "max_tokens" or "max_completion_tokens":
                    break; // the model is the route's; the limit is the one held
                case "messages":
                    var (messages, systemParts) = Messages(value.AsArray());
                    target["messages"] = messages;
                    systemBlocks = systemParts;
                    break;
                case "stream":
                    if (value.GetValue<bool>())
                    {
                        target["stream"] = true;
                    }

                    break;
                case "temperature" or "top_p" or "top_k":
                    target[name] = Number(value, name);
                    break;
                case "stop":
                    target["stop_sequences"] = value is JsonArray stops ? Strings(stops, "stop") : new JsonArray(JsonValue.Create(value.GetValue<string>()));
                    break;
                case "tools":
                    tools = Tools(value.AsArray());
                    break;
                case "tool_choice":
                    toolChoice = ToolChoice(value);
                    break;
                case "parallel_tool_calls":
                    parallel = value.GetValue<bool>();
                    break;
                case "response_format":
                    jsonTool = ResponseFormatTool(value.AsObject());
                    break;
                case "reasoning_effort":
                    budget = ThinkingBudget(value.GetValue<string>());
                    break;
                case "thinking":
                    thinking = value is JsonObject ? value.DeepClone() : throw OpenAiException.Invalid("'thinking' must be an object, as Anthropic's API defines it.", "thinking");
                    break;
                case "user" or "safety_identifier":
                    userId = name == "safety_identifier" || userId is null ? value.GetValue<string>() : userId;
                    break;
                case "n":
                    if (value.GetValue<int>() != 1)
                    {
                        throw Refused(name, "Anthropic returns one choice per request; send n = 1 and make several requests");
                    }

                    break;
                case "logprobs":
                    if (value.GetValue<bool>())
                    {
                        throw Refused(name, "Anthropic returns no log probabilities");
                    }

                    break;
                case "presence_penalty" or "frequency_penalty":
                    if (value.GetValue<double>() != 0)
                    {
                        throw Refused(name, "Anthropic has no penalties");
                    }

                    break;
                case "logit_bias":
                    if (value.AsObject().Count > 0)
                    {
                        throw Refused(name, "Anthropic has no token biases");
                    }

                    break;
                case "modalities":
                    if (value.AsArray().Any(m => m?.GetValue<string>() != "text"))
                    {
                        throw Refused(name, "only text output can be produced");
                    }

                    break;
                default:
                    throw Refused(name, "it cannot be translated to Anthropic's Messages API");
            }
        }

        if (budget is not null && thinking is not null)
        {
            throw OpenAiException.Invalid("Send either 'reasoning_effort' or 'thinking', not both.", "reasoning_effort");
        }

        // The completion limit is the one held; with thinking and no limit anywhere, room for the budget and an answer.
        var limit = request.CompletionLimit > 0 ? request.CompletionLimit : request.MaxTokens ?? (budget ?? 0) + DefaultMaxTokens;
        target["max_tokens"] = limit;
        if (budget is { } wanted)
        {
            if (limit <= MinThinkingBudget)
            {
                throw OpenAiException.Invalid(
                    $"'reasoning_effort' needs room to think: set 'max_completion_tokens' above {MinThinkingBudget} (thinking tokens count against it).", "max_completion_tokens");
            }

            target["thinking"] = new JsonObject { ["type"] = "enabled", ["budget_tokens"] = Math.Min(wanted, limit - 1) };
        }
        else if (thinking is not null)
        {
            target["thinking"] = thinking;
        }

        if (systemBlocks is { Count: > 0 })
        {
            target["system"] = systemBlocks.Any(b => b!["cache_control"] is not null)
                ? systemBlocks
                : string.Join("\n", systemBlocks.Select(b => b!["text"]!.GetValue<string>()));
        }

        if (jsonTool is not null)
        {
            if (tools is not null)
            {
                throw OpenAiException.Invalid("'response_format' cannot be combined with 'tools' for this model's provider: it is honoured through a tool of its own.", "response_format");
            }

            tools = [jsonTool];
            toolChoice = new JsonObject { ["type"] = "tool", ["name"] = JsonTool };
        }

        if (tools is not null)
        {
            target["tools"] = tools;
        }

        // Without tools there is nothing to call in parallel, and Anthropic refuses a tool_choice without tools: send none.
        if (parallel == false && tools is not null && toolChoice?["type"]?.GetValue<string>() != "none")
        {
            toolChoice ??= new JsonObject { ["type"] = "auto" };
            toolChoice["disable_parallel_tool_use"] = true;
        }

        if (toolChoice is not null)
        {
            target["tool_choice"] = toolChoice;
        }

        if (userId is not null)
        {
            target["metadata"] = new JsonObject { ["user_id"] = userId };
        }

        return JsonSerializer.SerializeToUtf8Bytes(target);
    }

    private static OpenAiException Refused(string field, string why) =>
        OpenAiException.Invalid($"'{field}' is not supported for this model's provider (Anthropic): {why}. Remove it to send the request.", field, "unsupported_parameter");

    private static JsonNode Number(JsonNode value, string field) =>
        value.GetValueKind() == JsonValueKind.Number ? value.DeepClone() : throw OpenAiException.Invalid($"'{field}' must be a number.", field);

    private static JsonArray Strings(JsonArray values, string field) =>
        new(values.Select(v => v?.GetValueKind() == JsonValueKind.String ? v.DeepClone() : throw OpenAiException.Invalid($"'{field}' must be a string or an array of strings.", field)).ToArray());

    /// <summary>The messages, and the system prompt's text blocks (system and developer messages, in order).</summary>
    private static (JsonArray Messages, JsonArray System) Messages(JsonArray source)
    {
        var system = new JsonArray();
        var messages = new JsonArray();
        for (var i = 0; i < source.Count; i++)
        {
            var message = source[i]!.AsObject();
            var at = $"messages[{i}]";
            var role = message["role"]?.GetValue<string>();
            if (role is not ("system" or "developer" or "user" or "assistant" or "tool"))
            {
                throw OpenAiException.Invalid($"Messages with role '{Truncate(role)}' are not supported by this model's provider.", $"{at}.role");
            }

            foreach (var (key, value) in message)
            {
                var known = key is "role" or "content" or "cache_control"
                    || (key is "tool_calls" or "refusal" && role == "assistant")
                    || (key == "tool_call_id" && role == "tool");
                if (!known && value is not null && value.GetValueKind() != JsonValueKind.Null)
                {
                    throw Refused($"{at}.{key}", "Anthropic's messages have no such field");
                }
            }

            JsonArray blocks;
            switch (role)
            {
                case "system" or "developer":
                    blocks = Parts(message["content"], at, textOnly: true);
                    CacheOnLast(blocks, message["cache_control"], at);
                    foreach (var block in blocks)
                    {
                        system.Add(block!.DeepClone());
                    }

                    continue;
                case "user":
                    blocks = Parts(message["content"], at, textOnly: false);
                    break;
                case "assistant":
                    blocks = message["content"] is null ? [] : Parts(message["content"], at, textOnly: true);
                    if (message["refusal"] is JsonValue refusal && refusal.GetValueKind() == JsonValueKind.String)
                    {
                        // A refusal the assistant gave earlier in the conversation is what it said: carried as its text.
                        blocks.Add(new JsonObject { ["type"] = "text", ["text"] = refusal.GetValue<string>() });
                    }

                    if (message["tool_calls"] is JsonArray calls)
                    {
                        for (var j = 0; j < calls.Count; j++)
                        {
                            blocks.Add(ToolUse(calls[j]!.AsObject(), $"{at}.tool_calls[{j}]"));
                        }
                    }

                    break;
                case "tool":
                    var id = message["tool_call_id"]?.GetValue<string>()
                        ?? throw OpenAiException.Invalid($"'{at}.tool_call_id' is required on a tool message.", $"{at}.tool_call_id");
                    var result = new JsonObject { ["type"] = "tool_result", ["tool_use_id"] = id };
                    var content = message["content"];
                    result["content"] = content is JsonArray ? Parts(content, at, textOnly: true) : JsonValue.Create(content?.GetValue<string>() ?? "");
                    blocks = [result];
                    role = "user";
                    break;
                default:
                    throw OpenAiException.Invalid($"Messages with role '{Truncate(role)}' are not supported by this model's provider.", $"{at}.role");
            }

            CacheOnLast(blocks, message["cache_control"], at);
            var blocksOnly = blocks.Any(b => b!["type"]!.GetValue<string>() != "text" || b["cache_control"] is not null) || message["content"] is JsonArray;
            if (messages.Count > 0 && messages[^1]!["role"]!.GetValue<string>() == role)
            {
                // Anthropic wants alternating turns: consecutive messages of one role (tool results included) become one.
                var previous = messages[^1]!.AsObject();
                var merged = previous["content"] is JsonArray earlier ? earlier : new JsonArray(Text(previous["content"]!.GetValue<string>()));
                previous["content"] = null;
                foreach (var block in blocks)
                {
                    merged.Add(block!.DeepClone());
                }

                previous["content"] = merged;
            }
            else if (!blocksOnly && blocks.Count == 1)
            {
                messages.Add(new JsonObject { ["role"] = role, ["content"] = blocks[0]!["text"]!.DeepClone() });
            }
            else
            {
                messages.Add(new JsonObject { ["role"] = role, ["content"] = blocks });
            }
        }

        return (messages, system);
    }

    private static JsonObject Text(string text) => new() { ["type"] = "text", ["text"] = text };

    private static string Truncate(string? value) => value is null ? "" : value.Length > 20 ? value[..20] : value;

    /// <summary>A message's <c>cache_control</c> applies to its last block, as Anthropic places breakpoints on blocks.</summary>
    private static void CacheOnLast(JsonArray blocks, JsonNode? cacheControl, string at)
    {
        if (cacheControl is null || cacheControl.GetValueKind() == JsonValueKind.Null)
        {
            return;
        }

        if (blocks.Count == 0)
        {
            throw OpenAiException.Invalid($"'{at}.cache_control' needs content to mark.", $"{at}.cache_control");
        }

        blocks[^1]!["cache_control"] = CacheControl(cacheControl, $"{at}.cache_control");
    }

    private static JsonNode CacheControl(JsonNode value, string at) =>
        value is JsonObject ? value.DeepClone() : throw OpenAiException.Invalid($"'{at}' must be an object such as {{\"type\":\"ephemeral\"}}.", at);

    /// <summary>A message's content as Anthropic blocks: a string is one text block; parts are text (and images, for users).</summary>
    private static JsonArray Parts(JsonNode? content, string at, bool textOnly)
    {
        if (content is not JsonArray parts)
        {
            var text = content?.GetValue<string>() ?? "";
            return text.Length == 0 ? [] : [Text(text)];
        }

        var blocks = new JsonArray();
        for (var j = 0; j < parts.Count; j++)
        {
            var part = parts[j]!.AsObject();
            var where = $"{at}.content[{j}]";
            var type = part["type"]?.GetValue<string>();
            JsonObject block;
            if (type == "text")
            {
                block = Text(part["text"]?.GetValue<string>() ?? throw OpenAiException.Invalid($"'{where}.text' is required.", $"{where}.text"));
            }
            else if (type == "image_url" && !textOnly)
            {
                block = Image(part["image_url"], $"{where}.image_url");
            }
            else
            {
                throw Refused($"{where}.type", textOnly
                    ? "only text parts can be sent in this message for this provider"
                    : "only text and image_url parts can be sent to this provider");
            }

            foreach (var (key, value) in part)
            {
                if (key == "cache_control" && value is not null)
                {
                    block["cache_control"] = CacheControl(value, $"{where}.cache_control");
                }
                else if (key is not ("type" or "text" or "image_url") && value is not null && value.GetValueKind() != JsonValueKind.Null)
                {
                    throw Refused($"{where}.{key}", "Anthropic's content blocks have no such field");
                }
            }

            blocks.Add(block);
        }

        return blocks;
    }

    private static readonly string[] ImageTypes = ["image/jpeg", "image/png", "image/gif", "image/webp"];

    private static JsonObject Image(JsonNode? imageUrl, string at)
    {
        var url = imageUrl?["url"]?.GetValue<string>() ?? throw OpenAiException.Invalid($"'{at}.url' is required.", $"{at}.url");
        if (url.StartsWith("https://", StringComparison.OrdinalIgnoreCase) || url.StartsWith("http://", StringComparison.OrdinalIgnoreCase))
        {
            return new JsonObject { ["type"] = "image", ["source"] = new JsonObject { ["type"] = "url", ["url"] = url } };
        }

        // data:<media type>;base64,<data>
        var comma = url.IndexOf(',', StringComparison.Ordinal);
        var header = comma > 0 ? url[..comma] : "";
        var mediaType = header.StartsWith("data:", StringComparison.OrdinalIgnoreCase) && header.EndsWith(";base64", StringComparison.OrdinalIgnoreCase)
            ? header["data:".Length..^";base64".Length].ToLowerInvariant()
            : null;
        if (mediaType is null || !ImageTypes.Contains(mediaType))
        {
            throw OpenAiException.Invalid(
                $"'{at}.url' must be an http(s) URL or a base64 data URL of a JPEG, PNG, GIF or WebP image for this model's provider.", $"{at}.url", "unsupported_image");
        }

        return new JsonObject
        {
            ["type"] = "image",
            ["source"] = new JsonObject { ["type"] = "base64", ["media_type"] = mediaType, ["data"] = url[(comma + 1)..] },
        };
    }

    private static JsonObject ToolUse(JsonObject call, string at)
    {
        if (call["type"]?.GetValue<string>() is { } type && type != "function")
        {
            throw Refused($"{at}.type", "only function tool calls can be sent to this provider");
        }

        var function = call["function"]?.AsObject() ?? throw OpenAiException.Invalid($"'{at}.function' is required.", $"{at}.function");
        var arguments = function["arguments"]?.GetValue<string>() ?? "{}";
        JsonNode? input;
        try
        {
            input = JsonNode.Parse(arguments.Length == 0 ? "{}" : arguments);
        }
        catch (JsonException)
        {
            input = null;
        }

        return new JsonObject
        {
            ["type"] = "tool_use",
            ["id"] = call["id"]?.GetValue<string>() ?? throw OpenAiException.Invalid($"'{at}.id' is required.", $"{at}.id"),
            ["name"] = function["name"]?.GetValue<string>() ?? throw OpenAiException.Invalid($"'{at}.function.name' is required.", $"{at}.function.name"),
            ["input"] = input as JsonObject ?? throw OpenAiException.Invalid($"'{at}.function.arguments' must be a JSON object for this model's provider.", $"{at}.function.arguments"),
        };
    }

    private static JsonArray Tools(JsonArray source)
    {
        var tools = new JsonArray();
        for (var i = 0; i < source.Count; i++)
        {
            var tool = source[i]!.AsObject();
            var at = $"tools[{i}]";
            if (tool["type"]?.GetValue<string>() != "function")
            {
                throw Refused($"{at}.type", "only function tools can be translated");
            }

            var function = tool["function"]?.AsObject() ?? throw OpenAiException.Invalid($"'{at}.function' is required.", $"{at}.function");
            var translated = new JsonObject
            {
                ["name"] = function["name"]?.GetValue<string>() ?? throw OpenAiException.Invalid($"'{at}.function.name' is required.", $"{at}.function.name"),
            };
            if (function["description"] is { } description)
            {
                translated["description"] = description.DeepClone();
            }

            translated["input_schema"] = function["parameters"]?.DeepClone() ?? new JsonObject { ["type"] = "object", ["properties"] = new JsonObject() };
            foreach (var (key, value) in function)
            {
                if (key is not ("name" or "description" or "parameters" or "strict") && value is not null)
                {
                    throw Refused($"{at}.function.{key}", "Anthropic's tools have no such field");
                }
            }

            foreach (var (key, value) in tool)
            {
                if (key == "cache_control" && value is not null)
                {
                    translated["cache_control"] = CacheControl(value, $"{at}.cache_control");
                }
                else if (key is not ("type" or "function") && value is not null)
                {
                    throw Refused($"{at}.{key}", "Anthropic's tools have no such field");
                }
            }

            tools.Add(translated);
        }

        return tools;
    }

    private static JsonObject ToolChoice(JsonNode value)
    {
        if (value is JsonValue mode)
        {
            return mode.GetValue<string>() switch
            {
                "auto" => new JsonObject { ["type"] = "auto" },
                "none" => new JsonObject { ["type"] = "none" },
                "required" => new JsonObject { ["type"] = "any" },
                _ => throw OpenAiException.Invalid("'tool_choice' must be auto, none, required or a named function.", "tool_choice"),
            };
        }

        if (value["type"]?.GetValue<string>() == "function" && value["function"]?["name"]?.GetValue<string>() is { } name)
        {
            return new JsonObject { ["type"] = "tool", ["name"] = name };
        }

        throw Refused("tool_choice", "only auto, none, required and a named function can be translated");
    }

    private static JsonObject? ResponseFormatTool(JsonObject format)
    {
        switch (format["type"]?.GetValue<string>())
        {
            case "text":
                return null;
            case "json_object":
                return new JsonObject
                {
                    ["name"] = JsonTool,
                    ["description"] = "Answer with a JSON object as this tool's input.",
                    ["input_schema"] = new JsonObject { ["type"] = "object" },
                };
            case "json_schema":
                var schema = format["json_schema"]?.AsObject() ?? throw OpenAiException.Invalid("'response_format.json_schema' is required.", "response_format.json_schema");
                return new JsonObject
                {
                    ["name"] = JsonTool,
                    ["description"] = schema["description"]?.GetValue<string>() ?? "Answer with a JSON object matching this tool's input schema.",
                    ["input_schema"] = schema["schema"]?.DeepClone() ?? new JsonObject { ["type"] = "object" },
                };
            default:
                throw Refused("response_format.type", "only text, json_object and json_schema can be translated");
        }
    }
}
