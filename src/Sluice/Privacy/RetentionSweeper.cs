using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using Sluice.Audit;
using Sluice.Files;
using Sluice.Hosting;
using Sluice.Storage;

namespace Sluice.Privacy;

/// <summary>What one retention class did in one run: its cutoff, what it deleted and what legal holds kept.</summary>
public sealed record RetentionClassResult(string Class, DateTimeOffset? Cutoff, int Deleted, int Held);

/// <summary>
/// Deletes what has outlived its retention class, in batches, skipping whatever an active legal hold covers, and writes
/// each run (cutoffs, counts, skips) to the audit log. One replica sweeps at a time; deleting is idempotent anyway.
/// </summary>
internal sealed class RetentionSweeper(
    IServiceScopeFactory scopes,
    FileSweeper files,
    IOptions<RetentionOptions> options,
    IOptions<ServerOptions> server,
    TimeProvider time,
    ILogger<RetentionSweeper> logger, Hosting.BackgroundHealth? health = null) : Hosting.SupervisedService(health)
{
    private const int BatchSize = 1000;

    // Arbitrary constant naming "sweep retention" among advisory locks.
    internal const long SweepLockId = 0x51_7C_E0_00_00_00_00_04;

    protected override Task RunAsync(CancellationToken stoppingToken) =>
        PeriodicWork.RunAsync(options.Value.SweepInterval, time, logger, "retention sweep", async ct => await SweepAsync(ct), stoppingToken, Health);

    /// <summary>One run over every class; null when another replica is sweeping.</summary>
    public async Task<IReadOnlyList<RetentionClassResult>?> SweepAsync(CancellationToken cancellationToken)
    {
        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<SluiceDbContext>();
        var lockFile = LockFile(server.Value);
        await using var exclusive = await ReplicaLock.TryTakeAsync(db, SweepLockId, lockFile, cancellationToken);
        if (exclusive is null)
        {
            return null;
        }

        var settings = options.Value;
        var now = time.GetUtcNow();
        var holds = await HoldSet.ActiveAsync(db, cancellationToken);
        var people = await holds.PeopleAsync(db, cancellationToken);
        var orgs = holds.Organizations.ToList();
        var heldPeople = people.ToList();
        var results = new List<RetentionClassResult>();

        // Request metadata: usage events, by when the request started. A person's hold keeps the events of keys they made.
        var requestCutoff = now - settings.RequestMetadata;
        var heldKeys = heldPeople.Count == 0 ? [] : await db.ApiKeys.AsNoTracking()
            .Where(k => k.CreatedByUserId != null && heldPeople.Contains(k.CreatedByUserId.Value)).Select(k => k.Id).ToListAsync(cancellationToken);
        results.Add(await SweepClassAsync(RetentionClass.RequestMetadata, requestCutoff, holds,
            db.UsageEvents.Where(e => e.StartedAt < requestCutoff),
            e => (e.OrganizationId != null && orgs.Contains(e.OrganizationId.Value)) || (e.KeyId != null && heldKeys.Contains(e.KeyId.Value)),
            cancellationToken));

        var loginCutoff = now - settings.LoginEvents;
        results.Add(await SweepClassAsync(RetentionClass.LoginEvents, loginCutoff, holds,
            db.LoginEvents.Where(e => e.OccurredAt < loginCutoff),
            e => e.UserId != null && heldPeople.Contains(e.UserId.Value),
            cancellationToken));

        results.Add(await SweepTelemetryAsync(RetentionClass.MachineTelemetry, now - settings.MachineTelemetry, holds,
            Compute.Telemetry.TelemetryRetention.CountRawBeforeAsync, Compute.Telemetry.TelemetryRetention.DeleteRawBeforeAsync, db, cancellationToken));
        results.Add(await SweepTelemetryAsync(RetentionClass.MachineTelemetryRollups, now - settings.MachineTelemetryRollups, holds,
            Compute.Telemetry.TelemetryRetention.CountHoursBeforeAsync, Compute.Telemetry.TelemetryRetention.DeleteHoursBeforeAsync, db, cancellationToken));

        results.Add(await SweepOperationalAsync(db, now - settings.OperationalMetadata, holds, orgs, heldPeople, cancellationToken));
        results.Add(await SweepDeploymentsAsync(db, now - settings.DeploymentMetadata, holds, orgs, cancellationToken));
        results.Add(await EraseClosedAccountsAsync(scope.ServiceProvider, now - settings.DeletedAccountGrace, holds, people, cancellationToken));

        var (shredded, heldFiles) = await files.SweepExpiredAsync(holds, cancellationToken);
        results.Add(new RetentionClassResult(RetentionClass.BatchFiles, now, shredded, heldFiles));

        // Billing records are append-only (database triggers) and kept indefinitely, which is at least the seven years
        // the law asks; audit entries are pruned by the audit pruner below a checkpoint (it honours holds too); support
        // messages have no store yet. They are reported so every run names every class.
        results.Add(new RetentionClassResult(RetentionClass.Billing, null, 0, 0));

        var audit = scope.ServiceProvider.GetRequiredService<AuditLog>();
        foreach (var result in results.Where(r => r.Deleted > 0 || r.Held > 0))
        {
            audit.Record("retention.sweep", $"{result.Class} cutoff:{Iso(result.Cutoff)} deleted:{result.Deleted} held:{result.Held}", actorOverride: "system");
        }

        audit.Record("retention.run", $"at:{Iso(now)} deleted:{results.Sum(r => r.Deleted)} held:{results.Sum(r => r.Held)} holds:{orgs.Count + holds.Users.Count + holds.Classes.Count}", actorOverride: "system");
        await db.SaveChangesAsync(cancellationToken);
        if (results.Sum(r => r.Deleted) > 0)
        {
            PrivacyLog.Swept(logger, results.Sum(r => r.Deleted), results.Sum(r => r.Held));
        }

        return results;
    }

    internal static string LockFile(ServerOptions server) => Path.Combine(Path.GetFullPath(server.DataDir), "retention-sweep.lock");

    private static async Task<RetentionClassResult> SweepOperationalAsync(
        SluiceDbContext db, DateTimeOffset cutoff, HoldSet holds, List<Guid> orgs, List<Guid> people, CancellationToken cancellationToken)
    {
        var parts = new[]
        {
            await SweepClassAsync(RetentionClass.OperationalMetadata, cutoff, holds,
                db.Sessions.Where(s => s.ExpiresAt < cutoff || (s.RevokedAt != null && s.RevokedAt < cutoff)), s => people.Contains(s.UserId), cancellationToken),
            await SweepClassAsync(RetentionClass.OperationalMetadata, cutoff, holds,
                db.Invitations.Where(i => i.ExpiresAt < cutoff), i => orgs.Contains(i.OrganizationId), cancellationToken),
            await SweepClassAsync(RetentionClass.OperationalMetadata, cutoff, holds,
                db.Batches.Where(b => b.CreatedAt < cutoff && !Batches.Batch.ActiveStatuses.Contains(b.Status)), b => orgs.Contains(b.OrganizationId), cancellationToken),
            await SweepClassAsync(RetentionClass.OperationalMetadata, cutoff, holds,
                db.WalletLeases.Where(l => l.Released && l.CreatedAt < cutoff), l => orgs.Contains(l.OrganizationId), cancellationToken),
            await SweepClassAsync(RetentionClass.OperationalMetadata, cutoff, holds,
                db.Notifications.Where(n => n.CreatedAt < cutoff), n => people.Contains(n.UserId), cancellationToken),
            await SweepClassAsync(RetentionClass.OperationalMetadata, cutoff, holds,
                db.PrivacyRequests.Where(r => r.CreatedAt < cutoff && PrivacyRequestStatus.Closed.Contains(r.Status)), r => people.Contains(r.UserId), cancellationToken),
            await SweepClassAsync(RetentionClass.OperationalMetadata, cutoff, holds,
                db.StaffAccessGrants.Where(g => g.RequestedAt < cutoff && (g.ExpiresAt == null || g.ExpiresAt < cutoff)), g => orgs.Contains(g.OrganizationId), cancellationToken),
        };
        return new RetentionClassResult(RetentionClass.OperationalMetadata, cutoff, parts.Sum(p => p.Deleted), parts.Sum(p => p.Held));
    }

    /// <summary>Deployment metadata: events, deleted deployments and stopped replicas; an organization's hold keeps its own.</summary>
    private static async Task<RetentionClassResult> SweepDeploymentsAsync(
        SluiceDbContext db, DateTimeOffset cutoff, HoldSet holds, List<Guid> orgs, CancellationToken cancellationToken)
    {
        var parts = new[]
        {
            await SweepClassAsync(RetentionClass.DeploymentMetadata, cutoff, holds,
                db.DeploymentEvents.Where(e => e.At < cutoff),
                e => db.Deployments.Any(d => d.Id == e.DeploymentId && orgs.Contains(d.OrganizationId)), cancellationToken),
            await SweepClassAsync(RetentionClass.DeploymentMetadata, cutoff, holds,
                db.DeploymentReplicas.Where(r => r.StoppedAt != null && r.StoppedAt < cutoff), r => orgs.Contains(r.OrganizationId), cancellationToken),
            await SweepClassAsync(RetentionClass.DeploymentMetadata, cutoff, holds,
                db.Deployments.Where(d => d.DeletedAt != null && d.DeletedAt < cutoff
                    && !db.DeploymentReplicas.Any(r => r.DeploymentId == d.Id && r.StoppedAt == null)), d => orgs.Contains(d.OrganizationId), cancellationToken),
        };
        return new RetentionClassResult(RetentionClass.DeploymentMetadata, cutoff, parts.Sum(p => p.Deleted), parts.Sum(p => p.Held));
    }

    /// <summary>
    /// Machine telemetry: figures about machines, no person's or organization's records, so only a hold on the class
    /// keeps it (an organization's hold would need the machine's owner, which the machines table holds).
    /// </summary>
    private static async Task<RetentionClassResult> SweepTelemetryAsync(
        string retentionClass, DateTimeOffset cutoff, HoldSet holds,
        Func<SluiceDbContext, DateTimeOffset, CancellationToken, Task<int>> count,
        Func<SluiceDbContext, DateTimeOffset, CancellationToken, Task<int>> delete,
        SluiceDbContext db, CancellationToken cancellationToken) =>
        holds.CoversClass(retentionClass)
            ? new RetentionClassResult(retentionClass, cutoff, 0, await count(db, cutoff, cancellationToken))
            : new RetentionClassResult(retentionClass, cutoff, await delete(db, cutoff, cancellationToken), 0);

    private static async Task<RetentionClassResult> EraseClosedAccountsAsync(
        IServiceProvider services, DateTimeOffset cutoff, HoldSet holds, HashSet<Guid> people, CancellationToken cancellationToken)
    {
        var db = services.GetRequiredService<SluiceDbContext>();
        var due = await db.Users.AsNoTracking().Where(u => u.ClosedAt != null && u.ClosedAt <= cutoff && u.ErasedAt == null)
            .Select(u => u.Id).ToListAsync(cancellationToken);
        if (holds.CoversClass(RetentionClass.DeletedAccounts))
        {
            return new RetentionClassResult(RetentionClass.DeletedAccounts, cutoff, 0, due.Count);
        }

        var erasure = services.GetRequiredService<AccountErasure>();
        var erased = 0;
        foreach (var userId in due.Where(id => !people.Contains(id)))
        {
            await erasure.EraseAsync(userId, cancellationToken);
            erased++;
        }

        return new RetentionClassResult(RetentionClass.DeletedAccounts, cutoff, erased, due.Count - erased);
    }

    /// <summary>Deletes <paramref name="expired"/> rows not covered by <paramref name="held"/>, a batch at a time.</summary>
    private static async Task<RetentionClassResult> SweepClassAsync<T>(
        string retentionClass, DateTimeOffset cutoff, HoldSet holds, IQueryable<T> expired,
        System.Linq.Expressions.Expression<Func<T, bool>> held, CancellationToken cancellationToken)
        where T : class
    {
        if (holds.CoversClass(retentionClass))
        {
            return new RetentionClassResult(retentionClass, cutoff, 0, await expired.CountAsync(cancellationToken));
        }

        var deletable = holds == HoldSet.None ? expired : expired.Where(Not(held));
        var deleted = 0;
        while (true)
        {
            var ids = await deletable.Select(e => EF.Property<Guid>(e, "Id")).Take(BatchSize).ToListAsync(cancellationToken);
            if (ids.Count == 0)
            {
                break;
            }

            deleted += await deletable.Where(e => ids.Contains(EF.Property<Guid>(e, "Id"))).ExecuteDeleteAsync(cancellationToken);
            if (ids.Count < BatchSize)
            {
                break;
            }
        }

        var kept = holds == HoldSet.None ? 0 : await expired.CountAsync(cancellationToken);
        return new RetentionClassResult(retentionClass, cutoff, deleted, kept);
    }

    private static System.Linq.Expressions.Expression<Func<T, bool>> Not<T>(System.Linq.Expressions.Expression<Func<T, bool>> predicate) =>
        System.Linq.Expressions.Expression.Lambda<Func<T, bool>>(System.Linq.Expressions.Expression.Not(predicate.Body), predicate.Parameters);

    private static string Iso(DateTimeOffset? at) => at is { } value ? value.UtcDateTime.ToString("yyyy-MM-ddTHH:mm:ssZ", System.Globalization.CultureInfo.InvariantCulture) : "none";

}
