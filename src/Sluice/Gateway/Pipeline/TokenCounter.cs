using System.Buffers;
using System.Text;
using System.Text.Json;
using Microsoft.ML.Tokenizers;

namespace Sluice.Gateway.Pipeline;

/// <summary>
/// Sluice's own token count, for answers whose provider reported no usage: the o200k_base vocabulary (shipped in
/// <c>Microsoft.ML.Tokenizers.Data.O200kBase</c>), loaded once, on first use (it is large, and most providers report
/// usage, so most processes never load it). Counts the text a request sends (message contents, prompts, inputs) and the
/// text an answer carries (contents, texts, tool-call arguments), not the JSON around it. Off the hot path: the hold's
/// prompt bound is the body's byte count (<see cref="PromptBound"/>), which costs nothing.
/// </summary>
public static class TokenCounter
{
    private static readonly Lazy<Tokenizer> Vocabulary = new(() => TiktokenTokenizer.CreateForEncoding("o200k_base"), LazyThreadSafetyMode.ExecutionAndPublication);

    /// <summary>
    /// An upper bound on the prompt tokens of a body of <paramref name="bodyBytes"/> UTF-8 bytes, for the hold and the
    /// rate limiter: byte-level BPE tokenizers (OpenAI's, Llama's, Qwen's, Mistral's Tekken…) never give a token less
    /// than one byte of text, and the JSON around the text (quotes, <c>"role":"user"</c>, braces) is longer than the
    /// few tokens a chat template adds per message. So the count is never more than the body's length.
    /// </summary>
    public static long PromptBound(int bodyBytes) => bodyBytes;

    public static int Count(string text) => text.Length == 0 ? 0 : Vocabulary.Value.CountTokens(text);

    /// <summary>The tokens of the text a request sends: every string (and each token id) under its messages, prompt or input.</summary>
    public static long CountPrompt(InferenceEndpoint endpoint, ReadOnlySpan<byte> body)
    {
        var field = endpoint switch
        {
            InferenceEndpoint.ChatCompletions => "messages"u8,
            InferenceEndpoint.Completions => "prompt"u8,
            _ => "input"u8,
        };
        var text = new StringBuilder();
        long ids = 0;
        var reader = new Utf8JsonReader(body);
        try
        {
            reader.Read();
            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                var wanted = reader.ValueTextEquals(field);
                reader.Read();
                if (!wanted)
                {
                    reader.Skip();
                    continue;
                }

                if (reader.TokenType is not (JsonTokenType.StartArray or JsonTokenType.StartObject))
                {
                    Tally(ref reader, text, ref ids);
                    continue;
                }

                var depth = reader.CurrentDepth;
                while (reader.Read() && reader.CurrentDepth > depth)
                {
                    Tally(ref reader, text, ref ids);
                }
            }
        }
        catch (Exception ex) when (ex is JsonException or InvalidOperationException)
        {
            // The request was validated before it was sent; count what was read.
        }

        return ids + Count(text.ToString());
    }

    private static void Tally(ref Utf8JsonReader reader, StringBuilder text, ref long ids)
    {
        if (reader.TokenType == JsonTokenType.String)
        {
            text.Append(reader.GetString()).Append('\n');
        }
        else if (reader.TokenType == JsonTokenType.Number)
        {
            ids++; // a pre-tokenized prompt: one token per id
        }
    }

    /// <summary>
    /// Appends the text of an OpenAI-shaped answer (or stream chunk) to <paramref name="text"/> as UTF-8: its contents,
    /// texts and tool-call arguments. Unescaped values are copied as bytes; no string is made per chunk.
    /// </summary>
    public static void AppendAnswerText(ReadOnlySpan<byte> json, ArrayBufferWriter<byte> text)
    {
        var reader = new Utf8JsonReader(json);
        try
        {
            while (reader.Read())
            {
                if (reader.TokenType == JsonTokenType.PropertyName
                    && (reader.ValueTextEquals("content"u8) || reader.ValueTextEquals("text"u8) || reader.ValueTextEquals("arguments"u8)
                        || reader.ValueTextEquals("refusal"u8) || reader.ValueTextEquals("reasoning_content"u8))
                    && reader.Read() && reader.TokenType == JsonTokenType.String)
                {
                    if (reader.ValueIsEscaped)
                    {
                        Encoding.UTF8.GetBytes(reader.GetString()!, text);
                    }
                    else
                    {
                        text.Write(reader.ValueSpan);
                    }
                }
            }
        }
        catch (Exception ex) when (ex is JsonException or InvalidOperationException)
        {
        }
    }

    /// <summary>The tokens of UTF-8 text gathered by <see cref="AppendAnswerText"/>.</summary>
    public static long Count(ReadOnlySpan<byte> utf8) => utf8.IsEmpty ? 0 : Count(Encoding.UTF8.GetString(utf8));

    public static long CountAnswer(ReadOnlySpan<byte> json)
    {
        var text = new ArrayBufferWriter<byte>();
        AppendAnswerText(json, text);
        return Count(text.WrittenSpan);
    }
}
