using System.Collections.Concurrent;
using System.Globalization;
using Microsoft.EntityFrameworkCore;
using Sluice.Storage;

namespace Sluice.Compute.Telemetry;

/// <summary>
/// PostgreSQL: the raw telemetry tables are range-partitioned by UTC day, one partition per table per day, named
/// <c>{table}_p{yyyyMMdd}</c>. The writer makes sure a batch's days exist before writing it, the rollup loop creates the
/// next days ahead, and retention drops the days that ended before its cutoff. Creating takes an advisory transaction
/// lock, so replicas creating the same day take turns (<c>IF NOT EXISTS</c> alone races on the catalog).
/// </summary>
internal static class TelemetryPartitions
{
    // Arbitrary constant naming "create telemetry partitions" among advisory locks.
    private const long CreateLockId = 0x51_7C_E0_00_00_00_16_02;

    private static readonly string[] Tables = [TelemetryTables.MachineSamples, TelemetryTables.GpuSamples];

    /// <summary>Days known to exist, per database; cleared for a day when retention drops it.</summary>
    private static readonly ConcurrentDictionary<(string Database, DateOnly Day), bool> Known = new();

    public static bool Applies(SluiceDbContext db) => db.Database.IsNpgsql();

    public static async Task EnsureAsync(SluiceDbContext db, IEnumerable<DateOnly> days, CancellationToken cancellationToken)
    {
        if (!Applies(db))
        {
            return;
        }

        var database = db.Database.GetConnectionString() ?? "";
        var missing = days.Distinct().Where(d => !Known.ContainsKey((database, d))).Order().ToList();
        if (missing.Count == 0)
        {
            return;
        }

        await using var transaction = await db.Database.BeginTransactionAsync(cancellationToken);
        await db.Database.ExecuteSqlRawAsync($"SELECT pg_advisory_xact_lock({CreateLockId})", cancellationToken);
        foreach (var day in missing)
        {
            foreach (var table in Tables)
            {
                // Identifiers and bounds are built from constants and a date, never from input.
                var create = $"CREATE TABLE IF NOT EXISTS {Name(table, day)} PARTITION OF {table} FOR VALUES FROM ('{Bound(day)}') TO ('{Bound(day.AddDays(1))}')";
                await db.Database.ExecuteSqlRawAsync(create, cancellationToken);
            }
        }

        await transaction.CommitAsync(cancellationToken);
        foreach (var day in missing)
        {
            Known[(database, day)] = true;
        }
    }

    /// <summary>The days whose partitions exist, oldest first.</summary>
    public static async Task<IReadOnlyList<DateOnly>> DaysAsync(SluiceDbContext db, CancellationToken cancellationToken)
    {
        var names = await db.Database.SqlQueryRaw<string>(
            $"SELECT c.relname AS \"Value\" FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = '{TelemetryTables.MachineSamples}'")
            .ToListAsync(cancellationToken);
        var prefix = TelemetryTables.MachineSamples + "_p";
        return names.Where(n => n.StartsWith(prefix, StringComparison.Ordinal))
            .Select(n => DateOnly.TryParseExact(n[prefix.Length..], "yyyyMMdd", CultureInfo.InvariantCulture, DateTimeStyles.None, out var day) ? day : (DateOnly?)null)
            .OfType<DateOnly>().Order().ToList();
    }

    /// <summary>
    /// Drops every day that ended at or before <paramref name="cutoff"/>; returns how many rows (machine samples) went
    /// with them. Rows of the day the cutoff falls in are left to a range delete.
    /// </summary>
    public static async Task<int> DropBeforeAsync(SluiceDbContext db, DateTimeOffset cutoff, CancellationToken cancellationToken)
    {
        var database = db.Database.GetConnectionString() ?? "";
        var dropped = 0;
        foreach (var day in (await DaysAsync(db, cancellationToken)).Where(d => Start(d.AddDays(1)) <= cutoff))
        {
            await using var transaction = await db.Database.BeginTransactionAsync(cancellationToken);
            await db.Database.ExecuteSqlRawAsync($"SELECT pg_advisory_xact_lock({CreateLockId})", cancellationToken);
            var count = $"SELECT count(*)::int AS \"Value\" FROM {Name(TelemetryTables.MachineSamples, day)}";
            dropped += await db.Database.SqlQueryRaw<int>(count).SingleAsync(cancellationToken);
            foreach (var table in Tables)
            {
                var drop = $"DROP TABLE IF EXISTS {Name(table, day)}";
                await db.Database.ExecuteSqlRawAsync(drop, cancellationToken);
            }

            await transaction.CommitAsync(cancellationToken);
            Known.TryRemove((database, day), out _);
        }

        return dropped;
    }

    /// <summary>
    /// Forgets which days exist, so the next write checks again: after a failed write, in case another replica's
    /// retention dropped a day this one still remembered (only possible for a backlog older than the raw retention).
    /// </summary>
    public static void Forget() => Known.Clear();

    public static DateOnly Day(DateTimeOffset at) => DateOnly.FromDateTime(at.UtcDateTime);

    private static DateTimeOffset Start(DateOnly day) => new(day.ToDateTime(TimeOnly.MinValue), TimeSpan.Zero);

    private static string Name(string table, DateOnly day) => $"{table}_p{day.ToString("yyyyMMdd", CultureInfo.InvariantCulture)}";

    private static string Bound(DateOnly day) => day.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture) + " 00:00:00+00";
}
