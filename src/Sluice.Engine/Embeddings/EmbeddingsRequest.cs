using System.Text.Json;

namespace Sluice.Engine.Embeddings;

/// <summary>A request the engine refuses, answered in OpenAI's error shape. Its message never quotes the input.</summary>
internal sealed class EngineError(int status, string message, string? param, string code, string type = "invalid_request_error") : Exception(message)
{
    public int Status { get; } = status;

    public string? Param { get; } = param;

    public string Code { get; } = code;

    public string Type { get; } = type;
}

/// <summary>
/// <c>POST /v1/embeddings</c> as OpenAI defines it (CreateEmbeddingRequest): <c>input</c> is a string or an array of
/// strings (token-id arrays are refused: this engine embeds text), <c>encoding_format</c> is <c>float</c> (the default)
/// or <c>base64</c>, <c>dimensions</c> may only be 384, <c>model</c> must name this engine's model; <c>user</c> and
/// unknown fields are ignored.
/// </summary>
internal sealed record EmbeddingsRequest(IReadOnlyList<string> Inputs, bool Base64)
{
    /// <summary>Inputs per request, as OpenAI allows.</summary>
    public const int MaxInputs = 2048;

    public static EmbeddingsRequest Parse(ReadOnlySpan<byte> body, string modelId)
    {
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(body.ToArray(), new JsonDocumentOptions { MaxDepth = 64 });
        }
        catch (JsonException)
        {
            throw new EngineError(400, "The request body is not valid JSON.", null, "invalid_json");
        }

        using (document)
        {
            var root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
            {
                throw new EngineError(400, "The request body must be a JSON object.", null, "invalid_json");
            }

            try
            {
                CheckModel(root, modelId);
                var inputs = ReadInputs(root);
                var base64 = EncodingFormat(root);
                CheckDimensions(root);
                return new EmbeddingsRequest(inputs, base64);
            }
            catch (InvalidOperationException)
            {
                // A string with a lone surrogate escape ("\ud800") is valid JSON but not text.
                throw new EngineError(400, "The request has a string that is not valid Unicode (a lone surrogate escape).", null, "invalid_encoding");
            }
        }
    }

    private static void CheckModel(JsonElement root, string modelId)
    {
        if (!root.TryGetProperty("model", out var model) || model.ValueKind == JsonValueKind.Null)
        {
            throw new EngineError(400, "You must provide a model parameter.", "model", "missing_model");
        }

        if (model.ValueKind != JsonValueKind.String)
        {
            throw new EngineError(400, "'model' must be a string.", "model", "invalid_type");
        }

        var name = model.GetString()!;
        if (!string.Equals(name, modelId, StringComparison.Ordinal))
        {
            throw new EngineError(404, $"The model '{(name.Length > 100 ? name[..100] : name)}' does not exist; this engine serves '{modelId}'.", "model", "model_not_found");
        }
    }

    private static List<string> ReadInputs(JsonElement root)
    {
        if (!root.TryGetProperty("input", out var input) || input.ValueKind == JsonValueKind.Null)
        {
            throw new EngineError(400, "'input' is a required property: a string or an array of strings.", "input", "missing_input");
        }

        if (input.ValueKind == JsonValueKind.String)
        {
            var text = input.GetString()!;
            return text.Length == 0
                ? throw new EngineError(400, "'input' must not be an empty string.", "input", "empty_input")
                : [text];
        }

        if (input.ValueKind != JsonValueKind.Array)
        {
            throw new EngineError(400, "'input' must be a string or an array of strings.", "input", "invalid_type");
        }

        var count = input.GetArrayLength();
        if (count == 0)
        {
            throw new EngineError(400, "'input' must not be an empty array.", "input", "empty_input");
        }

        if (count > MaxInputs)
        {
            throw new EngineError(400, $"'input' holds {count} items; at most {MaxInputs} may be embedded in one request. Split it into several requests.", "input", "too_many_inputs");
        }

        var inputs = new List<string>(count);
        var index = 0;
        foreach (var item in input.EnumerateArray())
        {
            switch (item.ValueKind)
            {
                case JsonValueKind.String:
                    var text = item.GetString()!;
                    inputs.Add(text.Length == 0
                        ? throw new EngineError(400, $"'input[{index}]' must not be an empty string.", $"input[{index}]", "empty_input")
                        : text);
                    break;
                case JsonValueKind.Number or JsonValueKind.Array:
                    throw new EngineError(400, "Token-id input is not supported by this model: its tokenizer is its own, so send the text as a string or an array of strings.", "input", "unsupported_input");
                default:
                    throw new EngineError(400, $"'input[{index}]' must be a string.", $"input[{index}]", "invalid_type");
            }

            index++;
        }

        return inputs;
    }

    private static bool EncodingFormat(JsonElement root)
    {
        if (!root.TryGetProperty("encoding_format", out var format) || format.ValueKind == JsonValueKind.Null)
        {
            return false;
        }

        return format.ValueKind == JsonValueKind.String && format.GetString() is "float" or "base64"
            ? format.GetString() == "base64"
            : throw new EngineError(400, "'encoding_format' must be 'float' or 'base64'.", "encoding_format", "invalid_value");
    }

    private static void CheckDimensions(JsonElement root)
    {
        if (!root.TryGetProperty("dimensions", out var dimensions) || dimensions.ValueKind == JsonValueKind.Null)
        {
            return;
        }

        if (dimensions.ValueKind != JsonValueKind.Number || !dimensions.TryGetInt32(out var value) || value < 1)
        {
            throw new EngineError(400, "'dimensions' must be a positive integer.", "dimensions", "invalid_type");
        }

        if (value != MiniLmModel.Dimensions)
        {
            throw new EngineError(400, $"This model's embeddings have {MiniLmModel.Dimensions} dimensions and cannot be shortened; omit 'dimensions' or set it to {MiniLmModel.Dimensions}.", "dimensions", "unsupported_dimensions");
        }
    }
}
