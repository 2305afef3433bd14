using System.Text.Json;

namespace Sluice.Engine.Llama;

/// <summary>One chat or completions request, validated: what the generation loop needs and nothing else.</summary>
internal sealed record GenerationRequest
{
    public required bool Chat { get; init; }

    /// <summary>Chat messages (role, text); empty for completions.</summary>
    public IReadOnlyList<(string Role, string Content)> Messages { get; init; } = [];

    /// <summary>The prompt of a completions request; null for chat.</summary>
    public string? Prompt { get; init; }

    public int? MaxTokens { get; init; }
    public IReadOnlyList<string> Stop { get; init; } = [];
    public float? Temperature { get; init; }
    public float? TopP { get; init; }
    public float? FrequencyPenalty { get; init; }
    public float? PresencePenalty { get; init; }
    public uint? Seed { get; init; }
    public bool Stream { get; init; }
    public bool IncludeUsage { get; init; }
}

/// <summary>A request the engine refuses: a 400 in OpenAI's error shape naming the parameter.</summary>
internal sealed class InvalidRequestException(string message, string? param, string? code = null) : Exception(message)
{
    public string? Param { get; } = param;
    public string? Code { get; } = code;
}

/// <summary>Reads OpenAI's chat completions and completions bodies, refusing what the engine cannot honour.</summary>
internal static class GenerationRequestParser
{
    private static readonly HashSet<string> Roles = ["system", "developer", "user", "assistant", "tool"];

    public static GenerationRequest ParseChat(JsonElement body)
    {
        RequireObject(body);
        if (!body.TryGetProperty("messages", out var messages) || messages.ValueKind == JsonValueKind.Null)
        {
            throw new InvalidRequestException("'messages' is required: an array of {role, content} objects.", "messages");
        }

        if (messages.ValueKind != JsonValueKind.Array)
        {
            throw new InvalidRequestException("'messages' must be an array of {role, content} objects.", "messages");
        }

        if (messages.GetArrayLength() == 0)
        {
            throw new InvalidRequestException("'messages' must hold at least one message.", "messages");
        }

        var parsed = new List<(string, string)>();
        var index = 0;
        foreach (var message in messages.EnumerateArray())
        {
            var param = $"messages[{index}]";
            if (message.ValueKind != JsonValueKind.Object)
            {
                throw new InvalidRequestException($"'{param}' must be an object with 'role' and 'content'.", param);
            }

            if (!message.TryGetProperty("role", out var role) || role.ValueKind != JsonValueKind.String)
            {
                throw new InvalidRequestException($"'{param}.role' is required and must be a string.", param + ".role");
            }

            var roleName = role.GetString()!;
            if (!Roles.Contains(roleName))
            {
                throw new InvalidRequestException($"'{param}.role' must be one of system, developer, user, assistant, tool.", param + ".role");
            }

            parsed.Add((roleName == "developer" ? "system" : roleName, Content(message, param)));
            index++;
        }

        if (body.TryGetProperty("tools", out var tools) && tools.ValueKind == JsonValueKind.Array && tools.GetArrayLength() > 0)
        {
            throw new InvalidRequestException("'tools' are not supported by this engine: it returns text only.", "tools");
        }

        return Common(body, chat: true) with { Messages = parsed };
    }

    public static GenerationRequest ParseCompletion(JsonElement body)
    {
        RequireObject(body);
        if (!body.TryGetProperty("prompt", out var prompt) || prompt.ValueKind == JsonValueKind.Null)
        {
            throw new InvalidRequestException("'prompt' is required: a string.", "prompt");
        }

        var text = prompt.ValueKind switch
        {
            JsonValueKind.String => prompt.GetString()!,
            JsonValueKind.Array when prompt.GetArrayLength() == 1 && prompt[0].ValueKind == JsonValueKind.String => prompt[0].GetString()!,
            JsonValueKind.Array => throw new InvalidRequestException("'prompt' must be a string (or an array of exactly one string); this engine serves one prompt per request.", "prompt"),
            _ => throw new InvalidRequestException("'prompt' must be a string.", "prompt"),
        };

        if (body.TryGetProperty("echo", out var echo) && echo.ValueKind == JsonValueKind.True)
        {
            throw new InvalidRequestException("'echo' is not supported by this engine.", "echo");
        }

        if (body.TryGetProperty("best_of", out var bestOf) && bestOf.ValueKind == JsonValueKind.Number && !(bestOf.TryGetInt32(out var b) && b == 1))
        {
            throw new InvalidRequestException("'best_of' must be 1: this engine returns one choice.", "best_of");
        }

        return Common(body, chat: false) with { Prompt = text };
    }

    private static void RequireObject(JsonElement body)
    {
        if (body.ValueKind != JsonValueKind.Object)
        {
            throw new InvalidRequestException("The request body must be a JSON object.", null);
        }
    }

    private static string Content(JsonElement message, string param)
    {
        if (!message.TryGetProperty("content", out var content) || content.ValueKind == JsonValueKind.Null)
        {
            return string.Empty; // an assistant message that only called tools
        }

        if (content.ValueKind == JsonValueKind.String)
        {
            return content.GetString()!;
        }

        if (content.ValueKind != JsonValueKind.Array)
        {
            throw new InvalidRequestException($"'{param}.content' must be a string or an array of text parts.", param + ".content");
        }

        var text = new System.Text.StringBuilder();
        foreach (var part in content.EnumerateArray())
        {
            if (part.ValueKind != JsonValueKind.Object
                || !part.TryGetProperty("type", out var type) || type.ValueKind != JsonValueKind.String || type.GetString() != "text"
                || !part.TryGetProperty("text", out var partText) || partText.ValueKind != JsonValueKind.String)
            {
                throw new InvalidRequestException($"'{param}.content' parts must be {{\"type\":\"text\",\"text\":…}}; this engine reads text only.", param + ".content");
            }

            text.Append(partText.GetString());
        }

        return text.ToString();
    }

    private static GenerationRequest Common(JsonElement body, bool chat)
    {
        if (body.TryGetProperty("model", out var model) && model.ValueKind is not (JsonValueKind.String or JsonValueKind.Null))
        {
            throw new InvalidRequestException("'model' must be a string.", "model");
        }

        var n = OptionalInt(body, "n", 1, 128);
        if (n is not (null or 1))
        {
            throw new InvalidRequestException("'n' must be 1: this engine returns one choice per request.", "n");
        }

        var maxTokens = OptionalInt(body, "max_tokens", 1, int.MaxValue);
        var maxCompletionTokens = OptionalInt(body, "max_completion_tokens", 1, int.MaxValue);
        var stream = OptionalBool(body, "stream") ?? false;
        var includeUsage = false;
        if (body.TryGetProperty("stream_options", out var options) && options.ValueKind != JsonValueKind.Null)
        {
            if (options.ValueKind != JsonValueKind.Object)
            {
                throw new InvalidRequestException("'stream_options' must be an object.", "stream_options");
            }

            if (!stream)
            {
                throw new InvalidRequestException("'stream_options' is only allowed when 'stream' is true.", "stream_options");
            }

            includeUsage = OptionalBool(options, "include_usage", "stream_options.include_usage") ?? false;
        }

        var seed = OptionalLong(body, "seed");
        return new GenerationRequest
        {
            Chat = chat,
            MaxTokens = maxCompletionTokens ?? maxTokens,
            Stop = Stop(body),
            Temperature = OptionalFloat(body, "temperature", 0, 2),
            TopP = OptionalFloat(body, "top_p", 0, 1),
            FrequencyPenalty = OptionalFloat(body, "frequency_penalty", -2, 2),
            PresencePenalty = OptionalFloat(body, "presence_penalty", -2, 2),
            Seed = seed is { } s ? unchecked((uint)s) : null,
            Stream = stream,
            IncludeUsage = includeUsage,
        };
    }

    private static List<string> Stop(JsonElement body)
    {
        if (!body.TryGetProperty("stop", out var stop) || stop.ValueKind == JsonValueKind.Null)
        {
            return [];
        }

        var values = stop.ValueKind switch
        {
            JsonValueKind.String => [stop.GetString()!],
            JsonValueKind.Array when stop.EnumerateArray().All(e => e.ValueKind == JsonValueKind.String) => stop.EnumerateArray().Select(e => e.GetString()!).ToList(),
            _ => throw new InvalidRequestException("'stop' must be a string or an array of strings.", "stop"),
        };

        if (values.Count > 4)
        {
            throw new InvalidRequestException("'stop' holds at most 4 sequences.", "stop");
        }

        if (values.Any(string.IsNullOrEmpty))
        {
            throw new InvalidRequestException("'stop' sequences must not be empty.", "stop");
        }

        return values;
    }

    private static int? OptionalInt(JsonElement body, string name, int min, int max)
    {
        if (!body.TryGetProperty(name, out var value) || value.ValueKind == JsonValueKind.Null)
        {
            return null;
        }

        if (value.ValueKind != JsonValueKind.Number || !value.TryGetInt64(out var number))
        {
            throw new InvalidRequestException($"'{name}' must be an integer.", name);
        }

        if (number < min || number > max)
        {
            throw new InvalidRequestException($"'{name}' must be at least {min}.", name);
        }

        return (int)number;
    }

    private static long? OptionalLong(JsonElement body, string name)
    {
        if (!body.TryGetProperty(name, out var value) || value.ValueKind == JsonValueKind.Null)
        {
            return null;
        }

        if (value.ValueKind != JsonValueKind.Number || !value.TryGetInt64(out var number))
        {
            throw new InvalidRequestException($"'{name}' must be an integer.", name);
        }

        return number;
    }

    private static float? OptionalFloat(JsonElement body, string name, double min, double max)
    {
        if (!body.TryGetProperty(name, out var value) || value.ValueKind == JsonValueKind.Null)
        {
            return null;
        }

        if (value.ValueKind != JsonValueKind.Number)
        {
            throw new InvalidRequestException($"'{name}' must be a number.", name);
        }

        var number = value.GetDouble();
        if (number < min || number > max)
        {
            throw new InvalidRequestException($"'{name}' must be between {min} and {max}.", name);
        }

        return (float)number;
    }

    private static bool? OptionalBool(JsonElement body, string name, string? param = null)
    {
        if (!body.TryGetProperty(name, out var value) || value.ValueKind == JsonValueKind.Null)
        {
            return null;
        }

        return value.ValueKind switch
        {
            JsonValueKind.True => true,
            JsonValueKind.False => false,
            _ => throw new InvalidRequestException($"'{param ?? name}' must be true or false.", param ?? name),
        };
    }
}
