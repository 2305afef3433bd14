using Microsoft.EntityFrameworkCore;
using Sluice.Storage;

namespace Sluice.Deployments.Billing;

/// <summary>What a deployment's GPU time has cost so far: the wallet's charges, the time they paid for, and time it could not cover.</summary>
public sealed record DeploymentCostSummary(long CostMicros, long UncollectedMicros, long Seconds)
{
    public static readonly DeploymentCostSummary None = new(0, 0, 0);
}

/// <summary>
/// Sums of an organization's GPU-time charges (<see cref="DeploymentCharge"/>) by deployment, for the console. The
/// caller has checked who may read the organization; this only reads.
/// </summary>
public sealed class DeploymentCosts(SluiceDbContext db)
{
    /// <summary>Every deployment of the organization that has been charged, with its totals.</summary>
    public async Task<Dictionary<Guid, DeploymentCostSummary>> ForOrganizationAsync(Guid organizationId, CancellationToken cancellationToken)
    {
        var rows = await db.Set<DeploymentCharge>().AsNoTracking()
            .Where(c => c.OrganizationId == organizationId)
            .GroupBy(c => c.DeploymentId)
            .Select(g => new { g.Key, Cost = g.Sum(c => c.CostMicros), Uncollected = g.Sum(c => c.UncollectedMicros), Seconds = g.Sum(c => c.Seconds) })
            .ToListAsync(cancellationToken);
        return rows.ToDictionary(r => r.Key, r => new DeploymentCostSummary(r.Cost, r.Uncollected, r.Seconds));
    }

    /// <summary>One deployment's totals (zero when nothing was charged yet).</summary>
    public async Task<DeploymentCostSummary> ForDeploymentAsync(Guid organizationId, Guid deploymentId, CancellationToken cancellationToken)
    {
        var rows = await db.Set<DeploymentCharge>().AsNoTracking()
            .Where(c => c.OrganizationId == organizationId && c.DeploymentId == deploymentId)
            .Select(c => new { c.CostMicros, c.UncollectedMicros, c.Seconds })
            .ToListAsync(cancellationToken);
        return rows.Count == 0 ? DeploymentCostSummary.None
            : new DeploymentCostSummary(rows.Sum(r => r.CostMicros), rows.Sum(r => r.UncollectedMicros), rows.Sum(r => r.Seconds));
    }
}
