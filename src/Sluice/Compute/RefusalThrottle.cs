using System.Collections.Concurrent;
using Microsoft.Extensions.Options;

namespace Sluice.Compute;

/// <summary>
/// Decides whether a repeated refusal deserves another audit entry: at most one per key (a machine, or a source network
/// for unknown credentials) per <see cref="ComputeOptions.RefusalAuditInterval"/> on this replica, so a broken or hostile
/// agent cannot flood the log. Every refusal is still answered and logged at Information.
/// </summary>
public sealed class RefusalThrottle(IOptions<ComputeOptions> options, TimeProvider time)
{
    private const int MaxKeys = 100_000;
    private readonly ConcurrentDictionary<string, DateTimeOffset> _last = new(StringComparer.Ordinal);

    public bool ShouldAudit(string key)
    {
        var now = time.GetUtcNow();
        var interval = options.Value.RefusalAuditInterval;
        if (_last.Count > MaxKeys)
        {
            foreach (var (stale, at) in _last)
            {
                if (now - at >= interval)
                {
                    _last.TryRemove(stale, out _);
                }
            }
        }

        while (true)
        {
            if (!_last.TryGetValue(key, out var previous))
            {
                if (_last.TryAdd(key, now))
                {
                    return true;
                }

                continue;
            }

            if (now - previous < interval)
            {
                return false;
            }

            if (_last.TryUpdate(key, now, previous))
            {
                return true;
            }
        }
    }
}
