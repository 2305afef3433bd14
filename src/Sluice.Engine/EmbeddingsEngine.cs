namespace Sluice.Engine;

/// <summary>Serves <c>/v1/embeddings</c> with all-MiniLM-L6-v2 (384 dimensions), <c>/health</c> and <c>/metrics</c>.</summary>
public static class EmbeddingsEngine
{
    public static Task<int> RunAsync(EmbeddingsEngineSettings settings, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(settings);
        Console.Error.WriteLine("error: the embeddings engine is not built yet");
        return Task.FromResult(1);
    }
}
