using System.Collections.Frozen;
using System.Globalization;

namespace Sluice.Engine.Embeddings;

/// <summary>
/// BERT's accent stripping (NFD, then drop nonspacing marks) without ICU: Sluice runs with invariant globalization,
/// where <see cref="string.Normalize()"/> leaves text as it is. Precomposed characters map through a table generated
/// from the Unicode data (scripts/gen-accent-folding.py); Hangul syllables decompose arithmetically into their jamo,
/// as NFD does; a standalone nonspacing mark is dropped.
/// </summary>
internal static partial class AccentFolding
{
    private const int HangulBase = 0xAC00, HangulCount = 11172, JamoL = 0x1100, JamoV = 0x1161, JamoT = 0x11A7, VCount = 21, TCount = 28;

    private static readonly FrozenDictionary<int, string> Folded = Parse();

    /// <summary>Appends <paramref name="rune"/> with its accents stripped.</summary>
    public static void Append(System.Text.Rune rune, System.Text.StringBuilder output)
    {
        var value = rune.Value;
        if (value < 0x80)
        {
            output.Append((char)value);
            return;
        }

        if (value is >= HangulBase and < HangulBase + HangulCount)
        {
            var index = value - HangulBase;
            output.Append((char)(JamoL + (index / (VCount * TCount))));
            output.Append((char)(JamoV + (index % (VCount * TCount) / TCount)));
            if (index % TCount != 0)
            {
                output.Append((char)(JamoT + (index % TCount)));
            }

            return;
        }

        if (Folded.TryGetValue(value, out var folded))
        {
            output.Append(folded);
            return;
        }

        if (System.Text.Rune.GetUnicodeCategory(rune) != UnicodeCategory.NonSpacingMark)
        {
            output.Append(rune.ToString());
        }
    }

    private static FrozenDictionary<int, string> Parse()
    {
        var entries = new Dictionary<int, string>(2100);
        foreach (var line in Table.AsSpan().EnumerateLines())
        {
            if (line.IsEmpty)
            {
                continue;
            }

            var tab = line.IndexOf('\t');
            entries[int.Parse(line[..tab], NumberStyles.HexNumber, CultureInfo.InvariantCulture)] = line[(tab + 1)..].ToString();
        }

        return entries.ToFrozenDictionary();
    }
}
