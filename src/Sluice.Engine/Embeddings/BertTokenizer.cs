using System.Globalization;
using System.Text;

namespace Sluice.Engine.Embeddings;

/// <summary>
/// BERT's uncased WordPiece tokenizer, as Hugging Face's <c>BertTokenizer</c> does it for all-MiniLM-L6-v2: drop control
/// characters, split on whitespace, isolate CJK ideographs, lowercase, strip accents, split off punctuation, then
/// greedy longest-match-first word pieces ("##" marks a continuation; a word with no cover, or over 100 characters, is
/// one [UNK]). The result starts with [CLS] and ends with [SEP], and holds at most <see cref="MaxTokens"/> tokens:
/// longer text is cut, as sentence-transformers does (its <c>max_seq_length</c> is 256 for this model). Tokenizing
/// stops as soon as the window is full, so a huge input costs no more than a window's worth of work.
/// </summary>
internal sealed class BertTokenizer
{
    /// <summary>The model's window: sentence-transformers' <c>max_seq_length</c> for all-MiniLM-L6-v2, [CLS] and [SEP] included.</summary>
    public const int MaxTokens = 256;

    private const int MaxWordChars = 100;

    private readonly Dictionary<string, int> _vocabulary;
    private readonly Dictionary<string, int>.AlternateLookup<ReadOnlySpan<char>> _lookup;

    public BertTokenizer(IEnumerable<string> vocabulary)
    {
        _vocabulary = new Dictionary<string, int>(StringComparer.Ordinal);
        var index = 0;
        foreach (var token in vocabulary)
        {
            _vocabulary.TryAdd(token, index++);
        }

        _lookup = _vocabulary.GetAlternateLookup<ReadOnlySpan<char>>();
        Unknown = Id("[UNK]");
        Classification = Id("[CLS]");
        Separator = Id("[SEP]");
    }

    public int Unknown { get; }

    public int Classification { get; }

    public int Separator { get; }

    public int VocabularySize => _vocabulary.Count;

    public static BertTokenizer Load(Stream vocabulary)
    {
        using var reader = new StreamReader(vocabulary, Encoding.UTF8);
        var tokens = new List<string>(31_000);
        while (reader.ReadLine() is { } line)
        {
            tokens.Add(line.TrimEnd('\r'));
        }

        return new BertTokenizer(tokens);
    }

    /// <summary>The token ids of <paramref name="text"/>: [CLS], at most <see cref="MaxTokens"/> − 2 word pieces, [SEP].</summary>
    public int[] Encode(string text)
    {
        var ids = new List<int>(Math.Min(MaxTokens, (text.Length / 3) + 4)) { Classification };
        var word = new StringBuilder();
        foreach (var rune in text.EnumerateRunes())
        {
            if (ids.Count >= MaxTokens - 1)
            {
                break;
            }

            var value = rune.Value;
            if (value == 0 || value == 0xFFFD || IsControl(rune))
            {
                continue;
            }

            if (IsWhitespace(rune))
            {
                AddWord(word, ids);
                continue;
            }

            if (IsCjk(value))
            {
                AddWord(word, ids);
                word.Append(rune.ToString());
                AddWord(word, ids);
                continue;
            }

            word.Append(rune.ToString());
        }

        AddWord(word, ids);
        if (ids.Count > MaxTokens - 1)
        {
            ids.RemoveRange(MaxTokens - 1, ids.Count - (MaxTokens - 1));
        }

        ids.Add(Separator);
        return [.. ids];
    }

    /// <summary>The vocabulary entry of <paramref name="id"/> (tests and diagnostics).</summary>
    public string Token(int id) => _vocabulary.First(entry => entry.Value == id).Key;

    private int Id(string token) =>
        _vocabulary.TryGetValue(token, out var id) ? id : throw new InvalidDataException($"The vocabulary has no {token} token.");

    /// <summary>Lowercases and strips accents from one whitespace-separated word, splits off punctuation, adds the pieces.</summary>
    private void AddWord(StringBuilder word, List<int> ids)
    {
        if (word.Length == 0)
        {
            return;
        }

        var lowered = word.ToString().ToLowerInvariant();
        word.Clear();
        var folded = new StringBuilder(lowered.Length);
        foreach (var rune in lowered.EnumerateRunes())
        {
            AccentFolding.Append(rune, folded);
        }

        var normalized = folded.ToString();
        var start = 0;
        var index = 0;
        foreach (var rune in normalized.EnumerateRunes())
        {
            if (IsPunctuation(rune))
            {
                AddPieces(normalized.AsSpan(start, index - start), ids);
                AddPieces(normalized.AsSpan(index, rune.Utf16SequenceLength), ids);
                start = index + rune.Utf16SequenceLength;
            }

            index += rune.Utf16SequenceLength;
        }

        AddPieces(normalized.AsSpan(start), ids);
    }

    /// <summary>Greedy longest-match-first word pieces of one token; the whole token is [UNK] when any part has no piece.</summary>
    private void AddPieces(ReadOnlySpan<char> token, List<int> ids)
    {
        if (token.IsEmpty || ids.Count >= MaxTokens - 1)
        {
            return;
        }

        if (CountRunes(token) > MaxWordChars)
        {
            ids.Add(Unknown);
            return;
        }

        Span<char> candidate = stackalloc char[(MaxWordChars * 2) + 2];
        candidate[0] = '#';
        candidate[1] = '#';
        var first = ids.Count;
        var start = 0;
        while (start < token.Length)
        {
            var end = token.Length;
            var found = -1;
            while (end > start)
            {
                var part = token[start..end];
                int id;
                if (start == 0)
                {
                    found = _lookup.TryGetValue(part, out id) ? id : -1;
                }
                else
                {
                    part.CopyTo(candidate[2..]);
                    found = _lookup.TryGetValue(candidate[..(part.Length + 2)], out id) ? id : -1;
                }

                if (found >= 0)
                {
                    break;
                }

                end--;
                if (end > start && char.IsLowSurrogate(token[end]))
                {
                    end--; // never split a surrogate pair
                }
            }

            if (found < 0)
            {
                ids.RemoveRange(first, ids.Count - first);
                ids.Add(Unknown);
                return;
            }

            ids.Add(found);
            start = end;
        }
    }

    private static int CountRunes(ReadOnlySpan<char> text)
    {
        var count = 0;
        foreach (var c in text)
        {
            if (!char.IsLowSurrogate(c))
            {
                count++;
            }
        }

        return count;
    }

    private static bool IsWhitespace(Rune rune) =>
        rune.Value is ' ' or '\t' or '\n' or '\r' || Rune.GetUnicodeCategory(rune) == UnicodeCategory.SpaceSeparator;

    private static bool IsControl(Rune rune) =>
        rune.Value is not ('\t' or '\n' or '\r') && Rune.GetUnicodeCategory(rune) is UnicodeCategory.Control or UnicodeCategory.Format;

    private static bool IsPunctuation(Rune rune)
    {
        var value = rune.Value;
        if (value is (>= 33 and <= 47) or (>= 58 and <= 64) or (>= 91 and <= 96) or (>= 123 and <= 126))
        {
            return true; // BERT treats every non-alphanumeric ASCII character as punctuation ($, ^, `…)
        }

        return Rune.GetUnicodeCategory(rune) is UnicodeCategory.ConnectorPunctuation or UnicodeCategory.DashPunctuation
            or UnicodeCategory.OpenPunctuation or UnicodeCategory.ClosePunctuation or UnicodeCategory.InitialQuotePunctuation
            or UnicodeCategory.FinalQuotePunctuation or UnicodeCategory.OtherPunctuation;
    }

    /// <summary>The CJK Unified Ideographs blocks BERT isolates (not Hiragana, Katakana or Hangul).</summary>
    private static bool IsCjk(int value) =>
        value is (>= 0x4E00 and <= 0x9FFF) or (>= 0x3400 and <= 0x4DBF) or (>= 0x20000 and <= 0x2A6DF) or (>= 0x2A700 and <= 0x2B73F)
            or (>= 0x2B740 and <= 0x2B81F) or (>= 0x2B820 and <= 0x2CEAF) or (>= 0xF900 and <= 0xFAFF) or (>= 0x2F800 and <= 0x2FA1F);
}
