using System.Text.Json;
using Microsoft.EntityFrameworkCore;
using Sluice.Storage;

namespace Sluice.Deployments.Billing;

/// <summary>The low-balance alert, as seen from deployments: a <c>billing_warning</c> event on each that runs on the organization's money.</summary>
internal static class DeploymentBillingWarnings
{
    /// <summary>
    /// Adds a <c>billing_warning</c> event to every deployment of the organization that is not deleted and wants
    /// replicas (the ones whose GPU time or tokens the falling balance pays for). Called when the low-balance webhook
    /// was delivered, once per crossing of the threshold.
    /// </summary>
    public static async Task RecordAsync(SluiceDbContext db, Guid organizationId, long balance, long threshold, DateTimeOffset now, CancellationToken ct)
    {
        var deployments = await db.Deployments.AsNoTracking()
            .Where(d => d.OrganizationId == organizationId && d.DeletedAt == null && d.DesiredReplicas > 0).Select(d => d.Id).ToListAsync(ct);
        if (deployments.Count == 0)
        {
            return;
        }

        var detail = JsonSerializer.Serialize(new BillingWarningDetail(balance, threshold), DeploymentBillingJson.Default.BillingWarningDetail);
        foreach (var id in deployments)
        {
            db.DeploymentEvents.Add(new DeploymentEvent { Id = Guid.CreateVersion7(now), DeploymentId = id, At = now, Kind = DeploymentEventKinds.BillingWarning, Detail = detail });
        }

        await db.SaveChangesAsync(ct);
    }
}
