using System.Globalization;
using System.Text;

namespace Sluice.Engine.Llama;

/// <summary>The engine's counters, exposed on <c>/metrics</c> under llama.cpp server's names so the same scrapers work.</summary>
internal sealed class LlamaMetrics
{
    private long _promptTokens;
    private long _promptMicroseconds;
    private long _predictedTokens;
    private long _predictedMicroseconds;
    private long _decodes;
    private long _processing;
    private long _deferred;

    public long RequestsDeferred => Interlocked.Read(ref _deferred);

    public long RequestsProcessing => Interlocked.Read(ref _processing);

    public void Processing(int delta) => Interlocked.Add(ref _processing, delta);

    /// <summary>Adds to the waiting count and returns the new count.</summary>
    public long Deferred(int delta) => Interlocked.Add(ref _deferred, delta);

    public void Decoded() => Interlocked.Increment(ref _decodes);

    public void PromptDone(int tokens, TimeSpan elapsed)
    {
        Interlocked.Add(ref _promptTokens, tokens);
        Interlocked.Add(ref _promptMicroseconds, (long)elapsed.TotalMicroseconds);
    }

    public void PredictDone(int tokens, TimeSpan elapsed)
    {
        Interlocked.Add(ref _predictedTokens, tokens);
        Interlocked.Add(ref _predictedMicroseconds, (long)elapsed.TotalMicroseconds);
    }

    public string Render()
    {
        var text = new StringBuilder();
        Metric(text, "prompt_tokens_total", "counter", "Number of prompt tokens processed.", Interlocked.Read(ref _promptTokens));
        Metric(text, "prompt_seconds_total", "counter", "Prompt process time.", Interlocked.Read(ref _promptMicroseconds) / 1e6);
        Metric(text, "tokens_predicted_total", "counter", "Number of generation tokens processed.", Interlocked.Read(ref _predictedTokens));
        Metric(text, "tokens_predicted_seconds_total", "counter", "Predict process time.", Interlocked.Read(ref _predictedMicroseconds) / 1e6);
        Metric(text, "n_decode_total", "counter", "Total number of llama_decode() calls.", Interlocked.Read(ref _decodes));
        Metric(text, "requests_processing", "gauge", "Number of requests processing.", RequestsProcessing);
        Metric(text, "requests_deferred", "gauge", "Number of requests deferred.", RequestsDeferred);
        return text.ToString();
    }

    private static void Metric(StringBuilder text, string name, string type, string help, double value) =>
        text.Append(CultureInfo.InvariantCulture, $"# HELP llamacpp:{name} {help}\n# TYPE llamacpp:{name} {type}\nllamacpp:{name} {value.ToString(CultureInfo.InvariantCulture)}\n");
}
