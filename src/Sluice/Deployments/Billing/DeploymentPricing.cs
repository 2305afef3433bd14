using Sluice.Billing;

namespace Sluice.Deployments.Billing;

/// <summary>What a call to a deployment costs per token: its own prices, as the gateway's route pricing.</summary>
public static class DeploymentPricing
{
    /// <summary>
    /// The deployment's per-token prices as a route's <see cref="RoutePricing"/> (cached input at the input price, no
    /// request fee); null when it sets neither price (then calls are not charged per token: a dedicated deployment pays
    /// for its GPU time instead). A deployment that sets only one of the two prices charges 0 for the other.
    /// </summary>
    public static RoutePricing? ForTokens(Deployment deployment)
    {
        ArgumentNullException.ThrowIfNull(deployment);
        if (deployment.InputPerMillionMicros is null && deployment.OutputPerMillionMicros is null)
        {
            return null;
        }

        var input = Math.Max(0, deployment.InputPerMillionMicros ?? 0);
        var output = Math.Max(0, deployment.OutputPerMillionMicros ?? 0);
        return new RoutePricing(input, output, input, 0);
    }
}
