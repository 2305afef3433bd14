using Microsoft.EntityFrameworkCore;
using Sluice.Storage;

namespace Sluice.Compute.Telemetry;

/// <summary>
/// Deletes telemetry older than its retention class's cutoff, for the retention sweeper. Raw samples: on PostgreSQL
/// whole days are dropped (partitions), and what is left before the cutoff in the day it falls in is deleted in
/// batches; on SQLite, batched range deletes on the time index. Rollups: batched range deletes. Counts are machine
/// samples (or machine hours); their GPU rows go with them.
/// </summary>
internal static class TelemetryRetention
{
    private const int BatchSize = 10_000;

    public static async Task<int> CountRawBeforeAsync(SluiceDbContext db, DateTimeOffset cutoff, CancellationToken cancellationToken) =>
        await db.Set<MachineTelemetrySample>().CountAsync(s => s.At < cutoff, cancellationToken);

    public static async Task<int> CountHoursBeforeAsync(SluiceDbContext db, DateTimeOffset cutoff, CancellationToken cancellationToken) =>
        await db.Set<MachineTelemetryHour>().CountAsync(h => h.Hour < cutoff, cancellationToken);

    public static async Task<int> DeleteRawBeforeAsync(SluiceDbContext db, DateTimeOffset cutoff, CancellationToken cancellationToken)
    {
        var deleted = 0;
        if (TelemetryPartitions.Applies(db))
        {
            deleted += await TelemetryPartitions.DropBeforeAsync(db, cutoff, cancellationToken);
        }

        deleted += await DeleteBatchesAsync(db, TelemetryTables.MachineSamples, "at", cutoff, cancellationToken);
        await DeleteBatchesAsync(db, TelemetryTables.GpuSamples, "at", cutoff, cancellationToken);
        return deleted;
    }

    public static async Task<int> DeleteHoursBeforeAsync(SluiceDbContext db, DateTimeOffset cutoff, CancellationToken cancellationToken)
    {
        var deleted = await DeleteBatchesAsync(db, TelemetryTables.MachineHours, "hour", cutoff, cancellationToken);
        await DeleteBatchesAsync(db, TelemetryTables.GpuHours, "hour", cutoff, cancellationToken);
        return deleted;
    }

    /// <summary>
    /// Deletes rows before the cutoff a batch at a time (each its own short transaction), oldest first: the batch ends
    /// at the time of its <see cref="BatchSize"/>th oldest row, found on the time index.
    /// </summary>
    private static async Task<int> DeleteBatchesAsync(SluiceDbContext db, string table, string column, DateTimeOffset cutoff, CancellationToken cancellationToken)
    {
        var deleted = 0;
        var limit = TelemetrySql.Time(db, cutoff);
        while (true)
        {
            // The time below which at most BatchSize rows lie (all rows before the cutoff when fewer remain).
            var bound = await db.Database.SqlQueryRaw<long>(
                db.Database.IsNpgsql()
                    ? $"SELECT count(*) AS \"Value\" FROM (SELECT 1 FROM {table} WHERE {column} < {{0}} LIMIT {BatchSize + 1}) t"
                    : $"SELECT count(*) AS \"Value\" FROM (SELECT 1 FROM {table} WHERE {column} < {{0}} LIMIT {BatchSize + 1})",
                limit).SingleAsync(cancellationToken);
            if (bound == 0)
            {
                return deleted;
            }

            int count;
            if (bound <= BatchSize)
            {
                var all = $"DELETE FROM {table} WHERE {column} < {{0}}";
                count = await db.Database.ExecuteSqlRawAsync(all, [limit], cancellationToken);
            }
            else
            {
                // More than a batch left: delete up to the time of the BatchSize-th oldest row (a few more when rows share it).
                var oldest = $"DELETE FROM {table} WHERE {column} <= (SELECT {column} FROM {table} WHERE {column} < {{0}} ORDER BY {column} LIMIT 1 OFFSET {BatchSize - 1})";
                count = await db.Database.ExecuteSqlRawAsync(oldest, [limit], cancellationToken);
            }

            deleted += count;
            if (bound <= BatchSize)
            {
                return deleted;
            }
        }
    }
}
