namespace Sluice.Deployments.Autoscaling;

/// <summary>
/// One deployment's recent observed concurrency on the deciding replica: a sample per tick, kept for the stable window,
/// averaged over the stable and panic windows. Plus what its decisions remember. In memory only; a replica that takes
/// over the decisions starts empty (and cautious: see <see cref="ScaleMemory.Start"/> and <see cref="WatchingSince"/>).
/// </summary>
public sealed class LoadWindow(DateTimeOffset watchingSince, int current)
{
    private readonly Queue<(DateTimeOffset At, int Value)> _samples = new();

    /// <summary>When this replica started watching the deployment (it knows nothing about requests before).</summary>
    public DateTimeOffset WatchingSince { get; } = watchingSince;

    /// <summary>The latest request arrival any server reported.</summary>
    public DateTimeOffset? LastRequestAt { get; private set; }

    public ScaleMemory Memory { get; set; } = ScaleMemory.Start(watchingSince, current);

    /// <summary>The desired count as this replica last read or wrote it; a different stored value was set from outside.</summary>
    public int KnownDesired { get; set; } = current;

    /// <summary>When the last <c>scale_up_refused</c> event was written (at most one per interval).</summary>
    public DateTimeOffset? LastRefusalEventAt { get; set; }

    public int Count => _samples.Count;

    /// <summary>Adds a sample and drops those older than <paramref name="keep"/>.</summary>
    public void Add(DateTimeOffset at, int value, TimeSpan keep)
    {
        _samples.Enqueue((at, value));
        if (value > 0)
        {
            LastActiveAt = at;
        }

        while (_samples.Count > 0 && at - _samples.Peek().At >= keep)
        {
            _samples.Dequeue();
        }
    }

    public void SawRequest(DateTimeOffset? at)
    {
        if (at is { } value && (LastRequestAt is null || value > LastRequestAt))
        {
            LastRequestAt = value;
        }
    }

    /// <summary>The last sample with requests in flight or waiting.</summary>
    public DateTimeOffset? LastActiveAt { get; private set; }

    /// <summary>
    /// Since when the deployment is idle as far as this replica knows: the latest of the last request's arrival, the
    /// last sample with anything in flight or waiting (a long request keeps it busy), and when watching began.
    /// </summary>
    public DateTimeOffset IdleSince
    {
        get
        {
            var since = WatchingSince;
            if (LastRequestAt is { } last && last > since)
            {
                since = last;
            }

            if (LastActiveAt is { } active && active > since)
            {
                since = active;
            }

            return since;
        }
    }

    /// <summary>The mean of the samples taken within <paramref name="window"/> before <paramref name="now"/> (0 with none).</summary>
    public double Average(DateTimeOffset now, TimeSpan window)
    {
        long sum = 0;
        var count = 0;
        foreach (var (at, value) in _samples)
        {
            if (now - at < window)
            {
                sum += value;
                count++;
            }
        }

        return count == 0 ? 0 : (double)sum / count;
    }
}
