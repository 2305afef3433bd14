using Microsoft.ML.OnnxRuntime;

namespace Sluice.Engine.Embeddings;

/// <summary>
/// Embeds requests with the loaded model: each request's inputs are tokenized, sorted by length and run in batches of
/// up to <see cref="BatchSize"/> (little padding), and answered in the order given. At most <c>parallel</c> batches run
/// at once, from any requests; the rest wait their turn in arrival order (counted as waiting in <c>/metrics</c>).
/// </summary>
internal sealed class EmbeddingsService(MiniLmModel model, int parallel, EmbeddingsMetrics metrics) : IDisposable
{
    public const int BatchSize = 32;

    private readonly SemaphoreSlim _slots = new(parallel, parallel);

    public async Task<(float[][] Vectors, int Tokens)> EmbedAsync(IReadOnlyList<string> inputs, CancellationToken cancellationToken)
    {
        var sequences = new int[inputs.Count][];
        var tokens = 0;
        for (var i = 0; i < inputs.Count; i++)
        {
            sequences[i] = model.Tokenizer.Encode(inputs[i]);
            tokens += sequences[i].Length;
        }

        var order = Enumerable.Range(0, inputs.Count).OrderBy(i => sequences[i].Length).ToArray();
        var vectors = new float[inputs.Count][];
        for (var start = 0; start < order.Length; start += BatchSize)
        {
            var chunk = order.AsMemory(start, Math.Min(BatchSize, order.Length - start));
            float[][] embedded;
            metrics.Waiting(+1);
            try
            {
                await _slots.WaitAsync(cancellationToken);
            }
            finally
            {
                metrics.Waiting(-1);
            }

            try
            {
                var batch = new int[chunk.Length][];
                for (var i = 0; i < chunk.Length; i++)
                {
                    batch[i] = sequences[chunk.Span[i]];
                }

                embedded = model.Embed(batch, cancellationToken);
            }
            catch (OnnxRuntimeException) when (cancellationToken.IsCancellationRequested)
            {
                throw new OperationCanceledException(cancellationToken); // the run was terminated because the client left
            }
            finally
            {
                _slots.Release();
            }

            for (var i = 0; i < chunk.Length; i++)
            {
                vectors[chunk.Span[i]] = embedded[i];
            }
        }

        return (vectors, tokens);
    }

    public void Dispose()
    {
        model.Dispose();
        _slots.Dispose();
    }
}
