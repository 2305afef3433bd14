using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Infrastructure;
using Microsoft.EntityFrameworkCore.Storage;
using Npgsql;

namespace Sluice.Storage;

/// <summary>Where the database's schema stands relative to the migrations this binary carries.</summary>
public sealed record SchemaStatus(IReadOnlyList<string> Known, IReadOnlyList<string> Applied)
{
    public IReadOnlyList<string> Pending { get; } = Known.Except(Applied, StringComparer.Ordinal).ToList();

    /// <summary>Applied migrations this binary does not know: the database was migrated by a newer Sluice.</summary>
    public IReadOnlyList<string> Unknown { get; } = Applied.Except(Known, StringComparer.Ordinal).ToList();

    public bool IsNewerThanBinary => Unknown.Count > 0;

    public bool IsCurrent => Pending.Count == 0 && Unknown.Count == 0;

    public string Version => Applied.Count == 0 ? "(empty)" : Applied.Max(StringComparer.Ordinal)!;

    public string LatestKnown => Known.Count == 0 ? "(none)" : Known.Max(StringComparer.Ordinal)!;
}

/// <summary>Applies the forward-only migrations in <c>Storage/Migrations</c>, refusing a schema newer than the binary.</summary>
public sealed class SchemaMigrator(SluiceDbContext db, DatabaseTarget target)
{
    public async Task<SchemaStatus> GetStatusAsync(CancellationToken cancellationToken)
    {
        var known = db.Database.GetMigrations().ToList();
        var applied = (await db.Database.GetAppliedMigrationsAsync(cancellationToken)).ToList();
        return new SchemaStatus(known, applied);
    }

    /// <summary>Applies pending migrations; returns the status before and after. Safe to run from several replicas at once.</summary>
    public async Task<(SchemaStatus Before, SchemaStatus After)> MigrateAsync(CancellationToken cancellationToken)
    {
        if (target.Provider != DatabaseProvider.Postgres)
        {
            // EF Core's SQLite migration lock is held across the whole run.
            return await MigrateUnderLockAsync(cancellationToken);
        }

        // Npgsql's migration lock lasts one migration's transaction, so two replicas can interleave a multi-migration
        // run; a session-level advisory lock held for the whole run serialises them.
        await EnsurePostgresDatabaseExistsAsync(cancellationToken);
        await using var lockConnection = new NpgsqlConnection(target.ConnectionString);
        await lockConnection.OpenAsync(cancellationToken);
        await using (var acquire = new NpgsqlCommand($"SELECT pg_advisory_lock({MigrationLockId})", lockConnection))
        {
            await acquire.ExecuteNonQueryAsync(cancellationToken);
        }

        try
        {
            return await MigrateUnderLockAsync(cancellationToken);
        }
        finally
        {
            await using var release = new NpgsqlCommand($"SELECT pg_advisory_unlock({MigrationLockId})", lockConnection);
            await release.ExecuteNonQueryAsync(CancellationToken.None);
        }
    }

    private async Task<(SchemaStatus Before, SchemaStatus After)> MigrateUnderLockAsync(CancellationToken cancellationToken)
    {
        var before = await GetStatusAsync(cancellationToken);
        ThrowIfNewer(before);
        if (before.Pending.Count > 0)
        {
            await db.Database.MigrateAsync(cancellationToken);
        }

        return (before, await GetStatusAsync(cancellationToken));
    }

    private async Task EnsurePostgresDatabaseExistsAsync(CancellationToken cancellationToken)
    {
        var creator = db.GetService<IRelationalDatabaseCreator>();
        if (await creator.ExistsAsync(cancellationToken))
        {
            return;
        }

        try
        {
            await creator.CreateAsync(cancellationToken);
        }
        catch (PostgresException e) when (e.SqlState == PostgresErrorCodes.DuplicateDatabase)
        {
            // Another replica created it first.
        }
    }

    // An arbitrary constant identifying "Sluice schema migration" among advisory locks.
    private const long MigrationLockId = 0x51_7C_E0_00_00_00_00_01;

    public void ThrowIfNewer(SchemaStatus status)
    {
        if (status.IsNewerThanBinary)
        {
            throw new SchemaTooNewException(
                $"The database ({target.Description}) has schema version {status.Version}, newer than this sluice binary " +
                $"(which knows up to {status.LatestKnown}). Run a sluice release at least as new as the one that migrated it.");
        }
    }
}

public sealed class SchemaTooNewException(string message) : Exception(message);

public sealed class SchemaNotCurrentException(string message) : Exception(message);
