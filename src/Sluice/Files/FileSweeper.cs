using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using Sluice.Audit;
using Sluice.Hosting;
using Sluice.Privacy;
using Sluice.Storage;

namespace Sluice.Files;

/// <summary>
/// Shreds files past their expiry (data key first, then ciphertext, then the row), and encrypted objects that no row
/// or running batch owns any more (left by a crash between writing and recording them). Shredding is idempotent, so
/// several replicas may sweep at once.
/// </summary>
internal sealed partial class FileSweeper(
    IServiceScopeFactory scopes, FileStore store, TimeProvider time, IOptions<FilesOptions> options, ILogger<FileSweeper> logger, Hosting.BackgroundHealth? health = null) : Hosting.SupervisedService(health)
{
    private const int BatchSize = 500;

    /// <summary>An object on disk with no owner is left this long, so an upload or batch in progress is never touched.</summary>
    private static readonly TimeSpan OrphanGrace = TimeSpan.FromDays(1);

    protected override Task RunAsync(CancellationToken stoppingToken) =>
        PeriodicWork.RunAsync(options.Value.SweepInterval, time, logger, "file sweep", SweepAsync, stoppingToken, Health);

    public async Task<int> SweepAsync(CancellationToken cancellationToken)
    {
        HoldSet holds;
        await using (var scope = scopes.CreateAsyncScope())
        {
            holds = await HoldSet.ActiveAsync(scope.ServiceProvider.GetRequiredService<SluiceDbContext>(), cancellationToken);
        }

        var (shredded, _) = await SweepExpiredAsync(holds, cancellationToken);
        shredded += await SweepOrphansAsync(time.GetUtcNow(), cancellationToken);
        if (shredded > 0)
        {
            Shredded(logger, shredded);
        }

        return shredded;
    }

    /// <summary>
    /// Shreds expired files that no legal hold covers (a hold on their organization or on the batch-files class);
    /// returns how many were shredded and how many expired files holds kept.
    /// </summary>
    public async Task<(int Shredded, int Held)> SweepExpiredAsync(HoldSet holds, CancellationToken cancellationToken)
    {
        var shredded = 0;
        var now = time.GetUtcNow();
        var heldOrgs = holds.Organizations.ToList();
        var classHeld = holds.CoversClass(RetentionClass.BatchFiles);
        while (!classHeld)
        {
            await using var scope = scopes.CreateAsyncScope();
            var db = scope.ServiceProvider.GetRequiredService<SluiceDbContext>();
            var expired = await db.Files.AsNoTracking().Where(f => f.ExpiresAt <= now && !heldOrgs.Contains(f.OrganizationId)).OrderBy(f => f.ExpiresAt)
                .Select(f => new { f.Id, f.OrganizationId }).Take(BatchSize).ToListAsync(cancellationToken);
            if (expired.Count == 0)
            {
                break;
            }

            foreach (var file in expired)
            {
                store.Shred(file.Id);
            }

            var ids = expired.Select(f => f.Id).ToList();
            await db.Files.Where(f => ids.Contains(f.Id)).ExecuteDeleteAsync(cancellationToken);
            foreach (var org in expired.GroupBy(f => f.OrganizationId))
            {
                scope.ServiceProvider.GetRequiredService<AuditLog>().Record("file.expire", $"files:{org.Count()} expired by {now.UtcDateTime:yyyy-MM-ddTHH:mm:ssZ}", org.Key, actorOverride: "system");
            }

            await db.SaveChangesAsync(cancellationToken);
            shredded += expired.Count;
            if (expired.Count < BatchSize)
            {
                break;
            }
        }

        int held;
        await using (var scope = scopes.CreateAsyncScope())
        {
            held = holds == HoldSet.None ? 0 : await scope.ServiceProvider.GetRequiredService<SluiceDbContext>().Files.CountAsync(f => f.ExpiresAt <= now, cancellationToken);
        }

        return (shredded, held);
    }

    private async Task<int> SweepOrphansAsync(DateTimeOffset now, CancellationToken cancellationToken)
    {
        var old = store.Objects().Where(o => File.GetLastWriteTimeUtc(o.Path) < (now - OrphanGrace).UtcDateTime).ToList();
        if (old.Count == 0)
        {
            return 0;
        }

        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<SluiceDbContext>();
        var count = 0;
        foreach (var chunk in old.Chunk(BatchSize))
        {
            var ids = chunk.Select(o => o.Id).ToList();
            var files = await db.Files.Where(f => ids.Contains(f.Id)).Select(f => f.Id).ToListAsync(cancellationToken);
            var running = await db.Batches.Where(b => ids.Contains(b.Id) && Batches.Batch.ActiveStatuses.Contains(b.Status)).Select(b => b.Id).ToListAsync(cancellationToken);
            foreach (var orphan in chunk.Where(o => o.IsJournal ? !running.Contains(o.Id) : !files.Contains(o.Id)))
            {
                EncryptedFile.Shred(orphan.Path);
                count++;
            }
        }

        return count;
    }

    [LoggerMessage(60, LogLevel.Information, "Shredded {Count} expired or orphaned encrypted objects")]
    private static partial void Shredded(ILogger logger, int count);
}
