namespace Sluice.Tests.TestSupport;

/// <summary>The manual clock's timers and timestamps follow <see cref="ManualTimeProvider.Advance"/> and nothing else.</summary>
public sealed class ManualTimeProviderTests
{
    [Fact]
    public async Task Timers_delays_and_timestamps_follow_the_clock_only()
    {
        var clock = new ManualTimeProvider { FollowTimers = true };
        var start = clock.GetTimestamp();
        var delay = Task.Delay(TimeSpan.FromSeconds(10), clock);
        using var periodic = new PeriodicTimer(TimeSpan.FromSeconds(2), clock);
        var tick = periodic.WaitForNextTickAsync().AsTask();

        await Task.Yield();
        Assert.False(delay.IsCompleted);
        Assert.False(tick.IsCompleted);

        clock.Advance(TimeSpan.FromSeconds(2));
        Assert.True(await tick.WaitAsync(TimeSpan.FromSeconds(5)));
        Assert.False(delay.IsCompleted);
        Assert.Equal(TimeSpan.FromSeconds(2), clock.GetElapsedTime(start));

        clock.Advance(TimeSpan.FromSeconds(8));
        await delay.WaitAsync(TimeSpan.FromSeconds(5));
        Assert.Equal(TimeSpan.FromSeconds(10), clock.GetElapsedTime(start));
        Assert.True(await periodic.WaitForNextTickAsync().AsTask().WaitAsync(TimeSpan.FromSeconds(5))); // missed ticks coalesce into one
    }
}
