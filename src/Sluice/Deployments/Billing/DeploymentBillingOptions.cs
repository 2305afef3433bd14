using System.ComponentModel.DataAnnotations;

namespace Sluice.Deployments.Billing;

/// <summary>The <c>Deployments:Billing</c> settings: GPU-time billing (docs/billing.md, "GPU time").</summary>
public sealed record DeploymentBillingOptions
{
    public const string Section = "Deployments:Billing";

    /// <summary>How often the meter charges replicas' GPU time and holds the next interval ahead.</summary>
    [Range(typeof(TimeSpan), "00:00:00.050", "01:00:00", ErrorMessage = "must be between {1} and {2}")]
    public TimeSpan MeterInterval { get; init; } = TimeSpan.FromSeconds(60);

    /// <summary>
    /// How much GPU time the meter holds ahead of each replica, in meter intervals (at least 1; 2 leaves room for a late
    /// round). A deployment whose wallet cannot give this hold is suspended.
    /// </summary>
    [Range(1, 100, ErrorMessage = "must be between {1} and {2}")]
    public int HoldAheadIntervals { get; init; } = 2;

    /// <summary>
    /// How long the wallet must cover a deployment's replicas (their GPU time) for it to be created, updated or scaled up
    /// (<see cref="IDeploymentBilling"/>). Longer than the hold ahead, so scale-ups stop before the deployment is suspended.
    /// </summary>
    [Range(typeof(TimeSpan), "00:00:01", "30.00:00:00", ErrorMessage = "must be between {1} and {2}")]
    public TimeSpan CoverageHorizon { get; init; } = TimeSpan.FromMinutes(10);

    /// <summary>
    /// Whether dedicated work may be placed on a GPU type with no price per GPU-hour (its time is then free). Off: a
    /// deployment that names an unpriced GPU type is refused (400 naming <c>gpuType</c>) until an operator prices it.
    /// </summary>
    public bool AllowUnpricedGpus { get; init; }

    /// <summary>
    /// Whether serverless deployments (min replicas 0) also pay for their replicas' time while they run, on top of their
    /// per-token prices. Off: serverless endpoints pay per token only, and the platform carries their replicas' time.
    /// </summary>
    public bool BillServerlessReplicaTime { get; init; }
}
