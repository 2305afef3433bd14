using System.Collections.Concurrent;

namespace Sluice.Gateway;

/// <summary>
/// Requests-per-minute and tokens-per-minute token buckets per key and per organization, in memory on each replica.
/// Tokens are taken up front as an estimate (prompt bytes / 4 + max_tokens) and corrected when usage is known.
/// </summary>
public sealed class GatewayRateLimiter(TimeProvider time)
{
    private readonly ConcurrentDictionary<(string Scope, Guid Id, bool Tokens), Bucket> _buckets = new();
    private readonly Lock _gate = new();

    public sealed record Decision(bool Allowed, TimeSpan RetryAfter, string? Which, Snapshot? Requests, Snapshot? Tokens);

    public sealed record Snapshot(long Limit, long Remaining, TimeSpan Reset);

    public Decision TryAcquire(Guid keyId, int? keyRpm, int? keyTpm, Guid orgId, int? orgRpm, int? orgTpm, long estimatedTokens)
    {
        var now = time.GetTimestamp();
        var buckets = new List<(Bucket Bucket, long Amount, string Which)>();
        void Add(string scope, Guid id, bool tokens, int? limit, long amount, string which)
        {
            if (limit is { } perMinute)
            {
                var bucket = _buckets.GetOrAdd((scope, id, tokens), _ => new Bucket(perMinute, now));
                bucket.Resize(perMinute);
                buckets.Add((bucket, amount, which));
            }
        }

        Add("key", keyId, false, keyRpm, 1, "requests per minute for this key");
        Add("org", orgId, false, orgRpm, 1, "requests per minute for this organization");
        Add("key", keyId, true, keyTpm, estimatedTokens, "tokens per minute for this key");
        Add("org", orgId, true, orgTpm, estimatedTokens, "tokens per minute for this organization");

        lock (_gate)
        {
            foreach (var (bucket, amount, which) in buckets)
            {
                var wait = bucket.WaitFor(Math.Min(amount, bucket.Capacity), now, time);
                if (wait > TimeSpan.Zero)
                {
                    return new Decision(false, wait, which, null, null);
                }
            }

            foreach (var (bucket, amount, _) in buckets)
            {
                bucket.Take(amount, now, time);
            }
        }

        return new Decision(true, TimeSpan.Zero, null,
            Tightest(buckets.Where(b => b.Which.StartsWith("requests", StringComparison.Ordinal)).Select(b => b.Bucket), now),
            Tightest(buckets.Where(b => b.Which.StartsWith("tokens", StringComparison.Ordinal)).Select(b => b.Bucket), now));
    }

    /// <summary>Corrects the token buckets once the real usage is known (the difference may be negative).</summary>
    public void Settle(Guid keyId, Guid orgId, long difference)
    {
        if (difference == 0)
        {
            return;
        }

        var now = time.GetTimestamp();
        lock (_gate)
        {
            foreach (var key in new[] { ("key", keyId, true), ("org", orgId, true) })
            {
                if (_buckets.TryGetValue(key, out var bucket))
                {
                    bucket.Take(difference, now, time);
                }
            }
        }
    }

    private Snapshot? Tightest(IEnumerable<Bucket> buckets, long now) =>
        buckets.Select(b => b.Snapshot(now, time)).OrderBy(s => s.Remaining).FirstOrDefault();

    private sealed class Bucket(int perMinute, long now)
    {
        private double _level = perMinute;
        private long _updated = now;

        public long Capacity { get; private set; } = perMinute;

        public void Resize(int perMinute)
        {
            if (perMinute != Capacity)
            {
                Capacity = perMinute;
                _level = Math.Min(_level, perMinute);
            }
        }

        public TimeSpan WaitFor(long amount, long now, TimeProvider time)
        {
            Refill(now, time);
            return _level >= amount ? TimeSpan.Zero : TimeSpan.FromMinutes((amount - _level) / Capacity);
        }

        public void Take(long amount, long now, TimeProvider time)
        {
            Refill(now, time);
            _level = Math.Min(Capacity, _level - amount);
        }

        public Snapshot Snapshot(long now, TimeProvider time)
        {
            Refill(now, time);
            var remaining = (long)Math.Max(0, Math.Floor(_level));
            return new Snapshot(Capacity, remaining, TimeSpan.FromMinutes((Capacity - Math.Max(0, _level)) / Capacity));
        }

        private void Refill(long now, TimeProvider time)
        {
            var elapsed = time.GetElapsedTime(_updated, now);
            _updated = now;
            _level = Math.Min(Capacity, _level + (elapsed.TotalMinutes * Capacity));
        }
    }
}
