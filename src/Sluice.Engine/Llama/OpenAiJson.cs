using System.Buffers;
using System.Text.Json;
using Microsoft.AspNetCore.Http;

namespace Sluice.Engine.Llama;

/// <summary>OpenAI's response shapes, written directly with <see cref="Utf8JsonWriter"/> (no reflection, exact field names).</summary>
internal static class OpenAiJson
{
    public static async Task WriteErrorAsync(HttpResponse response, int status, string message, string type, string? param = null, string? code = null)
    {
        response.StatusCode = status;
        response.ContentType = "application/json";
        await response.Body.WriteAsync(Error(message, type, param, code));
    }

    public static byte[] Error(string message, string type, string? param, string? code) => Write(w =>
    {
        w.WriteStartObject();
        w.WriteStartObject("error");
        w.WriteString("message", message);
        w.WriteString("type", type);
        WriteNullable(w, "param", param);
        WriteNullable(w, "code", code);
        w.WriteEndObject();
        w.WriteEndObject();
    });

    /// <summary>llama.cpp server's answer while the model loads.</summary>
    public static readonly byte[] Loading =
        """{"error":{"code":503,"message":"Loading model","type":"unavailable_error"}}"""u8.ToArray();

    public static readonly byte[] Ok = """{"status":"ok"}"""u8.ToArray();

    public static byte[] Models(string modelId, long created) => Write(w =>
    {
        w.WriteStartObject();
        w.WriteString("object", "list");
        w.WriteStartArray("data");
        w.WriteStartObject();
        w.WriteString("id", modelId);
        w.WriteString("object", "model");
        w.WriteNumber("created", created);
        w.WriteString("owned_by", "sluice");
        w.WriteEndObject();
        w.WriteEndArray();
        w.WriteEndObject();
    });

    public static byte[] Completion(bool chat, string id, long created, string model, string text, GenerationResult result) => Write(w =>
    {
        w.WriteStartObject();
        w.WriteString("id", id);
        w.WriteString("object", chat ? "chat.completion" : "text_completion");
        w.WriteNumber("created", created);
        w.WriteString("model", model);
        w.WriteNull("system_fingerprint");
        w.WriteStartArray("choices");
        w.WriteStartObject();
        w.WriteNumber("index", 0);
        if (chat)
        {
            w.WriteStartObject("message");
            w.WriteString("role", "assistant");
            w.WriteString("content", text);
            w.WriteNull("refusal");
            w.WriteEndObject();
        }
        else
        {
            w.WriteString("text", text);
        }

        w.WriteNull("logprobs");
        w.WriteString("finish_reason", Finish(result.Finish));
        w.WriteEndObject();
        w.WriteEndArray();
        Usage(w, result);
        w.WriteEndObject();
    });

    /// <summary>One streamed chunk: a delta (role and/or text), a finish reason, or (with no choices) the usage.</summary>
    public static byte[] Chunk(
        bool chat, string id, long created, string model, bool includeUsage,
        string? role = null, string? text = null, FinishReason? finish = null, GenerationResult? usage = null) => Write(w =>
    {
        w.WriteStartObject();
        w.WriteString("id", id);
        w.WriteString("object", chat ? "chat.completion.chunk" : "text_completion");
        w.WriteNumber("created", created);
        w.WriteString("model", model);
        w.WriteNull("system_fingerprint");
        w.WriteStartArray("choices");
        if (usage is null)
        {
            w.WriteStartObject();
            w.WriteNumber("index", 0);
            if (chat)
            {
                w.WriteStartObject("delta");
                if (role is not null)
                {
                    w.WriteString("role", role);
                }

                if (text is not null)
                {
                    w.WriteString("content", text);
                }

                w.WriteEndObject();
            }
            else
            {
                w.WriteString("text", text ?? string.Empty);
            }

            w.WriteNull("logprobs");
            if (finish is { } reason)
            {
                w.WriteString("finish_reason", Finish(reason));
            }
            else
            {
                w.WriteNull("finish_reason");
            }

            w.WriteEndObject();
        }

        w.WriteEndArray();
        if (usage is not null)
        {
            Usage(w, usage);
        }
        else if (includeUsage)
        {
            w.WriteNull("usage");
        }

        w.WriteEndObject();
    });

    private static string Finish(FinishReason reason) => reason == FinishReason.Stop ? "stop" : "length";

    private static void Usage(Utf8JsonWriter w, GenerationResult result)
    {
        w.WriteStartObject("usage");
        w.WriteNumber("prompt_tokens", result.PromptTokens);
        w.WriteNumber("completion_tokens", result.CompletionTokens);
        w.WriteNumber("total_tokens", result.PromptTokens + result.CompletionTokens);
        w.WriteEndObject();
    }

    private static void WriteNullable(Utf8JsonWriter w, string name, string? value)
    {
        if (value is null)
        {
            w.WriteNull(name);
        }
        else
        {
            w.WriteString(name, value);
        }
    }

    private static byte[] Write(Action<Utf8JsonWriter> write)
    {
        var buffer = new ArrayBufferWriter<byte>(256);
        using (var writer = new Utf8JsonWriter(buffer))
        {
            write(writer);
        }

        return buffer.WrittenSpan.ToArray();
    }
}
