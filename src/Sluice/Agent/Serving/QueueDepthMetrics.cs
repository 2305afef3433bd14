using System.Globalization;

namespace Sluice.Agent.Serving;

/// <summary>Reads an engine's own queue from its Prometheus text exposition (<c>/metrics</c>).</summary>
public static class QueueDepthMetrics
{
    /// <summary>vLLM's requests waiting for a slot, and llama.cpp server's requests deferred (no free slot).</summary>
    public static readonly IReadOnlyList<string> Names = ["vllm:num_requests_waiting", "llamacpp:requests_deferred"];

    /// <summary>The sum of the queue metrics over all their label sets (vLLM labels by model), rounded; null when there is none.</summary>
    public static int? Parse(string text)
    {
        double? total = null;
        foreach (var rawLine in text.AsSpan().EnumerateLines())
        {
            var line = rawLine.Trim();
            if (line.IsEmpty || line[0] == '#')
            {
                continue;
            }

            foreach (var name in Names)
            {
                if (!line.StartsWith(name, StringComparison.Ordinal) || line.Length == name.Length || line[name.Length] is not ('{' or ' ' or '\t'))
                {
                    continue;
                }

                var rest = line[name.Length..];
                if (rest[0] == '{')
                {
                    var close = rest.LastIndexOf('}');
                    if (close < 0)
                    {
                        break;
                    }

                    rest = rest[(close + 1)..];
                }

                rest = rest.TrimStart();
                var end = rest.IndexOfAny(' ', '\t');
                var value = end < 0 ? rest : rest[..end]; // a timestamp may follow the value
                if (double.TryParse(value, NumberStyles.Float, CultureInfo.InvariantCulture, out var parsed) && double.IsFinite(parsed) && parsed >= 0)
                {
                    total = (total ?? 0) + parsed;
                }

                break;
            }
        }

        return total is { } sum ? (int)Math.Min(int.MaxValue, Math.Round(sum)) : null;
    }
}
