using Microsoft.EntityFrameworkCore;
using Sluice.Audit;
using Sluice.Billing;
using Sluice.Gateway;
using Sluice.Identity;

namespace Sluice.Storage;

/// <summary>The one database of a Sluice installation. Each feature configures its own entities.</summary>
public sealed class SluiceDbContext(DbContextOptions<SluiceDbContext> options) : DbContext(options)
{
    public DbSet<User> Users => Set<User>();

    public DbSet<Organization> Organizations => Set<Organization>();

    public DbSet<Membership> Memberships => Set<Membership>();

    public DbSet<Invitation> Invitations => Set<Invitation>();

    public DbSet<Session> Sessions => Set<Session>();

    public DbSet<LoginEvent> LoginEvents => Set<LoginEvent>();

    public DbSet<ApiKey> ApiKeys => Set<ApiKey>();

    public DbSet<Provider> Providers => Set<Provider>();

    public DbSet<CatalogModel> CatalogModels => Set<CatalogModel>();

    public DbSet<CatalogModelAlias> CatalogModelAliases => Set<CatalogModelAlias>();

    public DbSet<ModelRoute> ModelRoutes => Set<ModelRoute>();

    public DbSet<UsageEvent> UsageEvents => Set<UsageEvent>();

    public DbSet<LedgerAccount> LedgerAccounts => Set<LedgerAccount>();

    public DbSet<LedgerTransaction> LedgerTransactions => Set<LedgerTransaction>();

    public DbSet<LedgerEntry> LedgerEntries => Set<LedgerEntry>();

    public DbSet<RoutePrice> RoutePrices => Set<RoutePrice>();

    public DbSet<WalletLease> WalletLeases => Set<WalletLease>();

    public DbSet<Files.StoredFile> Files => Set<Files.StoredFile>();

    public DbSet<Batches.Batch> Batches => Set<Batches.Batch>();

    public DbSet<Privacy.LegalHold> LegalHolds => Set<Privacy.LegalHold>();

    public DbSet<Privacy.PrivacyRequest> PrivacyRequests => Set<Privacy.PrivacyRequest>();

    public DbSet<Privacy.ConsentRecord> ConsentRecords => Set<Privacy.ConsentRecord>();

    public DbSet<Privacy.Subprocessor> Subprocessors => Set<Privacy.Subprocessor>();

    public DbSet<Privacy.PolicyVersion> PolicyVersions => Set<Privacy.PolicyVersion>();

    public DbSet<Privacy.Notification> Notifications => Set<Privacy.Notification>();

    public DbSet<Privacy.StaffAccessGrant> StaffAccessGrants => Set<Privacy.StaffAccessGrant>();

    public DbSet<Compute.Machine> Machines => Set<Compute.Machine>();

    public DbSet<Compute.MachineJoinToken> MachineJoinTokens => Set<Compute.MachineJoinToken>();

    public DbSet<Compute.MachineTask> MachineTasks => Set<Compute.MachineTask>();

    public DbSet<Compute.MachineEvent> MachineEvents => Set<Compute.MachineEvent>();

    public DbSet<Deployments.Deployment> Deployments => Set<Deployments.Deployment>();

    public DbSet<Deployments.DeploymentReplica> DeploymentReplicas => Set<Deployments.DeploymentReplica>();

    public DbSet<Deployments.DeploymentEvent> DeploymentEvents => Set<Deployments.DeploymentEvent>();

    public DbSet<Deployments.Autoscaling.DeploymentLoadReport> DeploymentLoadReports => Set<Deployments.Autoscaling.DeploymentLoadReport>();

    public DbSet<Deployments.Autoscaling.AutoscalerLease> AutoscalerLeases => Set<Deployments.Autoscaling.AutoscalerLease>();

    public DbSet<AuditEntry> AuditEntries => Set<AuditEntry>();

    public DbSet<AuditCheckpoint> AuditCheckpoints => Set<AuditCheckpoint>();

    public DbSet<AuditPrunedSubtree> AuditPrunedSubtrees => Set<AuditPrunedSubtree>();

    public DbSet<WebConsole.ConsoleFormNonce> ConsoleFormNonces => Set<WebConsole.ConsoleFormNonce>();

    /// <summary>
    /// Saves the unit of work. When it contains audit entries, they are numbered inside the same transaction, after
    /// taking the log's append lock (an advisory lock on PostgreSQL; SQLite's write transaction is exclusive), so
    /// sequence numbers have no gaps and no duplicates however many replicas append at once.
    /// </summary>
    public override async Task<int> SaveChangesAsync(bool acceptAllChangesOnSuccess, CancellationToken cancellationToken = default)
    {
        var entries = ChangeTracker.Entries<AuditEntry>().Where(e => e.State == EntityState.Added).Select(e => e.Entity).ToList();
        if (entries.Count == 0)
        {
            return await base.SaveChangesAsync(acceptAllChangesOnSuccess, cancellationToken);
        }

        if (Database.CurrentTransaction is not null)
        {
            await NumberAsync(entries, cancellationToken);
            return await base.SaveChangesAsync(acceptAllChangesOnSuccess, cancellationToken);
        }

        await using var transaction = await Database.BeginTransactionAsync(cancellationToken);
        await NumberAsync(entries, cancellationToken);
        var saved = await base.SaveChangesAsync(acceptAllChangesOnSuccess, cancellationToken);
        await transaction.CommitAsync(cancellationToken);
        return saved;
    }

    public override int SaveChanges(bool acceptAllChangesOnSuccess)
    {
        if (ChangeTracker.Entries<AuditEntry>().Any(e => e.State == EntityState.Added))
        {
            throw new InvalidOperationException("Audit entries are numbered under a lock; save them with SaveChangesAsync.");
        }

        return base.SaveChanges(acceptAllChangesOnSuccess);
    }

    private async Task NumberAsync(List<AuditEntry> entries, CancellationToken cancellationToken)
    {
        if (Database.IsNpgsql())
        {
            await Database.ExecuteSqlRawAsync($"SELECT pg_advisory_xact_lock({AuditAppendLockId})", cancellationToken);
        }

        var next = Math.Max(
            (await AuditEntries.MaxAsync(e => (long?)e.Seq, cancellationToken) ?? -1) + 1,
            await AuditPrunedSubtrees.MaxAsync(s => (long?)s.PrefixSize, cancellationToken) ?? 0);
        foreach (var entry in entries)
        {
            entry.Seq = next++;
        }
    }

    // Arbitrary constant naming "append to the Sluice audit log" among advisory locks.
    private const long AuditAppendLockId = 0x51_7C_E0_00_00_00_00_02;

    protected override void ConfigureConventions(ModelConfigurationBuilder configurationBuilder)
    {
        if (Database.IsSqlite())
        {
            // SQLite has no timestamp type EF can order or compare; store UTC microseconds since 1970 instead.
            configurationBuilder.Properties<DateTimeOffset>().HaveConversion<UnixMicrosecondsConverter>();
        }
        else
        {
            // PostgreSQL's timestamptz takes UTC only; any offset the application uses is normalised on write.
            configurationBuilder.Properties<DateTimeOffset>().HaveConversion<UtcConverter>();
        }
    }

    protected override void OnModelCreating(ModelBuilder modelBuilder)
    {
        modelBuilder.ApplyConfigurationsFromAssembly(typeof(SluiceDbContext).Assembly);
        SnakeCaseNames.Apply(modelBuilder);
    }
}
