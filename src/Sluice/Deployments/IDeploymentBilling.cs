namespace Sluice.Deployments;

/// <summary>
/// The wallet's say on GPU time: asked before a deployment is created, updated or scaled up to more replicas. The
/// billing part (GPU-hour prices, per-second metering through the wallet's holds) implements it; until it is
/// registered, everything is covered.
/// </summary>
public interface IDeploymentBilling
{
    /// <summary>
    /// Whether the organization's wallet can cover <paramref name="replicas"/> replicas of <paramref name="deployment"/>
    /// (its GPU type and count) now; when not, the refusal in a fixed sentence ("the wallet covers 1 replica of this deployment").
    /// </summary>
    ValueTask<(bool Covered, string? Refusal)> CanRunAsync(Deployment deployment, int replicas, CancellationToken cancellationToken);
}

internal sealed class UnmeteredDeploymentBilling : IDeploymentBilling
{
    public ValueTask<(bool Covered, string? Refusal)> CanRunAsync(Deployment deployment, int replicas, CancellationToken cancellationToken) =>
        ValueTask.FromResult<(bool, string?)>((true, null));
}
