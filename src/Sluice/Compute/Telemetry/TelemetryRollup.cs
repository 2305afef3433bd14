using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using Sluice.Hosting;
using Sluice.Storage;

namespace Sluice.Compute.Telemetry;

/// <summary>
/// Keeps the hourly rollups (min/avg/max per machine and per GPU per hour) up to date, every
/// <see cref="TelemetryOptions.RollupInterval"/>. Each hour is one <c>INSERT … SELECT … GROUP BY … ON CONFLICT DO
/// UPDATE</c> per table in one transaction, so computing an hour again gives the same rows: a run cut short, a late
/// sample, or two replicas at once (one runs at a time under a replica lock anyway) never leave an hour half-counted.
/// An hour is rolled once it ended <see cref="TelemetryOptions.RollupDelay"/> ago; each run starts again from the last
/// hour it rolled. On PostgreSQL the same loop creates the coming days' partitions.
/// </summary>
internal sealed class TelemetryRollup(
    IServiceScopeFactory scopes,
    IOptions<TelemetryOptions> options,
    IOptions<ServerOptions> server,
    TimeProvider time,
    ILogger<TelemetryRollup> logger,
    BackgroundHealth? health = null) : SupervisedService(health)
{
    /// <summary>At most this many hours per run, so a run after a long pause stays short; the next run goes on.</summary>
    private const int MaxHoursPerRun = 48;

    // Arbitrary constant naming "roll up telemetry" among advisory locks.
    internal const long RollupLockId = 0x51_7C_E0_00_00_00_16_01;

    private static readonly TimeSpan Hour = TimeSpan.FromHours(1);

    protected override Task RunAsync(CancellationToken stoppingToken) =>
        PeriodicWork.RunAsync(options.Value.RollupInterval, time, logger, "telemetry rollup", async ct => await RollUpAsync(ct), stoppingToken, Health);

    /// <summary>One run: the hours rolled up, or null when another replica is running it.</summary>
    public async Task<int?> RollUpAsync(CancellationToken cancellationToken)
    {
        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<SluiceDbContext>();
        var now = time.GetUtcNow();
        var today = TelemetryPartitions.Day(now);
        await TelemetryPartitions.EnsureAsync(db, [today, today.AddDays(1), today.AddDays(2)], cancellationToken);

        await using var exclusive = await ReplicaLock.TryTakeAsync(
            db, RollupLockId, Path.Combine(Path.GetFullPath(server.Value.DataDir), "telemetry-rollup.lock"), cancellationToken);
        if (exclusive is null)
        {
            return null;
        }

        var end = Floor(now - options.Value.RollupDelay); // hours before this one are complete
        var last = await db.Set<MachineTelemetryHour>().MaxAsync(h => (DateTimeOffset?)h.Hour, cancellationToken);
        var start = last ?? (await db.Set<MachineTelemetrySample>().MinAsync(s => (DateTimeOffset?)s.At, cancellationToken) is { } first ? Floor(first) : end);
        var rolled = 0;
        var hour = start;
        while (hour < end && rolled < MaxHoursPerRun)
        {
            // Hours without samples (a fleet switched off over a weekend) are skipped, not counted against the run.
            var next = await db.Set<MachineTelemetrySample>().Where(s => s.At >= hour && s.At < end)
                .MinAsync(s => (DateTimeOffset?)s.At, cancellationToken);
            if (next is null)
            {
                break;
            }

            hour = Floor(next.Value);
            await RollUpHourAsync(db, hour, cancellationToken);
            rolled++;
            hour += Hour;
        }

        if (rolled > 0)
        {
            TelemetryLog.RolledUp(logger, rolled, hour);
        }

        return rolled;
    }

    internal static DateTimeOffset Floor(DateTimeOffset at)
    {
        var ticks = at.UtcTicks;
        return new DateTimeOffset(ticks - (ticks % TimeSpan.TicksPerHour), TimeSpan.Zero);
    }

    private static async Task RollUpHourAsync(SluiceDbContext db, DateTimeOffset hour, CancellationToken cancellationToken)
    {
        var from = TelemetrySql.Time(db, hour);
        var to = TelemetrySql.Time(db, hour + Hour);
        await using var transaction = await db.Database.BeginTransactionAsync(cancellationToken);
        await db.Database.ExecuteSqlRawAsync(MachineSql, [from, from, to], cancellationToken);
        await db.Database.ExecuteSqlRawAsync(GpuSql, [from, from, to], cancellationToken);
        await transaction.CommitAsync(cancellationToken);
    }

    // Averages of integer figures are cast back to integers (rounded on PostgreSQL, truncated on SQLite).
    private const string MachineSql = """
        INSERT INTO machine_telemetry_hours (machine_id, hour, samples,
            cpu_percent_min, cpu_percent_avg, cpu_percent_max, load1_min, load1_avg, load1_max,
            memory_used_bytes_min, memory_used_bytes_avg, memory_used_bytes_max, memory_total_bytes,
            disk_used_bytes_min, disk_used_bytes_avg, disk_used_bytes_max, disk_total_bytes, gpu_count_max)
        SELECT machine_id, {0}, COUNT(*),
            MIN(cpu_percent), AVG(cpu_percent), MAX(cpu_percent), MIN(load1), AVG(load1), MAX(load1),
            MIN(memory_used_bytes), CAST(AVG(memory_used_bytes) AS BIGINT), MAX(memory_used_bytes), MAX(memory_total_bytes),
            MIN(disk_used_bytes), CAST(AVG(disk_used_bytes) AS BIGINT), MAX(disk_used_bytes), MAX(disk_total_bytes), MAX(gpu_count)
        FROM machine_telemetry_samples WHERE at >= {1} AND at < {2}
        GROUP BY machine_id
        ON CONFLICT (machine_id, hour) DO UPDATE SET samples = excluded.samples,
            cpu_percent_min = excluded.cpu_percent_min, cpu_percent_avg = excluded.cpu_percent_avg, cpu_percent_max = excluded.cpu_percent_max,
            load1_min = excluded.load1_min, load1_avg = excluded.load1_avg, load1_max = excluded.load1_max,
            memory_used_bytes_min = excluded.memory_used_bytes_min, memory_used_bytes_avg = excluded.memory_used_bytes_avg,
            memory_used_bytes_max = excluded.memory_used_bytes_max, memory_total_bytes = excluded.memory_total_bytes,
            disk_used_bytes_min = excluded.disk_used_bytes_min, disk_used_bytes_avg = excluded.disk_used_bytes_avg,
            disk_used_bytes_max = excluded.disk_used_bytes_max, disk_total_bytes = excluded.disk_total_bytes,
            gpu_count_max = excluded.gpu_count_max
        """;

    private const string GpuSql = """
        INSERT INTO gpu_telemetry_hours (machine_id, hour, gpu_index, samples,
            memory_used_mib_min, memory_used_mib_avg, memory_used_mib_max, memory_total_mib,
            utilization_percent_min, utilization_percent_avg, utilization_percent_max,
            temperature_c_min, temperature_c_avg, temperature_c_max, power_draw_w_min, power_draw_w_avg, power_draw_w_max,
            xid_errors_max, ecc_errors_max)
        SELECT machine_id, {0}, gpu_index, COUNT(*),
            MIN(memory_used_mib), CAST(AVG(memory_used_mib) AS BIGINT), MAX(memory_used_mib), MAX(memory_total_mib),
            MIN(utilization_percent), AVG(utilization_percent), MAX(utilization_percent),
            MIN(temperature_c), AVG(temperature_c), MAX(temperature_c), MIN(power_draw_w), AVG(power_draw_w), MAX(power_draw_w),
            MAX(xid_errors), MAX(ecc_errors)
        FROM gpu_telemetry_samples WHERE at >= {1} AND at < {2}
        GROUP BY machine_id, gpu_index
        ON CONFLICT (machine_id, hour, gpu_index) DO UPDATE SET samples = excluded.samples,
            memory_used_mib_min = excluded.memory_used_mib_min, memory_used_mib_avg = excluded.memory_used_mib_avg,
            memory_used_mib_max = excluded.memory_used_mib_max, memory_total_mib = excluded.memory_total_mib,
            utilization_percent_min = excluded.utilization_percent_min, utilization_percent_avg = excluded.utilization_percent_avg,
            utilization_percent_max = excluded.utilization_percent_max,
            temperature_c_min = excluded.temperature_c_min, temperature_c_avg = excluded.temperature_c_avg, temperature_c_max = excluded.temperature_c_max,
            power_draw_w_min = excluded.power_draw_w_min, power_draw_w_avg = excluded.power_draw_w_avg, power_draw_w_max = excluded.power_draw_w_max,
            xid_errors_max = excluded.xid_errors_max, ecc_errors_max = excluded.ecc_errors_max
        """;
}

internal static class TelemetrySql
{
    /// <summary>A timestamp parameter as the provider stores it: timestamptz on PostgreSQL, UTC microseconds on SQLite.</summary>
    public static object Time(SluiceDbContext db, DateTimeOffset at) =>
        db.Database.IsNpgsql() ? at.ToUniversalTime() : (at.UtcTicks - DateTimeOffset.UnixEpoch.UtcTicks) / TimeSpan.TicksPerMicrosecond;
}
