using System.Collections.Concurrent;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using Sluice.Compute.Protocol;
using Sluice.Hosting;
using Sluice.Storage;

namespace Sluice.Compute;

/// <summary>
/// Keeps heartbeat times off the request path: a heartbeat from a live machine marks it in memory, and a flush writes
/// every mark since the last one (each machine's earliest unwritten time, grouped by time in one statement per
/// distinct time) every <see cref="ComputeOptions.HeartbeatFlushInterval"/>. A machine looks at most one interval
/// older than it is, far below the 30 s before it counts as suspect. Times only move forward, so two replicas
/// flushing the same machine agree.
/// </summary>
public sealed class HeartbeatRecorder(IServiceScopeFactory scopes, IOptions<ComputeOptions> options, TimeProvider time, ILogger<HeartbeatRecorder> logger, BackgroundHealth? health = null)
    : SupervisedService(health)
{
    // A touch and the flush's swap take turns, so no touch lands in a batch the flush has already read.
    private readonly Lock _swap = new();
    private ConcurrentDictionary<Guid, DateTimeOffset> _pending = new();

    public int Pending => _pending.Count;

    public void Touch(Guid machineId, DateTimeOffset at)
    {
        lock (_swap)
        {
            _pending.AddOrUpdate(machineId, at, (_, existing) => existing > at ? existing : at);
        }
    }

    public async Task FlushAsync(CancellationToken cancellationToken)
    {
        if (_pending.IsEmpty)
        {
            return;
        }

        ConcurrentDictionary<Guid, DateTimeOffset> taken;
        lock (_swap)
        {
            taken = _pending;
            _pending = new ConcurrentDictionary<Guid, DateTimeOffset>();
        }

        try
        {
            await using var scope = scopes.CreateAsyncScope();
            var db = scope.ServiceProvider.GetRequiredService<SluiceDbContext>();

            // One statement per second-granular time: under load every machine heard in the last second shares a few.
            foreach (var group in taken.GroupBy(p => TruncateToSecond(p.Value)))
            {
                var at = group.Key;
                foreach (var chunk in group.Select(p => p.Key).Chunk(1000))
                {
                    var ids = chunk.ToList();
                    await db.Machines
                        .Where(m => ids.Contains(m.Id) && m.ContactAt < at && m.State != MachineStates.Decommissioned)
                        .ExecuteUpdateAsync(set => set.SetProperty(m => m.ContactAt, at).SetProperty(m => m.LastHeartbeatAt, at), cancellationToken);
                }
            }
        }
        catch (Exception ex)
        {
            foreach (var (id, at) in taken)
            {
                Touch(id, at);
            }

            ComputeLog.FlushFailed(logger, ex.GetType().Name, taken.Count);
            throw;
        }
    }

    protected override async Task RunAsync(CancellationToken stoppingToken)
    {
        await PeriodicWork.RunAsync(options.Value.HeartbeatFlushInterval, time, logger, "Heartbeat flush", FlushAsync, stoppingToken, Health);
        try
        {
            await FlushAsync(CancellationToken.None);
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            // Logged by FlushAsync; the host is stopping.
        }
    }

    private static DateTimeOffset TruncateToSecond(DateTimeOffset value) => new(value.UtcTicks - (value.UtcTicks % TimeSpan.TicksPerSecond), TimeSpan.Zero);
}
