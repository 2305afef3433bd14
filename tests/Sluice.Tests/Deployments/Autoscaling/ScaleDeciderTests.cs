using Sluice.Deployments.Autoscaling;

namespace Sluice.Tests.Deployments.Autoscaling;

/// <summary>The KPA decision function, table-driven: stable, panic, scale-up rate, scale-down delay, idle to zero, bounds, observed concurrency.</summary>
public sealed class ScaleDeciderTests
{
    private static readonly DateTimeOffset T0 = new(2026, 11, 30, 12, 0, 0, TimeSpan.Zero);
    private static readonly ScaleTuning Tuning = new(TimeSpan.FromSeconds(60), PanicThreshold: 2.0, MaxScaleUpRate: 10);

    private static ScalePolicy Policy(int min = 1, int max = 10, int target = 2, int idle = 300, int delay = 300) =>
        new(min, max, target, TimeSpan.FromSeconds(idle), TimeSpan.FromSeconds(delay));

    public static TheoryData<string, ScalePolicy, ScaleInputs, int, string, bool> Decisions => new()
    {
        // name, policy, inputs (now, stable, panic, current, ready, active now, idle since), desired, reason, panic
        { "stable: ceil(3 / 2) = 2", Policy(), new(T0, 3, 3, 1, 1, 3, T0), 2, ScaleReasons.Load, false },
        { "stable: exactly 4 / 2 is 2, not 3", Policy(), new(T0, 4, 4, 2, 2, 4, T0), 2, ScaleReasons.Steady, false },
        { "stable: rounding noise ignored", Policy(), new(T0, 4.0000000001, 4, 2, 2, 4, T0), 2, ScaleReasons.Steady, false },
        { "panic: 10 / 2 = 5 >= 2 x 1 ready: 5 at once", Policy(), new(T0, 2, 10, 1, 1, 10, T0), 5, ScaleReasons.Panic, true },
        { "panic threshold is >=: 4 / 2 = 2 x 1", Policy(), new(T0, 1, 4, 1, 1, 4, T0), 2, ScaleReasons.Panic, true },
        { "below the panic threshold: 7 / 2 < 2 x 2 ready", Policy(), new(T0, 1, 7, 2, 2, 7, T0), 2, ScaleReasons.Steady, false },
        { "scale-up rate: at most 10 x ready per step", Policy(max: 100), new(T0, 200, 200, 1, 1, 200, T0), 10, ScaleReasons.Panic, true },
        { "scale-up rate counts at least one ready", Policy(max: 100), new(T0, 200, 200, 1, 0, 200, T0), 10, ScaleReasons.Panic, true },
        { "max clamps", Policy(max: 4), new(T0, 40, 40, 3, 3, 40, T0), 4, ScaleReasons.Panic, true },
        { "min clamps (no load, min 3)", Policy(min: 3, delay: 0), new(T0, 0, 0, 3, 3, 0, T0), 3, ScaleReasons.Steady, false },
        { "max lowered below current: bounds", Policy(max: 2, delay: 0), new(T0, 4, 4, 5, 5, 4, T0), 2, ScaleReasons.Bounds, false },
        { "min raised above current: bounds", Policy(min: 4, delay: 0), new(T0, 2, 2, 1, 1, 2, T0), 4, ScaleReasons.Bounds, false },
        { "serverless: idle timeout passed, nothing in flight: zero", Policy(min: 0, idle: 300), new(T0, 0, 0, 1, 1, 0, T0.AddSeconds(-300)), 0, ScaleReasons.Idle, false },
        { "serverless: 1 s short of the idle timeout: stays at one", Policy(min: 0, idle: 300), new(T0, 0, 0, 1, 1, 0, T0.AddSeconds(-299)), 1, ScaleReasons.Steady, false },
        { "serverless: idle timeout passed but a request in flight: stays", Policy(min: 0, idle: 300), new(T0, 0.5, 1, 1, 1, 1, T0.AddHours(-1)), 1, ScaleReasons.Steady, false },
        { "serverless at zero with nothing asking: stays at zero", Policy(min: 0), new(T0, 0, 0, 0, 0, 0, T0), 0, ScaleReasons.Steady, false },
        { "serverless at zero with a request waiting: wakes", Policy(min: 0), new(T0, 0.1, 0.5, 0, 0, 1, T0), 1, ScaleReasons.Wake, false },
        { "min 1 never goes to zero however idle", Policy(min: 1, idle: 1, delay: 0), new(T0, 0, 0, 1, 1, 0, T0.AddHours(-1)), 1, ScaleReasons.Steady, false },
    };

    [Theory]
    [MemberData(nameof(Decisions))]
    public void One_decision(string name, ScalePolicy policy, ScaleInputs inputs, int desired, string reason, bool panic)
    {
        var decision = ScaleDecider.Decide(policy, Tuning, inputs, ScaleMemory.Start(inputs.Now, inputs.Current));
        Assert.True(desired == decision.Desired, $"{name}: desired {decision.Desired}, expected {desired}");
        Assert.True(reason == decision.Reason, $"{name}: reason {decision.Reason}, expected {reason}");
        Assert.True(panic == decision.Panic, $"{name}: panic {decision.Panic}, expected {panic}");
    }

    [Theory]
    [InlineData(3, 1, 0, 0, 4)] // gateway in flight + waiting
    [InlineData(1, 0, 0, 5, 5)] // the engine's queue exceeds what the gateway sees
    [InlineData(0, 2, 3, 1, 5)] // the agent's in-flight exceeds it too
    [InlineData(4, 2, 3, 1, 6)] // the gateway sees the most
    public void Observed_concurrency_counts_agent_and_engine_figures_where_they_exceed_the_gateways(int gateway, int waiting, int agent, int queue, int observed) =>
        Assert.Equal(observed, ScaleDecider.Observed(gateway, waiting, agent, queue));

    [Fact]
    public void Scale_down_waits_until_the_lower_count_held_for_the_whole_delay_and_then_takes_the_highest_within_it()
    {
        var policy = Policy(target: 1, delay: 300);
        var memory = ScaleMemory.Start(T0, 4);
        int current = 4;
        ScaleDecision Step(int seconds, double load)
        {
            var d = ScaleDecider.Decide(policy, Tuning, new(T0.AddSeconds(seconds), load, load, current, current, (int)load, T0), memory);
            memory = d.Memory;
            current = d.Desired;
            return d;
        }

        Assert.Equal(4, Step(0, 4).Desired);
        Assert.Equal(4, Step(100, 2).Desired);  // wants 2; 4 was recommended within the delay
        Assert.Equal(4, Step(200, 1).Desired);
        Assert.Equal(4, Step(299, 1).Desired);  // 4 at 0 s is still within 300 s
        var down = Step(300, 1);                // 4 left the delay; the highest since is 2 (at 100 s)
        Assert.Equal((2, ScaleReasons.ScaleDown), (down.Desired, down.Reason));
        Assert.Equal(2, Step(399, 1).Desired);
        Assert.Equal(1, Step(400, 1).Desired);
        Assert.Equal(3, Step(402, 3).Desired);  // up again at once
    }

    [Fact]
    public void In_panic_nothing_scales_down_until_a_stable_window_passes_without_a_burst()
    {
        var policy = Policy(target: 1, delay: 0);
        var memory = ScaleMemory.Start(T0, 1);
        int current = 1;
        ScaleDecision Step(int seconds, double stable, double panic)
        {
            var d = ScaleDecider.Decide(policy, Tuning, new(T0.AddSeconds(seconds), stable, panic, current, current, (int)panic, T0), memory);
            memory = d.Memory;
            current = d.Desired;
            return d;
        }

        var burst = Step(0, 1, 6); // 6 / 1 >= 2 x 1 ready: panic, 6 at once
        Assert.Equal((6, true), (burst.Desired, burst.Panic));
        var calm = Step(30, 1, 1); // no burst for 30 s: still in panic, holds 6 although the stable window asks for 1
        Assert.Equal((6, true), (calm.Desired, calm.Panic));
        Assert.True(Step(59, 1, 1).Panic);
        var over = Step(60, 1, 1);  // a stable window without a burst: panic ends, and (delay 0) the stable figure wins
        Assert.Equal((1, false, ScaleReasons.ScaleDown), (over.Desired, over.Panic, over.Reason));
    }

    [Fact]
    public void A_decider_that_just_started_watching_does_not_scale_down_before_a_full_delay()
    {
        var policy = Policy(target: 1, delay: 300);
        var decision = ScaleDecider.Decide(policy, Tuning, new(T0, 0, 0, 5, 5, 0, T0), ScaleMemory.Start(T0, 5));
        Assert.Equal(5, decision.Desired);
        decision = ScaleDecider.Decide(policy, Tuning, new(T0.AddSeconds(300), 0, 0, 5, 5, 0, T0), decision.Memory);
        Assert.Equal(1, decision.Desired);
    }
}
