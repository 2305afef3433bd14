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
/// proves the body is well-formed JSON in valid UTF-8). The body itself is passed on untouched except for the model
/// name, the completion limit (<see cref="CompletionLimit"/>) and, for streams, the request for a usage chunk.
/// </summary>
/// <param name="Endpoint">Which inference endpoint the body is for.</param>
/// <param name="Model">The model the client named (a catalog id if it exists).</param>
/// <param name="Stream">Whether the answer is an event stream.</param>
/// <param name="ClientWantsUsage">Whether the client asked for a usage chunk at the end of a stream.</param>
/// <param name="MaxTokens">The largest completion the client allowed: the larger of <c>max_tokens</c> and
/// <c>max_completion_tokens</c> when it sent both (a provider may honour either).</param>
/// <param name="Body">The body as received.</param>
/// <param name="Choices">How many completions the client asked for (<c>n</c>), each up to the limit.</param>
public sealed record InferenceRequest(
    InferenceEndpoint Endpoint,
    string Model,
    bool Stream,
    bool ClientWantsUsage,
    int? MaxTokens,
    ReadOnlyMemory<byte> Body,
    int Choices = 1)
{
    /// <summary>
    /// The completion limit per choice that Sluice held for and writes into the upstream request (0: none, embeddings),
    /// so the provider cannot produce more than the hold covers. Set by the pipeline once the hold is taken.
    /// </summary>
    public int CompletionLimit { get; init; }

    /// <summary>The protocol the caller spoke when not OpenAI's own endpoints; <see cref="Body"/> is then its translation to a chat completion request.</summary>
    public Protocols.IInboundProtocol? Protocol { get; init; }

    /// <summary>The caller's own body when it spoke another <see cref="Protocol"/>, for an upstream that speaks that protocol itself.</summary>
    public ReadOnlyMemory<byte> NativeBody { get; init; }

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
        var choices = 1;
        var bestOf = 1;
        if (!System.Text.Unicode.Utf8.IsValid(body.Span))
        {
            throw OpenAiException.Invalid("The request body is not valid UTF-8.", code: "invalid_encoding");
        }

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
                    var field = reader.ValueTextEquals("max_tokens"u8) ? "max_tokens" : "max_completion_tokens";
                    reader.Read();
                    if (reader.TokenType != JsonTokenType.Null)
                    {
                        var value = reader.TokenType == JsonTokenType.Number && reader.TryGetInt32(out var number) && number > 0
                            ? number
                            : throw WrongType(field, "a positive integer");
                        maxTokens = Math.Max(maxTokens ?? 0, value);
                    }
                }
                else if (reader.ValueTextEquals("n"u8) && endpoint != InferenceEndpoint.Embeddings)
                {
                    reader.Read();
                    if (reader.TokenType != JsonTokenType.Null)
                    {
                        choices = reader.TokenType == JsonTokenType.Number && reader.TryGetInt32(out var n) && n is > 0 and <= 128
                            ? n
                            : throw WrongType("n", "an integer from 1 to 128");
                    }
                }
                else if (reader.ValueTextEquals("best_of"u8) && endpoint == InferenceEndpoint.Completions)
                {
                    // The provider generates best_of completions (returning n of them) and bills them all: held as choices.
                    reader.Read();
                    if (reader.TokenType != JsonTokenType.Null)
                    {
                        bestOf = reader.TokenType == JsonTokenType.Number && reader.TryGetInt32(out var generated) && generated is > 0 and <= 128
                            ? generated
                            : throw WrongType("best_of", "an integer from 1 to 128");
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
        catch (InvalidOperationException)
        {
            throw OpenAiException.Invalid("The request body has a string that is not valid Unicode (a lone surrogate escape).", code: "invalid_encoding");
        }

        if (body.Span.IndexOf("\\u"u8) >= 0)
        {
            CheckEscapes(body.Span);
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

        return new InferenceRequest(endpoint, model, stream, wantsUsage, maxTokens, body, Math.Max(choices, bestOf));
    }

    /// <summary>Valid UTF-8 with no lone surrogate escape, else an <see cref="OpenAiException"/> (400, <c>invalid_encoding</c>).</summary>
    public static void CheckText(ReadOnlySpan<byte> body)
    {
        if (!System.Text.Unicode.Utf8.IsValid(body))
        {
            throw OpenAiException.Invalid("The request body is not valid UTF-8.", code: "invalid_encoding");
        }

        if (body.IndexOf("\\u"u8) >= 0)
        {
            CheckEscapes(body);
        }
    }

    /// <summary>
    /// Escapes decode to valid UTF-16: a lone surrogate (<c>"\ud800"</c>) is valid JSON but not text, and every consumer
    /// that decodes it (the built-in model, a translation, the provider) would fail on it. Only bodies with escapes pay.
    /// </summary>
    private static void CheckEscapes(ReadOnlySpan<byte> body)
    {
        var reader = new Utf8JsonReader(body, new JsonReaderOptions { MaxDepth = 64 });
        char[]? rented = null;
        try
        {
            while (reader.Read())
            {
                if (reader.TokenType is JsonTokenType.String or JsonTokenType.PropertyName && reader.ValueIsEscaped)
                {
                    var length = reader.HasValueSequence ? (int)reader.ValueSequence.Length : reader.ValueSpan.Length;
                    if (rented is null || rented.Length < length)
                    {
                        if (rented is not null)
                        {
                            ArrayPool<char>.Shared.Return(rented);
                        }

                        rented = ArrayPool<char>.Shared.Rent(Math.Max(length, 256));
                    }

                    reader.CopyString(rented);
                }
            }
        }
        catch (InvalidOperationException)
        {
            throw OpenAiException.Invalid("The request body has a string that is not valid Unicode (a lone surrogate escape).", code: "invalid_encoding");
        }
        finally
        {
            if (rented is not null)
            {
                ArrayPool<char>.Shared.Return(rented);
            }
        }
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
    /// The body to send upstream: <c>model</c> replaced by the route's upstream name; every completion limit the client
    /// sent (<c>max_tokens</c>, <c>max_completion_tokens</c>) set to <see cref="CompletionLimit"/>, or, when it sent
    /// none, the field the endpoint's providers honour added (<c>max_completion_tokens</c> for chat, <c>max_tokens</c>
    /// for completions); and, for streams, <c>stream_options.include_usage</c> set so the upstream reports usage.
    /// Everything else is copied byte for byte.
    /// </summary>
    public byte[] RewriteFor(string upstreamModel)
    {
        var limit = CompletionLimit;
        var wroteLimit = false;
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

                if (limit > 0 && (reader.ValueTextEquals("max_tokens"u8) || reader.ValueTextEquals("max_completion_tokens"u8)))
                {
                    var name = reader.ValueTextEquals("max_tokens"u8) ? "max_tokens"u8 : "max_completion_tokens"u8;
                    reader.Read();
                    writer.WriteNumber(name, limit);
                    wroteLimit = true;
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

            if (limit > 0 && !wroteLimit)
            {
                writer.WriteNumber(Endpoint == InferenceEndpoint.Completions ? "max_tokens"u8 : "max_completion_tokens"u8, limit);
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
