using System.Text.Json;

namespace Sluice.Gateway;

/// <summary>Token counts read from an OpenAI-shaped <c>usage</c> object.</summary>
public readonly record struct TokenUsage(long Prompt, long Completion, long Cached)
{
    /// <summary>
    /// A whole chat completion with <c>usage</c> set to these counts (Sluice's own, when the provider reported none), so
    /// a protocol's translation shows the caller the usage the ledger charges rather than zeros.
    /// </summary>
    public static byte[] WithUsage(byte[] completion, TokenUsage usage)
    {
        var answer = System.Text.Json.Nodes.JsonNode.Parse(completion) as System.Text.Json.Nodes.JsonObject ?? throw new JsonException("the answer is not an object");
        answer["usage"] = new System.Text.Json.Nodes.JsonObject
        {
            ["prompt_tokens"] = usage.Prompt,
            ["completion_tokens"] = usage.Completion,
            ["total_tokens"] = usage.Prompt + usage.Completion,
            ["prompt_tokens_details"] = new System.Text.Json.Nodes.JsonObject { ["cached_tokens"] = usage.Cached },
        };
        return JsonSerializer.SerializeToUtf8Bytes(answer);
    }

    /// <summary>Finds the top-level <c>usage</c> object of a response or chunk; false when absent or null.</summary>
    public static bool TryRead(ReadOnlySpan<byte> json, out TokenUsage usage)
    {
        usage = default;
        var reader = new Utf8JsonReader(json);
        try
        {
            if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
            {
                return false;
            }

            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                if (!reader.ValueTextEquals("usage"u8))
                {
                    reader.Read();
                    reader.Skip();
                    continue;
                }

                reader.Read();
                if (reader.TokenType != JsonTokenType.StartObject)
                {
                    return false;
                }

                long prompt = 0, completion = 0, cached = 0;
                while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
                {
                    if (reader.ValueTextEquals("prompt_tokens"u8) && reader.Read() && reader.TokenType == JsonTokenType.Number)
                    {
                        prompt = reader.GetInt64();
                    }
                    else if (reader.ValueTextEquals("completion_tokens"u8) && reader.Read() && reader.TokenType == JsonTokenType.Number)
                    {
                        completion = reader.GetInt64();
                    }
                    else if (reader.ValueTextEquals("prompt_tokens_details"u8) && reader.Read() && reader.TokenType == JsonTokenType.StartObject)
                    {
                        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
                        {
                            var isCached = reader.ValueTextEquals("cached_tokens"u8);
                            reader.Read();
                            if (isCached && reader.TokenType == JsonTokenType.Number)
                            {
                                cached = reader.GetInt64();
                            }
                            else
                            {
                                reader.Skip();
                            }
                        }
                    }
                    else
                    {
                        if (reader.TokenType == JsonTokenType.PropertyName)
                        {
                            reader.Read();
                        }

                        reader.Skip();
                    }
                }

                usage = new TokenUsage(prompt, completion, cached);
                return true;
            }
        }
        catch (JsonException)
        {
        }

        return false;
    }

    /// <summary>
    /// Reads a whole (non-streamed) answer: false when it is not exactly one well-formed JSON object (a provider's
    /// malformed answer, charged nothing); otherwise <paramref name="reported"/> says whether it carried usage.
    /// </summary>
    public static bool TryReadAnswer(ReadOnlySpan<byte> json, out TokenUsage usage, out bool reported)
    {
        usage = default;
        reported = false;
        var reader = new Utf8JsonReader(json);
        try
        {
            if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
            {
                return false;
            }

            reader.Skip(); // validates the whole object
            if (reader.Read())
            {
                return false; // anything after the object
            }
        }
        catch (JsonException)
        {
            return false;
        }

        reported = TryRead(json, out usage);
        return true;
    }

    /// <summary>True for a chunk that only carries usage (<c>"choices":[]</c>), which clients that did not ask for it never see.</summary>
    public static bool IsUsageOnlyChunk(ReadOnlySpan<byte> json) => json.IndexOf("\"choices\":[]"u8) >= 0;
}
