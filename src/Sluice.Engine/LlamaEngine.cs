namespace Sluice.Engine;

/// <summary>Serves a GGUF model: OpenAI chat and completions (streaming too), <c>/health</c> and <c>/metrics</c>.</summary>
public static class LlamaEngine
{
    public static Task<int> RunAsync(LlamaEngineSettings settings, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(settings);
        Console.Error.WriteLine("error: the llama engine is not built yet");
        return Task.FromResult(1);
    }
}
