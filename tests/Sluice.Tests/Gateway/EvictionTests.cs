using Sluice.Batches;
using Sluice.Gateway;

namespace Sluice.Tests.Gateway;

/// <summary>Per-key and per-organization state that used to only grow is evicted when idle, and the limits it enforces still hold.</summary>
public sealed class EvictionTests
{
    [Fact]
    public void Rate_limit_buckets_stay_bounded_under_many_distinct_keys_and_a_drained_key_stays_limited()
    {
        var time = new SteppedTime();
        var limiter = new GatewayRateLimiter(time);
        var org = Guid.NewGuid();
        var peak = 0;
        for (var wave = 0; wave < 20; wave++)
        {
            // One key uses up its two requests a minute...
            var drained = Guid.NewGuid();
            for (var i = 0; i < 2; i++)
            {
                Assert.True(limiter.TryAcquire(drained, 2, null, org, null, null, 10).Allowed);
                limiter.Settle(drained, org, 0);
            }

            // ...while a thousand others come and go, forcing sweeps...
            for (var i = 0; i < 1000; i++)
            {
                var key = Guid.NewGuid();
                Assert.True(limiter.TryAcquire(key, 60, 10_000, Guid.NewGuid(), 600, null, 50).Allowed);
                limiter.Settle(key, Guid.Empty, 0);
            }

            // ...and it is still refused: a bucket in use is never evicted.
            Assert.False(limiter.TryAcquire(drained, 2, null, org, null, null, 10).Allowed);
            peak = Math.Max(peak, limiter.BucketCount);
            time.Advance(TimeSpan.FromSeconds(61)); // every bucket so far refills and becomes idle
        }

        // 20,000 keys and organizations seen, 60,000 buckets made; without eviction all of them would still be held.
        Assert.InRange(peak, 3000, (2 * GatewayRateLimiter.MinimumSweepSize) + (4 * 1000));
    }

    [Fact]
    public async Task Per_organization_batch_semaphores_are_dropped_with_the_last_batch_and_shared_while_in_use()
    {
        var gates = new OrganizationGates(perOrganization: 2);
        var org = Guid.NewGuid();
        var first = gates.Enter(org);
        var second = gates.Enter(org); // a second batch of the same organization shares the limit
        Assert.Same(first, second);
        await first.WaitAsync();
        await second.WaitAsync();
        Assert.False(first.Wait(0)); // the organization's limit of 2 holds across both batches

        for (var i = 0; i < 10_000; i++)
        {
            var other = Guid.NewGuid();
            var gate = gates.Enter(other);
            await gate.WaitAsync();
            gate.Release();
            gates.Leave(other);
        }

        Assert.Equal(1, gates.Count); // only the organization with batches still running
        gates.Leave(org);
        Assert.Same(first, gates.Enter(org)); // still in use by the other batch: never replaced
        gates.Leave(org);
        gates.Leave(org);
        Assert.Equal(0, gates.Count);
    }

    /// <summary>A clock whose timestamps move only when the test says (the limiter measures refills with timestamps).</summary>
    private sealed class SteppedTime : TimeProvider
    {
        private long _ticks;

        public override long TimestampFrequency => TimeSpan.TicksPerSecond;

        public override long GetTimestamp() => Interlocked.Read(ref _ticks);

        public void Advance(TimeSpan by) => Interlocked.Add(ref _ticks, by.Ticks);
    }
}
