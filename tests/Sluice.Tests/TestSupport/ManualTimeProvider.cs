namespace Sluice.Tests.TestSupport;

/// <summary>
/// A clock tests move by hand (Microsoft's testing package is not available here). With <see cref="FollowTimers"/> on,
/// timestamps (elapsed-time measurements) and timers follow it too: a timer fires when <see cref="Advance"/> moves the
/// clock past its due time, never on its own, so code on <see cref="TimeProvider"/> (PeriodicTimer, Task.Delay with a
/// provider) runs on this clock. Off (the default, for whole test servers whose background loops expect time to pass),
/// only the wall time is manual.
/// </summary>
public sealed class ManualTimeProvider(DateTimeOffset start) : TimeProvider
{
    private readonly Lock _gate = new();
    private readonly List<ManualTimer> _timers = [];
    private DateTimeOffset _now = start;
    private long _ticks;

    public ManualTimeProvider()
        : this(new DateTimeOffset(2026, 11, 22, 12, 0, 0, TimeSpan.Zero))
    {
    }

    /// <summary>Timers and timestamps follow the manual clock (see the class summary).</summary>
    public bool FollowTimers { get; init; }

    public override long TimestampFrequency => FollowTimers ? TimeSpan.TicksPerSecond : base.TimestampFrequency;

    public override DateTimeOffset GetUtcNow()
    {
        lock (_gate)
        {
            return _now;
        }
    }

    public override long GetTimestamp()
    {
        if (!FollowTimers)
        {
            return base.GetTimestamp();
        }

        lock (_gate)
        {
            return _ticks;
        }
    }

    public override ITimer CreateTimer(TimerCallback callback, object? state, TimeSpan dueTime, TimeSpan period)
    {
        if (!FollowTimers)
        {
            return base.CreateTimer(callback, state, dueTime, period);
        }

        var timer = new ManualTimer(this, callback, state);
        timer.Change(dueTime, period);
        return timer;
    }

    /// <summary>Moves the clock forward, firing each timer that falls due on the way, in order, at its due time.</summary>
    public void Advance(TimeSpan by)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(by, TimeSpan.Zero);
        long target;
        lock (_gate)
        {
            target = _ticks + by.Ticks;
        }

        while (true)
        {
            ManualTimer? due;
            lock (_gate)
            {
                due = _timers.Where(t => t.DueAt <= target).MinBy(t => t.DueAt);
                if (due is null)
                {
                    _now += TimeSpan.FromTicks(target - _ticks);
                    _ticks = target;
                    return;
                }

                _now += TimeSpan.FromTicks(Math.Max(0, due.DueAt - _ticks));
                _ticks = Math.Max(_ticks, due.DueAt);
                due.Fired(target);
            }

            due.Invoke();
        }
    }

    /// <summary>Timers waiting to fire: lets a test wait until the code under test has armed its timer before advancing.</summary>
    public int PendingTimers
    {
        get
        {
            lock (_gate)
            {
                return _timers.Count;
            }
        }
    }

    private sealed class ManualTimer(ManualTimeProvider clock, TimerCallback callback, object? state) : ITimer
    {
        private long _period;

        public long DueAt { get; private set; }

        public bool Change(TimeSpan dueTime, TimeSpan period)
        {
            lock (clock._gate)
            {
                clock._timers.Remove(this);
                _period = period == Timeout.InfiniteTimeSpan ? 0 : period.Ticks;
                if (dueTime != Timeout.InfiniteTimeSpan)
                {
                    DueAt = clock._ticks + dueTime.Ticks;
                    clock._timers.Add(this);
                }
            }

            return true;
        }

        /// <summary>Called under the clock's lock: re-arms a periodic timer past <paramref name="target"/> (missed periods coalesce, as a real timer's would), removes a one-shot one.</summary>
        public void Fired(long target)
        {
            clock._timers.Remove(this);
            if (_period > 0)
            {
                DueAt += _period;
                if (DueAt <= target)
                {
                    DueAt += ((target - DueAt) / _period + 1) * _period;
                }

                clock._timers.Add(this);
            }
        }

        public void Invoke() => callback(state);

        public void Dispose()
        {
            lock (clock._gate)
            {
                clock._timers.Remove(this);
            }
        }

        public ValueTask DisposeAsync()
        {
            Dispose();
            return ValueTask.CompletedTask;
        }
    }
}
