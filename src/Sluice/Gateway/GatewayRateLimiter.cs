namespace Sluice.Gateway;

/// <summary>
/// Requests-per-minute and tokens-per-minute token buckets per key and per organization, in memory on each replica.
/// Tokens are taken up front as an estimate (an upper bound of the prompt's tokens, <see cref="Pipeline.TokenCounter.PromptBound"/>,
/// plus max_tokens) and corrected when usage is known.
/// Buckets are evicted once idle: a bucket that has refilled to capacity and has no request between its take and its
/// correction is indistinguishable from a new one, so dropping it changes no decision; the sweep runs when the table
/// has doubled since the last one, so it costs O(1) per request amortized and the table stays within twice the buckets
/// in use (plus <see cref="MinimumSweepSize"/>).
/// </summary>
public sealed class GatewayRateLimiter(TimeProvider time)
{
    /// <summary>Below this many buckets the table is never swept.</summary>
    public const int MinimumSweepSize = 1024;

    private readonly Dictionary<(bool Org, Guid Id, bool Tokens), Bucket> _buckets = [];
    private readonly Lock _gate = new();
    private int _sweepAt = MinimumSweepSize;

    /// <summary>How many buckets are held now (for tests and diagnostics).</summary>
    public int BucketCount
    {
        get
        {
            lock (_gate)
            {
                return _buckets.Count;
            }
        }
    }

    public sealed record Decision(bool Allowed, TimeSpan RetryAfter, string? Which, Snapshot? Requests, Snapshot? Tokens);

    public sealed record Snapshot(long Limit, long Remaining, TimeSpan Reset);

    public Decision TryAcquire(Guid keyId, int? keyRpm, int? keyTpm, Guid orgId, int? orgRpm, int? orgTpm, long estimatedTokens)
    {
        // On the hot path for every request: the (at most four) applicable buckets live in an inline array, not a list.
        // Buckets are looked up under the lock that the sweep takes, so none is evicted between lookup and use.
        var now = time.GetTimestamp();
        var buckets = default(Applicable);
        var count = 0;
        void Add(ref Applicable into, bool org, Guid id, bool tokens, int? limit, long amount, string which)
        {
            if (limit is { } perMinute)
            {
                ref var bucket = ref System.Runtime.InteropServices.CollectionsMarshal.GetValueRefOrAddDefault(_buckets, (org, id, tokens), out _);
                bucket ??= new Bucket(perMinute, now);
                bucket.Resize(perMinute);
                into[count++] = new Entry(bucket, amount, tokens, which);
            }
        }

        lock (_gate)
        {
            if (_buckets.Count >= _sweepAt)
            {
                Sweep(now);
            }

            Add(ref buckets, false, keyId, false, keyRpm, 1, "requests per minute for this key");
            Add(ref buckets, true, orgId, false, orgRpm, 1, "requests per minute for this organization");
            Add(ref buckets, false, keyId, true, keyTpm, estimatedTokens, "tokens per minute for this key");
            Add(ref buckets, true, orgId, true, orgTpm, estimatedTokens, "tokens per minute for this organization");
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
                if (buckets[i].Tokens)
                {
                    buckets[i].Bucket.Pending++; // until Settle corrects it
                }
            }

            return new Decision(true, TimeSpan.Zero, null, Tightest(buckets, count, tokens: false, now), Tightest(buckets, count, tokens: true, now));
        }
    }

    /// <summary>Drops the buckets that are full and awaiting no correction. Called under the lock.</summary>
    private void Sweep(long now)
    {
        foreach (var (key, bucket) in _buckets)
        {
            if (bucket.Pending == 0 && bucket.IsFull(now, time))
            {
                _buckets.Remove(key); // allowed while enumerating a Dictionary since .NET Core 3.0
            }
        }

        _sweepAt = Math.Max(MinimumSweepSize, _buckets.Count * 2);
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

    /// <summary>
    /// Corrects the token buckets once the real usage is known (the difference may be negative). Called exactly once
    /// for every allowed <see cref="TryAcquire"/>: until then its token buckets are never evicted.
    /// </summary>
    public void Settle(Guid keyId, Guid orgId, long difference)
    {
        var now = time.GetTimestamp();
        lock (_gate)
        {
            if (_buckets.TryGetValue((false, keyId, true), out var keyBucket))
            {
                keyBucket.Pending = Math.Max(0, keyBucket.Pending - 1);
                keyBucket.Take(difference, now, time);
            }

            if (_buckets.TryGetValue((true, orgId, true), out var orgBucket))
            {
                orgBucket.Pending = Math.Max(0, orgBucket.Pending - 1);
                orgBucket.Take(difference, now, time);
            }
        }
    }

    private sealed class Bucket(int perMinute, long now)
    {
        private double _level = perMinute;
        private long _updated = now;

        public long Capacity { get; private set; } = perMinute;

        /// <summary>Requests that took from this bucket and whose correction (Settle) is still to come.</summary>
        public int Pending { get; set; }

        public bool IsFull(long now, TimeProvider time)
        {
            Refill(now, time);
            return _level >= Capacity;
        }

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
