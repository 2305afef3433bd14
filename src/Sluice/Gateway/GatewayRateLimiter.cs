using System.Collections.Concurrent;

namespace Sluice.Gateway;

/// <summary>
/// Requests-per-minute and tokens-per-minute token buckets per key and per organization, in memory on each replica.
/// Tokens are taken up front as an estimate (prompt bytes / 4 + max_tokens) and corrected when usage is known.
/// </summary>
public sealed class GatewayRateLimiter(TimeProvider time)
{
    private readonly ConcurrentDictionary<(bool Org, Guid Id, bool Tokens), Bucket> _buckets = new();
    private readonly Lock _gate = new();

    public sealed record Decision(bool Allowed, TimeSpan RetryAfter, string? Which, Snapshot? Requests, Snapshot? Tokens);

    public sealed record Snapshot(long Limit, long Remaining, TimeSpan Reset);

    public Decision TryAcquire(Guid keyId, int? keyRpm, int? keyTpm, Guid orgId, int? orgRpm, int? orgTpm, long estimatedTokens)
    {
        // On the hot path for every request: the (at most four) applicable buckets live in an inline array, not a list.
        var now = time.GetTimestamp();
        var buckets = default(Applicable);
        var count = 0;
        void Add(ref Applicable into, bool org, Guid id, bool tokens, int? limit, long amount, string which)
        {
            if (limit is { } perMinute)
            {
                var bucket = _buckets.GetOrAdd((org, id, tokens), static (_, state) => new Bucket(state.PerMinute, state.Now), (PerMinute: perMinute, Now: now));
                bucket.Resize(perMinute);
                into[count++] = new Entry(bucket, amount, tokens, which);
            }
        }

        Add(ref buckets, false, keyId, false, keyRpm, 1, "requests per minute for this key");
        Add(ref buckets, true, orgId, false, orgRpm, 1, "requests per minute for this organization");
        Add(ref buckets, false, keyId, true, keyTpm, estimatedTokens, "tokens per minute for this key");
        Add(ref buckets, true, orgId, true, orgTpm, estimatedTokens, "tokens per minute for this organization");

        lock (_gate)
        {
            for (var i = 0; i < count; i++)
            {
                var wait = buckets[i].Bucket.WaitFor(Math.Min(buckets[i].Amount, buckets[i].Bucket.Capacity), now, time);
                if (wait > TimeSpan.Zero)
                {
                    return new Decision(false, wait, buckets[i].Which, null, null);
                }
            }

            for (var i = 0; i < count; i++)
            {
                buckets[i].Bucket.Take(buckets[i].Amount, now, time);
            }
        }

        return new Decision(true, TimeSpan.Zero, null, Tightest(buckets, count, tokens: false, now), Tightest(buckets, count, tokens: true, now));
    }

    private Snapshot? Tightest(Applicable buckets, int count, bool tokens, long now)
    {
        Snapshot? tightest = null;
        for (var i = 0; i < count; i++)
        {
            if (buckets[i].Tokens == tokens && buckets[i].Bucket.Snapshot(now, time) is var snapshot && (tightest is null || snapshot.Remaining < tightest.Remaining))
            {
                tightest = snapshot;
            }
        }

        return tightest;
    }

    private readonly record struct Entry(Bucket Bucket, long Amount, bool Tokens, string Which);

    [System.Runtime.CompilerServices.InlineArray(4)]
    private struct Applicable
    {
        private Entry _first;
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
            if (_buckets.TryGetValue((false, keyId, true), out var keyBucket))
            {
                keyBucket.Take(difference, now, time);
            }

            if (_buckets.TryGetValue((true, orgId, true), out var orgBucket))
            {
                orgBucket.Take(difference, now, time);
            }
        }
    }

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
