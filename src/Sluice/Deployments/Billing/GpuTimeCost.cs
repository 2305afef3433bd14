namespace Sluice.Deployments.Billing;

/// <summary>
/// What a replica's reserved GPU time costs, exactly. Time is counted in whole seconds from the replica's placement
/// (<see cref="DeploymentReplica.CreatedAt"/>); each second costs the price in force at its start, per GPU. The cost of
/// the first <c>s</c> seconds is <c>C(s) = ceil(gpus × Σ price(second) / 3600)</c> micro-units: one rounding of the exact
/// cumulative sum. A charge for seconds [a, b) is <c>C(b) − C(a)</c>, so charges over any number of meter intervals sum
/// to C(total) exactly: rounding never drifts, and a replica is never charged more than one micro-unit above the exact
/// price of its time in all.
/// </summary>
public sealed class GpuTimeCost
{
    private readonly DateTimeOffset _start;
    private readonly int _gpus;
    private readonly (long FromSecond, long PerGpuHourMicros)[] _segments;

    /// <param name="start">The replica's placement time (second 0).</param>
    /// <param name="gpus">GPUs the replica holds.</param>
    /// <param name="prices">Every price version of the replica's GPU type (any order); none: the type is unpriced (free).</param>
    public GpuTimeCost(DateTimeOffset start, int gpus, IEnumerable<GpuPrice> prices)
    {
        _start = start;
        _gpus = gpus;
        var versions = prices.OrderBy(p => p.EffectiveFrom).ThenBy(p => p.CreatedAt).ToList();
        var segments = new List<(long, long)>();
        foreach (var version in versions)
        {
            // The first second whose start is at or after the version's effective time.
            var from = Math.Max(0, CeilSeconds(version.EffectiveFrom - start));
            while (segments.Count > 0 && segments[^1].Item1 >= from)
            {
                segments.RemoveAt(segments.Count - 1); // superseded before any of its seconds
            }

            segments.Add((from, version.PerGpuHourMicros));
        }

        _segments = [.. segments];
    }

    /// <summary>Whole seconds from placement to a time the replica still runs (a partial second is not yet billed).</summary>
    public long SecondsRunning(DateTimeOffset now) => Math.Max(0, (now - _start).Ticks / TimeSpan.TicksPerSecond);

    /// <summary>Seconds billed for a replica that stopped at <paramref name="stoppedAt"/> (a started second is billed).</summary>
    public long SecondsStopped(DateTimeOffset stoppedAt) => Math.Max(0, CeilSeconds(stoppedAt - _start));

    /// <summary>The time <paramref name="seconds"/> after placement.</summary>
    public DateTimeOffset At(long seconds) => _start.AddTicks(seconds * TimeSpan.TicksPerSecond);

    /// <summary>Seconds since placement of a time this meter wrote (<c>At(s)</c>), exact to the database's microseconds.</summary>
    public long SecondsAt(DateTimeOffset at) => (long)Math.Round((at - _start).Ticks / (double)TimeSpan.TicksPerSecond, MidpointRounding.AwayFromZero);

    /// <summary>C(s): the cumulative cost of the first <paramref name="seconds"/> seconds, in micro-units.</summary>
    public long Cumulative(long seconds)
    {
        var units = Units(0, seconds);
        return (long)((units + 3599) / 3600);
    }

    /// <summary>The price per GPU-hour in force for second <paramref name="second"/> (0 when unpriced then).</summary>
    public long PriceAt(long second)
    {
        long price = 0;
        foreach (var (from, perHour) in _segments)
        {
            if (from > second)
            {
                break;
            }

            price = perHour;
        }

        return price;
    }

    /// <summary>The seconds in [a, b) split where the price changes: (from, to, price per GPU-hour).</summary>
    public IEnumerable<(long From, long To, long PerGpuHourMicros)> Split(long a, long b)
    {
        var cursor = a;
        while (cursor < b)
        {
            var next = b;
            foreach (var (from, _) in _segments)
            {
                if (from > cursor)
                {
                    next = Math.Min(next, from);
                    break;
                }
            }

            yield return (cursor, next, PriceAt(cursor));
            cursor = next;
        }
    }

    /// <summary>The largest s in [a, b] with C(s) − C(a) ≤ <paramref name="budget"/> (what a wallet of that much pays for).</summary>
    public long AffordableThrough(long a, long b, long budget)
    {
        var baseCost = Cumulative(a);
        long lo = a, hi = b;
        while (lo < hi)
        {
            var mid = lo + ((hi - lo + 1) / 2);
            if (Cumulative(mid) - baseCost <= budget)
            {
                lo = mid;
            }
            else
            {
                hi = mid - 1;
            }
        }

        return lo;
    }

    /// <summary>gpus × Σ price over seconds [a, b), in micro-units per 3600.</summary>
    private Int128 Units(long a, long b)
    {
        Int128 sum = 0;
        foreach (var (from, to, price) in Split(a, b))
        {
            sum += (Int128)price * (to - from);
        }

        return sum * _gpus;
    }

    private static long CeilSeconds(TimeSpan span)
    {
        var ticks = span.Ticks;
        return ticks <= 0 ? -((-ticks) / TimeSpan.TicksPerSecond) : ((ticks + TimeSpan.TicksPerSecond - 1) / TimeSpan.TicksPerSecond);
    }
}
