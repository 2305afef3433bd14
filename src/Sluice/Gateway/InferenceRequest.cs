using System.Buffers;
using System.Text.Json;

namespace Sluice.Gateway;

public enum InferenceEndpoint
{
    ChatCompletions,
    Completions,
    Embeddings,
}

/// <summary>
/// What routing and metering need from a request body, read in one pass with <see cref="Utf8JsonReader"/> (which also
/// proves the body is well-formed JSON). The body itself is passed on untouched except for the model name and, for
/// streams, the request for a usage chunk.
/// </summary>
public sealed record InferenceRequest(
    InferenceEndpoint Endpoint,
    string Model,
    bool Stream,
    bool ClientWantsUsage,
    int? MaxTokens,
    ReadOnlyMemory<byte> Body)
{
    public static string Name(InferenceEndpoint endpoint) => endpoint switch
    {
        InferenceEndpoint.ChatCompletions => "chat.completions",
        InferenceEndpoint.Completions => "completions",
        _ => "embeddings",
    };

    /// <summary>Parses and checks the top-level fields; throws <see cref="OpenAiException"/> naming the bad field.</summary>
    public static InferenceRequest Parse(InferenceEndpoint endpoint, ReadOnlyMemory<byte> body)
    {
        string? model = null;
        bool stream = false, wantsUsage = false, sawContent = false;
        int? maxTokens = null;
        var reader = new Utf8JsonReader(body.Span, new JsonReaderOptions { MaxDepth = 64 });
        try
        {
            if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
            {
                throw OpenAiException.Invalid("The request body must be a JSON object.");
            }

            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                if (reader.CurrentDepth != 1)
                {
                    continue;
                }

                if (reader.ValueTextEquals("model"u8))
                {
                    reader.Read();
                    model = reader.TokenType == JsonTokenType.String ? reader.GetString() : throw WrongType("model", "a string");
                }
                else if (reader.ValueTextEquals("stream"u8) && endpoint != InferenceEndpoint.Embeddings)
                {
                    reader.Read();
                    stream = reader.TokenType switch
                    {
                        JsonTokenType.True => true,
                        JsonTokenType.False or JsonTokenType.Null => false,
                        _ => throw WrongType("stream", "a boolean"),
                    };
                }
                else if (reader.ValueTextEquals("stream_options"u8) && endpoint != InferenceEndpoint.Embeddings)
                {
                    reader.Read();
                    wantsUsage = ReadIncludeUsage(ref reader);
                }
                else if (reader.ValueTextEquals("max_tokens"u8) || reader.ValueTextEquals("max_completion_tokens"u8))
                {
                    reader.Read();
                    if (reader.TokenType != JsonTokenType.Null)
                    {
                        maxTokens = reader.TokenType == JsonTokenType.Number && reader.TryGetInt32(out var value) && value > 0
                            ? value
                            : throw WrongType("max_tokens", "a positive integer");
                    }
                }
                else if (reader.ValueTextEquals(ContentField(endpoint)))
                {
                    reader.Read();
                    sawContent = CheckContent(endpoint, ref reader);
                }
                else
                {
                    reader.Read();
                    reader.Skip();
                }
            }

            while (reader.Read())
            {
                // Consume the rest so a truncated body is rejected.
            }
        }
        catch (JsonException)
        {
            throw OpenAiException.Invalid("The request body is not valid JSON.", code: "invalid_json");
        }

        if (string.IsNullOrWhiteSpace(model))
        {
            throw OpenAiException.Invalid("You must provide a model parameter.", "model", "missing_model");
        }

        if (!sawContent)
        {
            var field = System.Text.Encoding.UTF8.GetString(ContentField(endpoint));
            throw OpenAiException.Invalid($"'{field}' is a required property and must not be empty.", field);
        }

        return new InferenceRequest(endpoint, model, stream, wantsUsage, maxTokens, body);
    }

    private static ReadOnlySpan<byte> ContentField(InferenceEndpoint endpoint) => endpoint switch
    {
        InferenceEndpoint.ChatCompletions => "messages"u8,
        InferenceEndpoint.Completions => "prompt"u8,
        _ => "input"u8,
    };

    private static bool CheckContent(InferenceEndpoint endpoint, ref Utf8JsonReader reader)
    {
        if (endpoint == InferenceEndpoint.ChatCompletions)
        {
            if (reader.TokenType != JsonTokenType.StartArray)
            {
                throw WrongType("messages", "an array of messages");
            }

            var count = 0;
            while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
            {
                if (reader.TokenType != JsonTokenType.StartObject)
                {
                    throw WrongType($"messages[{count}]", "an object");
                }

                reader.Skip();
                count++;
            }

            return count > 0;
        }

        var nonEmpty = reader.TokenType switch
        {
            JsonTokenType.String => reader.ValueSpan.Length > 0 || reader.ValueIsEscaped,
            JsonTokenType.StartArray => true,
            _ => throw WrongType(endpoint == InferenceEndpoint.Completions ? "prompt" : "input", "a string or an array"),
        };
        if (reader.TokenType == JsonTokenType.StartArray)
        {
            var start = reader.TokenStartIndex;
            reader.Skip();
            nonEmpty = reader.BytesConsumed - start > 2;
        }

        return nonEmpty;
    }

    private static bool ReadIncludeUsage(ref Utf8JsonReader reader)
    {
        if (reader.TokenType == JsonTokenType.Null)
        {
            return false;
        }

        if (reader.TokenType != JsonTokenType.StartObject)
        {
            throw WrongType("stream_options", "an object");
        }

        var include = false;
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            var isIncludeUsage = reader.ValueTextEquals("include_usage"u8);
            reader.Read();
            if (isIncludeUsage)
            {
                include = reader.TokenType == JsonTokenType.True;
            }
            else
            {
                reader.Skip();
            }
        }

        return include;
    }

    private static OpenAiException WrongType(string field, string expected) =>
        OpenAiException.Invalid($"'{field}' must be {expected}.", field, "invalid_type");

    /// <summary>
    /// The body to send upstream: <c>model</c> replaced by the route's upstream name and, for streams,
    /// <c>stream_options.include_usage</c> set so the upstream reports usage. Everything else is copied byte for byte.
    /// </summary>
    public byte[] RewriteFor(string upstreamModel)
    {
        var output = new ArrayBufferWriter<byte>(Body.Length + 64);
        using (var writer = new Utf8JsonWriter(output))
        {
            var reader = new Utf8JsonReader(Body.Span);
            reader.Read();
            writer.WriteStartObject();
            var wroteStreamOptions = false;
            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                if (reader.ValueTextEquals("model"u8))
                {
                    reader.Read();
                    writer.WriteString("model"u8, upstreamModel);
                    continue;
                }

                if (Stream && reader.ValueTextEquals("stream_options"u8))
                {
                    reader.Read();
                    reader.Skip();
                    WriteStreamOptions(writer);
                    wroteStreamOptions = true;
                    continue;
                }

                if (reader.ValueIsEscaped)
                {
                    writer.WritePropertyName(reader.GetString()!);
                }
                else
                {
                    writer.WritePropertyName(reader.ValueSpan);
                }

                reader.Read();
                var valueStart = (int)reader.TokenStartIndex;
                reader.Skip();
                writer.WriteRawValue(Body.Span[valueStart..(int)reader.BytesConsumed], skipInputValidation: true);
            }

            if (Stream && !wroteStreamOptions)
            {
                WriteStreamOptions(writer);
            }

            writer.WriteEndObject();
        }

        return output.WrittenSpan.ToArray();
    }

    private static void WriteStreamOptions(Utf8JsonWriter writer)
    {
        writer.WriteStartObject("stream_options"u8);
        writer.WriteBoolean("include_usage"u8, true);
        writer.WriteEndObject();
    }
}
