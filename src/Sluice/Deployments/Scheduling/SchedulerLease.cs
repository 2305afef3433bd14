using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Metadata.Builders;
using Sluice.Storage;

namespace Sluice.Deployments.Scheduling;

/// <summary>
/// Which server replica schedules: one row per kind of work, held by one replica until it expires. The holder renews it
/// every pass, and every write the scheduler makes starts with that renewal in the same transaction (the fence): once
/// another replica has taken over, the old holder's writes fail instead of placing twice.
/// </summary>
public sealed class SchedulerLease
{
    public required string Name { get; init; }

    /// <summary>The server replica holding it (a random id per process, with the host name for operators).</summary>
    public required string Holder { get; set; }

    public DateTimeOffset AcquiredAt { get; set; }

    public DateTimeOffset ExpiresAt { get; set; }
}

internal sealed class SchedulerLeaseConfiguration : IEntityTypeConfiguration<SchedulerLease>
{
    public void Configure(EntityTypeBuilder<SchedulerLease> builder)
    {
        builder.ToTable("scheduler_leases");
        builder.HasKey(l => l.Name);
        builder.Property(l => l.Name).HasMaxLength(64);
        builder.Property(l => l.Holder).HasMaxLength(200);
    }
}

/// <summary>Takes, renews and checks the lease with conditional updates (no read-then-write), so two replicas never both hold it.</summary>
internal static class SchedulerLeases
{
    public const string Deployments = "deployments";

    /// <summary>Takes the lease if it is free or expired, or renews it if <paramref name="holder"/> has it. Whether it is held now.</summary>
    public static async Task<(bool Held, bool Taken)> TryAcquireAsync(SluiceDbContext db, string holder, DateTimeOffset now, TimeSpan duration, CancellationToken cancellationToken)
    {
        if (await RenewAsync(db, holder, now, duration, cancellationToken))
        {
            return (true, false);
        }

        var taken = await db.Set<SchedulerLease>()
            .Where(l => l.Name == Deployments && l.ExpiresAt <= now) // its own expired lease too (a pass longer than the lease, a database outage)
            .ExecuteUpdateAsync(set => set.SetProperty(l => l.Holder, holder).SetProperty(l => l.AcquiredAt, now).SetProperty(l => l.ExpiresAt, now + duration), cancellationToken);
        if (taken == 1)
        {
            return (true, true);
        }

        if (await db.Set<SchedulerLease>().AsNoTracking().AnyAsync(l => l.Name == Deployments, cancellationToken))
        {
            return (false, false);
        }

        try
        {
            db.Set<SchedulerLease>().Add(new SchedulerLease { Name = Deployments, Holder = holder, AcquiredAt = now, ExpiresAt = now + duration });
            await db.SaveChangesAsync(cancellationToken);
            return (true, true);
        }
        catch (DbUpdateException)
        {
            return (false, false); // another replica created it first
        }
        finally
        {
            db.ChangeTracker.Clear();
        }
    }

    /// <summary>
    /// Renews the lease only while <paramref name="holder"/> still has it unexpired. Run first in each of the scheduler's
    /// transactions, it also takes the lease row's lock (PostgreSQL) or the write lock (SQLite) until commit.
    /// </summary>
    public static async Task<bool> RenewAsync(SluiceDbContext db, string holder, DateTimeOffset now, TimeSpan duration, CancellationToken cancellationToken) =>
        await db.Set<SchedulerLease>()
            .Where(l => l.Name == Deployments && l.Holder == holder && l.ExpiresAt > now)
            .ExecuteUpdateAsync(set => set.SetProperty(l => l.ExpiresAt, now + duration), cancellationToken) == 1;

    /// <summary>Gives the lease up (on shutdown), so another replica takes over at once rather than after it expires.</summary>
    public static Task<int> ReleaseAsync(SluiceDbContext db, string holder, DateTimeOffset now, CancellationToken cancellationToken) =>
        db.Set<SchedulerLease>().Where(l => l.Name == Deployments && l.Holder == holder)
            .ExecuteUpdateAsync(set => set.SetProperty(l => l.ExpiresAt, now), cancellationToken);
}
