using System.Collections.Concurrent;
using System.Globalization;
using System.Text;

namespace Sluice.Engine.Embeddings;

/// <summary>
/// The engine's counters for <c>GET /metrics</c> (Prometheus text): requests by status, inputs and tokens embedded,
/// requests in flight and batches waiting for a slot (the queue depth an autoscaler reads), and whether the model is
/// loaded. Numbers only: no label ever carries request content.
/// </summary>
internal sealed class EmbeddingsMetrics
{
    private readonly ConcurrentDictionary<int, long> _requests = new();
    private long _inputs;
    private long _tokens;
    private long _inFlight;
    private long _waiting;
    private long _durationTicks;
    private long _completed;

    public bool Loaded { get; set; }

    public long InFlight => Interlocked.Read(ref _inFlight);

    public void Started() => Interlocked.Increment(ref _inFlight);

    public void Finished(int status, TimeSpan duration)
    {
        Interlocked.Decrement(ref _inFlight);
        _requests.AddOrUpdate(status, 1, static (_, count) => count + 1);
        Interlocked.Add(ref _durationTicks, duration.Ticks);
        Interlocked.Increment(ref _completed);
    }

    public void Embedded(int inputs, int tokens)
    {
        Interlocked.Add(ref _inputs, inputs);
        Interlocked.Add(ref _tokens, tokens);
    }

    public void Waiting(int change) => Interlocked.Add(ref _waiting, change);

    public string Render()
    {
        var text = new StringBuilder();
        void Metric(string name, string type, string help, IEnumerable<(string Labels, double Value)> samples)
        {
            text.Append("# HELP ").Append(name).Append(' ').Append(help).Append('\n');
            text.Append("# TYPE ").Append(name).Append(' ').Append(type).Append('\n');
            foreach (var (labels, value) in samples)
            {
                text.Append(name).Append(labels).Append(' ').Append(value.ToString("R", CultureInfo.InvariantCulture)).Append('\n');
            }
        }

        Metric("sluice_embeddings_requests_total", "counter", "Embedding requests answered, by HTTP status.",
            _requests.OrderBy(r => r.Key).Select(r => ($"{{status=\"{r.Key.ToString(CultureInfo.InvariantCulture)}\"}}", (double)r.Value)));
        Metric("sluice_embeddings_inputs_total", "counter", "Inputs embedded.", [("", Interlocked.Read(ref _inputs))]);
        Metric("sluice_embeddings_prompt_tokens_total", "counter", "Tokens embedded, as reported in usage.prompt_tokens.", [("", Interlocked.Read(ref _tokens))]);
        Metric("sluice_embeddings_requests_in_flight", "gauge", "Embedding requests being served now.", [("", Interlocked.Read(ref _inFlight))]);
        Metric("sluice_embeddings_requests_waiting", "gauge", "Batches waiting for a free slot (the engine's queue depth).", [("", Interlocked.Read(ref _waiting))]);
        text.Append("# HELP sluice_embeddings_request_duration_seconds Time spent answering embedding requests.\n");
        text.Append("# TYPE sluice_embeddings_request_duration_seconds summary\n");
        text.Append("sluice_embeddings_request_duration_seconds_sum ")
            .Append(TimeSpan.FromTicks(Interlocked.Read(ref _durationTicks)).TotalSeconds.ToString("R", CultureInfo.InvariantCulture)).Append('\n');
        text.Append("sluice_embeddings_request_duration_seconds_count ")
            .Append(Interlocked.Read(ref _completed).ToString(CultureInfo.InvariantCulture)).Append('\n');
        Metric("sluice_embeddings_model_loaded", "gauge", "1 once the model is loaded and serving, 0 while loading.", [("", Loaded ? 1 : 0)]);
        return text.ToString();
    }
}
