namespace Sluice.Deployments.Autoscaling;

/// <summary>A deployment's scaling bounds and targets (from <see cref="Deployment"/>).</summary>
public sealed record ScalePolicy(int MinReplicas, int MaxReplicas, int TargetConcurrency, TimeSpan IdleTimeout, TimeSpan ScaleDownDelay)
{
    public static ScalePolicy For(Deployment deployment) => new(
        deployment.MinReplicas, deployment.MaxReplicas, deployment.TargetConcurrency,
        TimeSpan.FromSeconds(deployment.IdleTimeoutSeconds), TimeSpan.FromSeconds(deployment.ScaleDownDelaySeconds));
}

/// <summary>The KPA's tuning (<see cref="AutoscalerOptions"/>).</summary>
public sealed record ScaleTuning(TimeSpan StableWindow, double PanicThreshold, double MaxScaleUpRate)
{
    public static ScaleTuning For(AutoscalerOptions options) => new(options.StableWindow, options.PanicThreshold, options.MaxScaleUpRate);
}

/// <summary>What one decision sees.</summary>
/// <param name="Now">The decision's time.</param>
/// <param name="StableAverage">Observed concurrency averaged over the stable window.</param>
/// <param name="PanicAverage">Observed concurrency averaged over the panic window.</param>
/// <param name="Current">Desired replicas now (as stored).</param>
/// <param name="Ready">Replicas ready now.</param>
/// <param name="ActiveNow">Requests in flight or waiting now, anywhere (gateway, agents, engines).</param>
/// <param name="IdleSince">
/// Since when the deployment has had no request as far as the decider knows: the last request's arrival, or when the
/// decider started watching, whichever is later.
/// </param>
public readonly record struct ScaleInputs(DateTimeOffset Now, double StableAverage, double PanicAverage, int Current, int Ready, int ActiveNow, DateTimeOffset IdleSince);

/// <summary>What a deployment's decisions remember between ticks: when it last had reason to panic, and recent recommendations (for the scale-down delay).</summary>
public sealed record ScaleMemory(DateTimeOffset? LastPanicAt, IReadOnlyList<(DateTimeOffset At, int Replicas)> Recommendations)
{
    /// <summary>
    /// A decider starting to watch a deployment counts its current desired count as a recommendation made now, so a
    /// replica that just took over never scales down before a full scale-down delay of its own observations.
    /// </summary>
    public static ScaleMemory Start(DateTimeOffset now, int current) => new(null, [(now, current)]);

    /// <summary>
    /// The count was set from outside (an update, a cold-start wake): it counts as a recommendation made now, so it too
    /// is lowered only after the scale-down delay.
    /// </summary>
    public ScaleMemory SetOutside(DateTimeOffset now, int current) => this with { Recommendations = [.. Recommendations, (now, current)] };
}

/// <summary>Why a decision came out as it did (<see cref="ScaleDecision.Reason"/>).</summary>
public static class ScaleReasons
{
    /// <summary>The stable window's average asks for this many.</summary>
    public const string Load = "load";

    /// <summary>A burst: the panic window's average asks for more (and nothing scales down while panicking).</summary>
    public const string Panic = "panic";

    /// <summary>Lower load held for the whole scale-down delay.</summary>
    public const string ScaleDown = "scale_down";

    /// <summary>Serverless, no request for the idle timeout: to zero.</summary>
    public const string Idle = "idle";

    /// <summary>At zero with requests now: wake.</summary>
    public const string Wake = "wake";

    /// <summary>Moved into min..max (the bounds changed, or load asks for more than max or less than min).</summary>
    public const string Bounds = "bounds";

    /// <summary>No change.</summary>
    public const string Steady = "steady";
}

/// <param name="Desired">Replicas to run.</param>
/// <param name="Reason"><see cref="ScaleReasons"/>.</param>
/// <param name="Panic">In panic mode (a burst within the last stable window).</param>
/// <param name="StableWant">ceil(stable average / target).</param>
/// <param name="PanicWant">ceil(panic average / target).</param>
/// <param name="Memory">What the next decision starts from.</param>
public sealed record ScaleDecision(int Desired, string Reason, bool Panic, int StableWant, int PanicWant, ScaleMemory Memory);

/// <summary>
/// Knative's pod autoscaler (KPA), as a pure function. Desired replicas = ceil(observed concurrency / target), from the
/// stable window's average; when the panic window's average reaches <see cref="ScaleTuning.PanicThreshold"/> × target ×
/// ready replicas, panic: scale to the panic window's figure at once and never scale down, until a stable window passes
/// with no burst. Scale-up is immediate (at most <see cref="ScaleTuning.MaxScaleUpRate"/> × ready per decision);
/// scale-down takes the highest recommendation of the last scale-down delay, so a lower count wins only after it
/// stayed lower that long. The result is clamped into [min, max]; a serverless deployment (min 0) keeps at least one
/// replica while it has been used within its idle timeout, and goes to zero only when nothing is in flight or waiting
/// and its last request is older than the timeout.
/// </summary>
public static class ScaleDecider
{
    public static ScaleDecision Decide(ScalePolicy policy, ScaleTuning tuning, ScaleInputs inputs, ScaleMemory memory)
    {
        var now = inputs.Now;
        var target = Math.Max(1, policy.TargetConcurrency);
        var max = Math.Max(policy.MaxReplicas, Math.Max(policy.MinReplicas, 1));
        var readyForRatio = Math.Max(1, inputs.Ready);
        var stableWant = Want(inputs.StableAverage, target);
        var panicWant = Want(inputs.PanicAverage, target);

        // Panic: the burst's own figure against what serves now. Stays on for a stable window after the last burst.
        var burst = inputs.PanicAverage > 0 && inputs.PanicAverage / target >= tuning.PanicThreshold * readyForRatio;
        var lastPanicAt = burst ? now : memory.LastPanicAt is { } at && now - at < tuning.StableWindow ? at : (DateTimeOffset?)null;
        var panic = lastPanicAt is not null;

        var want = panic ? Math.Max(Math.Max(panicWant, stableWant), inputs.Current) : stableWant;
        var upBound = (int)Math.Min(int.MaxValue, Math.Ceiling(tuning.MaxScaleUpRate * readyForRatio));
        if (want > inputs.Current)
        {
            want = Math.Max(inputs.Current, Math.Min(want, upBound));
        }

        // Scale-down delay: the highest recommendation within it (the newest included) wins.
        var recommendations = new List<(DateTimeOffset At, int Replicas)>(memory.Recommendations.Count + 1);
        foreach (var r in memory.Recommendations)
        {
            if (now - r.At < policy.ScaleDownDelay)
            {
                recommendations.Add(r);
            }
        }

        recommendations.Add((now, want));
        var delayed = recommendations.Max(r => r.Replicas);
        var next = new ScaleMemory(lastPanicAt, recommendations);

        string reason;
        int desired;
        var idle = policy.MinReplicas == 0 && inputs.ActiveNow == 0 && now - inputs.IdleSince >= policy.IdleTimeout;
        if (idle)
        {
            (desired, reason) = (0, ScaleReasons.Idle);
        }
        else if (policy.MinReplicas == 0 && inputs.Current == 0 && inputs.ActiveNow == 0)
        {
            // At zero with nothing asking: stays there (a request that arrives wakes it, here or in routing).
            (desired, reason) = (0, ScaleReasons.Steady);
        }
        else
        {
            // Serverless but used within the idle timeout: at least one replica.
            var min = Math.Max(policy.MinReplicas, 1);
            desired = Math.Clamp(delayed, min, max);
            reason = desired == inputs.Current ? ScaleReasons.Steady
                : inputs.Current == 0 ? ScaleReasons.Wake
                : inputs.Current > max || inputs.Current < min ? ScaleReasons.Bounds
                : desired > inputs.Current ? (panic ? ScaleReasons.Panic : ScaleReasons.Load)
                : ScaleReasons.ScaleDown;
        }

        return new ScaleDecision(desired, reason, panic, stableWant, panicWant, next);
    }

    /// <summary>
    /// Observed concurrency: requests waiting for a replica plus those in flight, counting the agents' in-flight and the
    /// engines' own queues where they exceed what the gateways see (requests that reach the engine some other way, or a
    /// gateway whose report is missing).
    /// </summary>
    public static int Observed(int gatewayInFlight, int waiting, int agentInFlight, int engineQueueDepth) =>
        waiting + Math.Max(gatewayInFlight, Math.Max(agentInFlight, engineQueueDepth));

    /// <summary>ceil(average / target), with rounding noise below a millionth ignored (an average of exactly 2.0 is 2, not 3).</summary>
    private static int Want(double average, int target) =>
        average <= 0 ? 0 : (int)Math.Min(int.MaxValue, Math.Ceiling(Math.Round(average / target, 6)));
}
