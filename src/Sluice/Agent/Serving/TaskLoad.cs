using System.Collections.Concurrent;

namespace Sluice.Agent.Serving;

/// <summary>
/// Per-task load the serving endpoint observes and the supervisor reports: requests in flight through the endpoint and
/// the engine's own queue depth (scraped from its /metrics). Shared by the two; figures only, never content.
/// </summary>
public sealed class TaskLoad
{
    private readonly ConcurrentDictionary<string, Counter> _tasks = new(StringComparer.Ordinal);

    public int InFlight(string taskId) => _tasks.TryGetValue(taskId, out var counter) ? Volatile.Read(ref counter.InFlight) : 0;

    public int? QueueDepth(string taskId) => _tasks.TryGetValue(taskId, out var counter) ? counter.QueueDepth : null;

    /// <summary>Counts one request in flight until the returned handle is disposed.</summary>
    public IDisposable Begin(string taskId)
    {
        var counter = _tasks.GetOrAdd(taskId, _ => new Counter());
        Interlocked.Increment(ref counter.InFlight);
        return new Release(counter);
    }

    public void SetQueueDepth(string taskId, int? depth) => _tasks.GetOrAdd(taskId, _ => new Counter()).QueueDepth = depth;

    /// <summary>Drops what is known about a task that is gone.</summary>
    public void Forget(string taskId) => _tasks.TryRemove(taskId, out _);

    private sealed class Counter
    {
        public int InFlight;
        private int _queueDepth = -1; // -1: the engine reports none

        public int? QueueDepth
        {
            get => Volatile.Read(ref _queueDepth) is var depth and >= 0 ? depth : null;
            set => Volatile.Write(ref _queueDepth, value is >= 0 ? value.Value : -1);
        }
    }

    private sealed class Release(Counter counter) : IDisposable
    {
        private int _disposed;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _disposed, 1) == 0)
            {
                Interlocked.Decrement(ref counter.InFlight);
            }
        }
    }
}
