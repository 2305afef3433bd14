using System.Collections.Concurrent;

namespace Sluice.Gateway;

/// <summary>
/// Caps the requests batch work sends to one provider at once (<see cref="Provider.MaxConcurrentRequests"/>), per
/// replica. Batch lines beyond the cap wait here, so an upstream with limited capacity is kept full without being
/// overrun; real-time traffic is never queued.
/// </summary>
public sealed class ProviderConcurrency
{
    private readonly ConcurrentDictionary<(Guid Provider, int Limit), SemaphoreSlim> _slots = new();
    private readonly ConcurrentDictionary<Guid, int> _peak = new();
    private readonly ConcurrentDictionary<Guid, int> _current = new();

    public async ValueTask<IDisposable?> AcquireAsync(ProviderInfo provider, CancellationToken cancellationToken)
    {
        if (provider.MaxConcurrentRequests is not { } limit)
        {
            return null;
        }

        var slots = _slots.GetOrAdd((provider.Id, limit), static key => new SemaphoreSlim(key.Limit, key.Limit));
        await slots.WaitAsync(cancellationToken);
        var now = _current.AddOrUpdate(provider.Id, 1, static (_, n) => n + 1);
        _peak.AddOrUpdate(provider.Id, now, (_, peak) => Math.Max(peak, now));
        return new Slot(this, provider.Id, slots);
    }

    /// <summary>The most batch requests this replica had in flight to a provider at once.</summary>
    public int Peak(Guid providerId) => _peak.TryGetValue(providerId, out var peak) ? peak : 0;

    private sealed class Slot(ProviderConcurrency owner, Guid provider, SemaphoreSlim slots) : IDisposable
    {
        private int _released;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _released, 1) == 0)
            {
                owner._current.AddOrUpdate(provider, 0, static (_, n) => n - 1);
                slots.Release();
            }
        }
    }
}
