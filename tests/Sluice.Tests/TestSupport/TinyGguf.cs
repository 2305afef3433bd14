using System.Text;

namespace Sluice.Tests.TestSupport;

/// <summary>
/// Writes a tiny llama-architecture GGUF (v3) with random F32 weights from a fixed seed and a byte vocabulary, which
/// llama.cpp loads and runs for real: 2 blocks, embedding 64, 4 heads, feed-forward 128, context 256, about 0.4 MB.
/// It produces gibberish; tests assert on shapes, counts and behaviour.
/// </summary>
/// <remarks>
/// The vocabulary is SentencePiece-style (<c>tokenizer.ggml.model = "llama"</c>): <c>&lt;unk&gt;</c>, <c>&lt;s&gt;</c>,
/// <c>&lt;/s&gt;</c>, the 256 byte tokens <c>&lt;0x00&gt;</c>…<c>&lt;0xFF&gt;</c> (type BYTE) and <c>▁</c> (the space),
/// with no space prefix. So a text without spaces tokenizes to one token per UTF-8 byte, and each space is one token:
/// <see cref="TokenCount"/> counts exactly what llama.cpp's tokenizer produces. A chatml chat template is included, which
/// llama.cpp's template support recognises.
/// </remarks>
public static class TinyGguf
{
    public const int Embedding = 64;
    public const int Heads = 4;
    public const int FeedForward = 128;
    public const int Blocks = 2;
    public const int TrainedContext = 256;
    public const int Bos = 1;
    public const int Eos = 2;
    public const int VocabularySize = 3 + 256 + 1;

    public const string ChatTemplate =
        "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}"
        + "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

    /// <summary>The tokens llama.cpp makes of <paramref name="text"/> (with the BOS token it adds).</summary>
    public static int TokenCount(string text) =>
        1 + text.Sum(c => c == ' ' ? 1 : 0) + Encoding.UTF8.GetByteCount(text.Replace(" ", string.Empty, StringComparison.Ordinal));

    /// <summary>What the chatml template makes of one user message (llama.cpp's rendering of the template).</summary>
    public static string ChatPrompt(params (string Role, string Content)[] messages) =>
        string.Concat(messages.Select(m => $"<|im_start|>{m.Role}\n{m.Content}<|im_end|>\n")) + "<|im_start|>assistant\n";

    /// <summary>Writes the model to a new file in <paramref name="directory"/> and returns its path.</summary>
    public static string Write(string directory, string name = "tiny-llama.gguf", int seed = 1234)
    {
        Directory.CreateDirectory(directory);
        var path = Path.Combine(directory, name);
        using var stream = new FileStream(path, FileMode.Create, FileAccess.Write);
        Write(stream, seed);
        return path;
    }

    public static void Write(Stream stream, int seed = 1234)
    {
        var random = new Random(seed);
        var tensors = new List<(string Name, long[] Shape, float[] Data)>
        {
            ("token_embd.weight", [Embedding, VocabularySize], Gaussian(random, Embedding * VocabularySize, 1.0f)),
        };
        for (var block = 0; block < Blocks; block++)
        {
            var prefix = $"blk.{block}.";
            tensors.Add((prefix + "attn_norm.weight", [Embedding], Ones(Embedding)));
            tensors.Add((prefix + "attn_q.weight", [Embedding, Embedding], Gaussian(random, Embedding * Embedding, 0.125f)));
            tensors.Add((prefix + "attn_k.weight", [Embedding, Embedding], Gaussian(random, Embedding * Embedding, 0.125f)));
            tensors.Add((prefix + "attn_v.weight", [Embedding, Embedding], Gaussian(random, Embedding * Embedding, 0.125f)));
            tensors.Add((prefix + "attn_output.weight", [Embedding, Embedding], Gaussian(random, Embedding * Embedding, 0.125f)));
            tensors.Add((prefix + "ffn_norm.weight", [Embedding], Ones(Embedding)));
            tensors.Add((prefix + "ffn_gate.weight", [Embedding, FeedForward], Gaussian(random, Embedding * FeedForward, 0.125f)));
            tensors.Add((prefix + "ffn_up.weight", [Embedding, FeedForward], Gaussian(random, Embedding * FeedForward, 0.125f)));
            tensors.Add((prefix + "ffn_down.weight", [FeedForward, Embedding], Gaussian(random, FeedForward * Embedding, 0.09f)));
        }

        tensors.Add(("output_norm.weight", [Embedding], Ones(Embedding)));
        tensors.Add(("output.weight", [Embedding, VocabularySize], Gaussian(random, Embedding * VocabularySize, 0.3f)));

        var tokens = new List<string> { "<unk>", "<s>", "</s>" };
        tokens.AddRange(Enumerable.Range(0, 256).Select(b => $"<0x{b:X2}>"));
        tokens.Add("\u2581");
        var types = new List<int> { 2, 3, 3 };
        types.AddRange(Enumerable.Repeat(6, 256));
        types.Add(1);

        var metadata = new List<(string Key, Action<BinaryWriter> Value)>
        {
            ("general.architecture", w => String(w, "llama")),
            ("general.name", w => String(w, "sluice-tiny-random")),
            ("general.alignment", w => UInt32(w, 32)),
            ("llama.context_length", w => UInt32(w, TrainedContext)),
            ("llama.embedding_length", w => UInt32(w, Embedding)),
            ("llama.block_count", w => UInt32(w, Blocks)),
            ("llama.feed_forward_length", w => UInt32(w, FeedForward)),
            ("llama.attention.head_count", w => UInt32(w, Heads)),
            ("llama.attention.head_count_kv", w => UInt32(w, Heads)),
            ("llama.rope.dimension_count", w => UInt32(w, Embedding / Heads)),
            ("llama.attention.layer_norm_rms_epsilon", w => Float32(w, 1e-5f)),
            ("llama.vocab_size", w => UInt32(w, VocabularySize)),
            ("tokenizer.ggml.model", w => String(w, "llama")),
            ("tokenizer.ggml.tokens", w => Array(w, 8, tokens, (x, t) => WriteString(x, t))),
            ("tokenizer.ggml.scores", w => Array(w, 6, tokens, (x, _) => x.Write(0f))),
            ("tokenizer.ggml.token_type", w => Array(w, 5, types, (x, t) => x.Write(t))),
            ("tokenizer.ggml.unknown_token_id", w => UInt32(w, 0)),
            ("tokenizer.ggml.bos_token_id", w => UInt32(w, Bos)),
            ("tokenizer.ggml.eos_token_id", w => UInt32(w, Eos)),
            ("tokenizer.ggml.add_bos_token", w => Bool(w, true)),
            ("tokenizer.ggml.add_eos_token", w => Bool(w, false)),
            ("tokenizer.ggml.add_space_prefix", w => Bool(w, false)),
            ("tokenizer.chat_template", w => String(w, ChatTemplate)),
        };

        using var writer = new BinaryWriter(stream, Encoding.UTF8, leaveOpen: true);
        writer.Write("GGUF"u8);
        writer.Write(3u);
        writer.Write((ulong)tensors.Count);
        writer.Write((ulong)metadata.Count);
        foreach (var (key, value) in metadata)
        {
            WriteString(writer, key);
            value(writer);
        }

        ulong offset = 0;
        foreach (var (name, shape, data) in tensors)
        {
            WriteString(writer, name);
            writer.Write((uint)shape.Length);
            foreach (var dimension in shape)
            {
                writer.Write((ulong)dimension);
            }

            writer.Write(0u); // GGML_TYPE_F32
            writer.Write(offset);
            offset += Align((ulong)data.Length * 4);
        }

        Pad(writer);
        foreach (var (_, _, data) in tensors)
        {
            foreach (var value in data)
            {
                writer.Write(value);
            }

            Pad(writer);
        }
    }

    private static ulong Align(ulong size) => (size + 31) / 32 * 32;

    private static void Pad(BinaryWriter writer)
    {
        writer.Flush();
        var position = writer.BaseStream.Position;
        while (position % 32 != 0)
        {
            writer.Write((byte)0);
            position++;
        }
    }

    private static float[] Ones(int count) => Enumerable.Repeat(1f, count).ToArray();

    private static float[] Gaussian(Random random, int count, float scale)
    {
        var values = new float[count];
        for (var i = 0; i < count; i++)
        {
            // Box-Muller: a normal distribution from two uniform draws.
            var u1 = 1.0 - random.NextDouble();
            var u2 = random.NextDouble();
            values[i] = (float)(Math.Sqrt(-2.0 * Math.Log(u1)) * Math.Cos(2 * Math.PI * u2)) * scale;
        }

        return values;
    }

    private static void WriteString(BinaryWriter writer, string value)
    {
        var bytes = Encoding.UTF8.GetBytes(value);
        writer.Write((ulong)bytes.Length);
        writer.Write(bytes);
    }

    private static void String(BinaryWriter writer, string value)
    {
        writer.Write(8u);
        WriteString(writer, value);
    }

    private static void UInt32(BinaryWriter writer, uint value)
    {
        writer.Write(4u);
        writer.Write(value);
    }

    private static void Float32(BinaryWriter writer, float value)
    {
        writer.Write(6u);
        writer.Write(value);
    }

    private static void Bool(BinaryWriter writer, bool value)
    {
        writer.Write(7u);
        writer.Write(value ? (byte)1 : (byte)0);
    }

    private static void Array<T>(BinaryWriter writer, uint elementType, IReadOnlyCollection<T> items, Action<BinaryWriter, T> write)
    {
        writer.Write(9u);
        writer.Write(elementType);
        writer.Write((ulong)items.Count);
        foreach (var item in items)
        {
            write(writer, item);
        }
    }
}
