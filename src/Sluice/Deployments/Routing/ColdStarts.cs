using System.Collections.Concurrent;
using System.Diagnostics;
using Microsoft.EntityFrameworkCore;
using Sluice.Storage;

namespace Sluice.Deployments.Routing;

/// <summary>
/// Wakes a deployment at zero when a request arrives for it: one conditional
/// <c>UPDATE deployments SET desired_replicas = 1, status = pending … WHERE id = … AND desired_replicas = 0</c> and, for
/// the one request (on any server) whose update wins, a <c>cold_start</c> event in the same transaction. The scheduler
/// then places the replica. Requests waiting together on one server share one wake.
/// </summary>
public sealed class ColdStarts(
    IServiceScopeFactory scopes, IDeploymentBilling billing, TimeProvider time, ILogger<ColdStarts> logger, DeploymentSignals? signals = null)
{
    /// <summary>A server tries again only after this long (the directory shows the wake within a refresh).</summary>
    private static readonly TimeSpan Again = TimeSpan.FromSeconds(2);

    private readonly ConcurrentDictionary<Guid, (long At, Task Wake)> _wakes = new();

    /// <summary>Wakes <paramref name="deployment"/> unless this server did moments ago; throws when the wallet cannot cover a replica.</summary>
    public Task WakeAsync(Deployment deployment, int waiting, CancellationToken cancellationToken)
    {
        var now = Stopwatch.GetTimestamp();
        var current = _wakes.AddOrUpdate(
            deployment.Id,
            _ => (now, WakeOnceAsync(deployment, waiting)),
            (_, existing) => existing.Wake.IsCompleted && (existing.Wake.IsFaulted || existing.Wake.IsCanceled || Stopwatch.GetElapsedTime(existing.At) > Again)
                ? (now, WakeOnceAsync(deployment, waiting))
                : existing);
        return current.Wake.WaitAsync(cancellationToken);
    }

    private async Task WakeOnceAsync(Deployment deployment, int waiting)
    {
        await Task.Yield(); // never run the database work inside AddOrUpdate's factory
        var cancellationToken = CancellationToken.None; // shared by every waiting request: one leaving must not cancel it (the statements are short)
        var (covered, refusal) = await billing.CanRunAsync(deployment, 1, cancellationToken);
        if (!covered)
        {
            await RecordAsync(deployment.Id, DeploymentEventKinds.ScaleUpRefused, """{"replicas":1,"by":"cold_start"}""");
            throw new Gateway.OpenAiException(402,
                $"The deployment '{Gateway.Pipeline.InferencePipeline.Truncate(deployment.Name)}' is scaled to zero and cannot start: {refusal ?? "the wallet cannot cover its GPU time"}.",
                "insufficient_quota", "deployment_not_covered");
        }

        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<SluiceDbContext>();
        var now = time.GetUtcNow();
        await using var transaction = await db.Database.BeginTransactionAsync(cancellationToken);
        var woke = await db.Deployments
            .Where(d => d.Id == deployment.Id && d.DesiredReplicas == 0 && d.DeletedAt == null
                && d.Status != DeploymentStatuses.Failed && d.Status != DeploymentStatuses.Suspended && d.Status != DeploymentStatuses.Deleting)
            .ExecuteUpdateAsync(
                s => s.SetProperty(d => d.DesiredReplicas, 1).SetProperty(d => d.Status, DeploymentStatuses.Pending)
                    .SetProperty(d => d.StatusReason, (string?)null).SetProperty(d => d.UpdatedAt, now),
                cancellationToken);
        if (woke == 1)
        {
            db.DeploymentEvents.Add(new DeploymentEvent
            {
                Id = Guid.CreateVersion7(now),
                DeploymentId = deployment.Id,
                At = now,
                Kind = DeploymentEventKinds.ColdStart,
                Detail = $$"""{"desired_replicas":1,"waiting":{{waiting}}}""",
            });
            await db.SaveChangesAsync(cancellationToken);
        }

        await transaction.CommitAsync(cancellationToken);
        if (woke == 1)
        {
            DeploymentRoutingLog.ColdStart(logger, deployment.Id);
            signals?.Woken(); // the scheduler places the replica now, not at its next interval
        }
    }

    private async Task RecordAsync(Guid deploymentId, string kind, string detail)
    {
        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<SluiceDbContext>();
        var now = time.GetUtcNow();
        db.DeploymentEvents.Add(new DeploymentEvent { Id = Guid.CreateVersion7(now), DeploymentId = deploymentId, At = now, Kind = kind, Detail = detail });
        await db.SaveChangesAsync();
    }
}
