using System.Buffers;
using System.Globalization;
using System.Text;
using System.Text.Json;

namespace Sluice.Gateway.Pipeline;

/// <summary>
/// What Sluice writes into an OpenAI-shaped answer (a whole answer or one stream chunk) on its way to the caller: the
/// public model id in the top-level <c>model</c> (never the provider's upstream name), and <c>usage.cost</c>, the charge
/// in the wallet's currency (<see cref="InferenceTrace.ChargeFor"/>, the function settlement uses). Only the values
/// change: the rest of the answer's bytes are copied as they are, nothing is re-serialised, and an answer that already
/// says the right thing is not copied at all.
/// </summary>
public sealed class AnswerStamp
{
    private readonly byte[] _model;
    private readonly byte[] _modelJson;
    private readonly bool _cost;

    /// <param name="model">The public model id (the catalog's), written into every answer.</param>
    /// <param name="cost">True: <c>usage.cost</c> is written where there is usage. False (the organization turned it off): a
    /// provider's own <c>usage.cost</c> is removed, since it is not what the caller is charged.</param>
    public AnswerStamp(string model, bool cost)
    {
        _model = Encoding.UTF8.GetBytes(model);
        var quoted = new ArrayBufferWriter<byte>(model.Length + 8);
        using (var writer = new Utf8JsonWriter(quoted))
        {
            writer.WriteStringValue(model);
        }

        _modelJson = quoted.WrittenSpan.ToArray();
        _cost = cost;
    }

    /// <summary>The public model id as written into answers.</summary>
    public string Model => Encoding.UTF8.GetString(_model);

    /// <summary>
    /// The answer with the public model id and, when <paramref name="costMicros"/> is given (the answer carries usage), that
    /// cost; the same array when nothing changes.
    /// </summary>
    public byte[] Whole(byte[] body, long? costMicros)
    {
        var output = new ArrayBufferWriter<byte>(body.Length + 32);
        return Rewrite(body, costMicros, output) ? output.WrittenSpan.ToArray() : body;
    }

    /// <summary>A string chunk (translated ones), stamped the same way.</summary>
    public string Chunk(string chunk, long? costMicros)
    {
        var bytes = Encoding.UTF8.GetBytes(chunk);
        var output = new ArrayBufferWriter<byte>(bytes.Length + 32);
        return Rewrite(bytes, costMicros, output) ? Encoding.UTF8.GetString(output.WrittenSpan) : chunk;
    }

    /// <summary>
    /// Writes the stamped JSON to <paramref name="output"/> and returns true, or returns false (writing nothing) when the
    /// JSON already says the right thing or is not an object. <paramref name="costMicros"/> null: the cost is left alone
    /// (a chunk without usage).
    /// </summary>
    public bool Rewrite(ReadOnlySpan<byte> json, long? costMicros, IBufferWriter<byte> output)
    {
        var touchCost = costMicros is not null;
        Span<byte> costText = stackalloc byte[24];
        var costLength = 0;
        if (touchCost && _cost)
        {
            costLength = FormatCost(Math.Max(0, costMicros!.Value), costText);
        }

        // At most two edits: the model's value, and usage.cost (replaced, inserted or removed).
        Edit model = default, cost = default;
        var reader = new Utf8JsonReader(json);
        try
        {
            if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
            {
                return false;
            }

            var modelSeen = false;
            var usageSeen = !touchCost;
            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                if (!modelSeen && reader.ValueTextEquals("model"u8))
                {
                    modelSeen = true;
                    reader.Read();
                    if (reader.TokenType == JsonTokenType.String && !reader.ValueTextEquals(_model))
                    {
                        model = new Edit((int)reader.TokenStartIndex, (int)reader.BytesConsumed, EditKind.Model);
                    }
                    else
                    {
                        reader.Skip();
                    }
                }
                else if (!usageSeen && reader.ValueTextEquals("usage"u8))
                {
                    usageSeen = true;
                    reader.Read();
                    if (reader.TokenType == JsonTokenType.StartObject)
                    {
                        cost = CostEdit(ref reader, costLength > 0);
                    }
                    else
                    {
                        reader.Skip();
                    }
                }
                else
                {
                    reader.Read();
                    reader.Skip();
                }

                if (modelSeen && usageSeen)
                {
                    break; // the rest of the chunk is not read
                }
            }
        }
        catch (JsonException)
        {
            return false; // not ours to repair: relayed as it came
        }

        if (model.Kind == EditKind.None && cost.Kind == EditKind.None)
        {
            return false;
        }

        var (first, second) = model.Kind == EditKind.None || (cost.Kind != EditKind.None && cost.Start < model.Start) ? (cost, model) : (model, cost);
        var at = 0;
        foreach (var edit in (ReadOnlySpan<Edit>)[first, second])
        {
            if (edit.Kind == EditKind.None)
            {
                continue;
            }

            output.Write(json[at..edit.Start]);
            switch (edit.Kind)
            {
                case EditKind.Model:
                    output.Write(_modelJson);
                    break;
                case EditKind.ReplaceCost:
                    output.Write(costText[..costLength]);
                    break;
                case EditKind.InsertCost:
                    output.Write(edit.Comma ? ",\"cost\":"u8 : "\"cost\":"u8);
                    output.Write(costText[..costLength]);
                    break;
                case EditKind.RemoveCost:
                    break;
            }

            at = edit.End;
        }

        output.Write(json[at..]);
        return true;
    }

    /// <summary>
    /// Reads a usage object (the reader on its start) to its end and says what to do with its <c>cost</c>: replace the
    /// provider's value with Sluice's, insert Sluice's before the closing brace, or remove the provider's.
    /// </summary>
    private static Edit CostEdit(ref Utf8JsonReader reader, bool write)
    {
        var objectStart = (int)reader.BytesConsumed; // just after '{'
        var previousEnd = -1; // the end of the property before cost's
        var lastEnd = objectStart;
        var costStart = -1;
        int costValueStart = -1, costValueEnd = -1;
        var nextAfterCost = -1;
        var properties = 0;
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            var nameStart = (int)reader.TokenStartIndex;
            if (costStart >= 0 && nextAfterCost < 0)
            {
                nextAfterCost = nameStart;
            }

            var isCost = reader.ValueTextEquals("cost"u8);
            reader.Read();
            var valueStart = (int)reader.TokenStartIndex;
            reader.Skip();
            if (isCost && costStart < 0)
            {
                costStart = nameStart;
                costValueStart = valueStart;
                costValueEnd = (int)reader.BytesConsumed;
                previousEnd = properties > 0 ? lastEnd : -1;
            }

            lastEnd = (int)reader.BytesConsumed;
            properties++;
        }

        var closing = (int)reader.TokenStartIndex; // the '}'
        if (costStart < 0)
        {
            return write ? new Edit(closing, closing, EditKind.InsertCost, Comma: properties > 0) : default;
        }

        if (write)
        {
            return new Edit(costValueStart, costValueEnd, EditKind.ReplaceCost);
        }

        // Removed with one of its commas: the one before it, else the one after it.
        return previousEnd >= 0 ? new Edit(previousEnd, costValueEnd, EditKind.RemoveCost)
            : nextAfterCost >= 0 ? new Edit(costStart, nextAfterCost, EditKind.RemoveCost)
            : new Edit(costStart, costValueEnd, EditKind.RemoveCost);
    }

    /// <summary>
    /// Micro-units as the currency's units, exactly (a JSON number, no exponent, no trailing zeros): 123 → 0.000123,
    /// 2_500_000 → 2.5, 0 → 0.
    /// </summary>
    public static int FormatCost(long micros, Span<byte> destination)
    {
        var whole = micros / 1_000_000;
        var fraction = micros % 1_000_000;
        whole.TryFormat(destination, out var written, default, CultureInfo.InvariantCulture);
        if (fraction == 0)
        {
            return written;
        }

        destination[written++] = (byte)'.';
        fraction.TryFormat(destination[written..], out var digits, "D6", CultureInfo.InvariantCulture);
        written += digits;
        while (destination[written - 1] == (byte)'0')
        {
            written--;
        }

        return written;
    }

    /// <summary>The cost as text, for documents and tests.</summary>
    public static string FormatCost(long micros)
    {
        Span<byte> text = stackalloc byte[24];
        return Encoding.ASCII.GetString(text[..FormatCost(micros, text)]);
    }

    private enum EditKind
    {
        None,
        Model,
        ReplaceCost,
        InsertCost,
        RemoveCost,
    }

    private readonly record struct Edit(int Start, int End, EditKind Kind, bool Comma = false);
}
