using Microsoft.EntityFrameworkCore;
using Sluice.Compute.Protocol;
using Sluice.Compute.Telemetry;
using Sluice.Storage;

namespace Sluice.Compute;

/// <summary>What a machine is doing now: its tasks (wanted running, and ready) and its GPUs' utilisation at its latest telemetry sample.</summary>
public sealed record MachineActivitySummary(int TasksRunning, int TasksReady, double? GpuUtilizationPercent, DateTimeOffset? SampledAt);

/// <summary>
/// Reads, for listings of machines, how busy each one is. The caller has already checked who may see the machines
/// (<see cref="MachineAdmin.ListAsync"/>); this only reads metadata (task states, telemetry figures).
/// </summary>
public sealed class MachineActivity(SluiceDbContext db, TimeProvider time)
{
    /// <summary>How far back a telemetry sample still counts as "now".</summary>
    public static readonly TimeSpan Recent = TimeSpan.FromMinutes(10);

    public async Task<Dictionary<Guid, MachineActivitySummary>> ForMachinesAsync(IReadOnlyCollection<Guid> machineIds, CancellationToken cancellationToken)
    {
        var result = new Dictionary<Guid, MachineActivitySummary>();
        if (machineIds.Count == 0)
        {
            return result;
        }

        var ids = machineIds.ToList();
        var tasks = await db.MachineTasks.AsNoTracking()
            .Where(t => ids.Contains(t.MachineId) && t.Desired == TaskDesired.Running)
            .Select(t => new { t.MachineId, t.State })
            .ToListAsync(cancellationToken);

        var names = ids.Select(id => id.ToString()).ToList();
        var since = time.GetUtcNow() - Recent;
        var samples = await db.Set<GpuTelemetrySample>().AsNoTracking()
            .Where(g => names.Contains(g.MachineId) && g.At >= since)
            .Select(g => new { g.MachineId, g.At, g.UtilizationPercent })
            .ToListAsync(cancellationToken);
        var latest = samples.GroupBy(s => s.MachineId).ToDictionary(g => g.Key, g =>
        {
            var at = g.Max(s => s.At);
            var readings = g.Where(s => s.At == at && s.UtilizationPercent is not null).Select(s => s.UtilizationPercent!.Value).ToList();
            return (At: at, Utilization: readings.Count == 0 ? (double?)null : readings.Average());
        }, StringComparer.Ordinal);

        foreach (var id in ids)
        {
            var mine = tasks.Where(t => t.MachineId == id).ToList();
            var sample = latest.TryGetValue(id.ToString(), out var s) ? s : ((DateTimeOffset At, double? Utilization)?)null;
            result[id] = new MachineActivitySummary(mine.Count, mine.Count(t => t.State == TaskStates.Ready), sample?.Utilization, sample?.At);
        }

        return result;
    }
}
