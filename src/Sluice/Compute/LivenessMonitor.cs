using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using Sluice.Compute.Protocol;
using Sluice.Hosting;
using Sluice.Storage;

namespace Sluice.Compute;

/// <summary>
/// Moves machines that stopped heartbeating through <c>suspect</c> → <c>offline</c> → <c>lost</c>, measured from their
/// last contact (before the first heartbeat: join time plus the starting grace). Each change is a conditional update
/// (same liveness, same contact time as read), so every replica can run this at once and each change happens once,
/// with its event. A lost machine's tasks are terminated with <c>machine_lost</c> and taken out of its desired set.
/// A machine that heartbeats again is made <c>alive</c> by the heartbeat itself.
/// </summary>
public sealed class LivenessMonitor(
    IServiceScopeFactory scopes, HeartbeatRecorder recorder, IOptions<ComputeOptions> options, TimeProvider time, ILogger<LivenessMonitor> logger,
    BackgroundHealth? health = null) : SupervisedService(health)
{
    /// <summary>One round: flush this replica's heartbeat times, then apply every transition that is due. Returns how many.</summary>
    public async Task<int> CheckAsync(CancellationToken cancellationToken)
    {
        await recorder.FlushAsync(cancellationToken);
        var settings = options.Value;
        var now = time.GetUtcNow();
        var suspectBefore = now - settings.SuspectAfter;
        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<SluiceDbContext>();
        var offlineBefore = now - settings.OfflineAfter;
        var lostBefore = now - settings.LostAfter;

        // Only machines due for a change, oldest contact first: a large partition's offline machines waiting to be lost
        // never crowd out the ones due to go suspect or offline.
        var due = await db.Machines.AsNoTracking()
            .Where(m => m.State != MachineStates.Decommissioned
                && (((m.Liveness == MachineLiveness.Starting || m.Liveness == MachineLiveness.Alive) && m.ContactAt < suspectBefore)
                    || (m.Liveness == MachineLiveness.Suspect && m.ContactAt < offlineBefore)
                    || (m.Liveness == MachineLiveness.Offline && m.ContactAt < lostBefore)))
            .OrderBy(m => m.ContactAt)
            .Select(m => new { m.Id, m.Liveness, m.ContactAt })
            .Take(1000)
            .ToListAsync(cancellationToken);
        var changes = 0;
        foreach (var machine in due)
        {
            var silent = now - machine.ContactAt;
            var target = silent >= settings.LostAfter ? MachineLiveness.Lost
                : silent >= settings.OfflineAfter ? MachineLiveness.Offline
                : MachineLiveness.Suspect;
            if (Rank(target) <= Rank(machine.Liveness))
            {
                continue;
            }

            db.ChangeTracker.Clear();
            await using var transaction = await db.Database.BeginTransactionAsync(cancellationToken);
            var changed = await db.Machines
                .Where(m => m.Id == machine.Id && m.Liveness == machine.Liveness && m.ContactAt == machine.ContactAt && m.State != MachineStates.Decommissioned)
                .ExecuteUpdateAsync(set => set.SetProperty(m => m.Liveness, target).SetProperty(m => m.LivenessChangedAt, now), cancellationToken);
            if (changed != 1)
            {
                await transaction.RollbackAsync(cancellationToken);
                continue; // another replica did it, or the machine was heard from meanwhile
            }

            db.MachineEvents.Add(MachineAdmin.Event(machine.Id, now, MachineEventKinds.LivenessChanged, $"{machine.Liveness} -> {target}"));
            var lost = 0;
            if (target == MachineLiveness.Lost)
            {
                var tasks = await db.MachineTasks.Where(t => t.MachineId == machine.Id && t.State != TaskStates.Terminated)
                    .ToListAsync(cancellationToken);
                foreach (var task in tasks)
                {
                    task.State = TaskStates.Terminated;
                    task.Reason = TaskReasons.MachineLost;
                    task.Desired = TaskDesired.Stopped;
                    task.Generation++;
                    task.UpdatedAt = now;
                }

                lost = tasks.Count;
                db.MachineEvents.Add(MachineAdmin.Event(machine.Id, now, MachineEventKinds.TasksLost, $"{lost} task(s) terminated with {TaskReasons.MachineLost}"));
            }

            await db.SaveChangesAsync(cancellationToken);
            await transaction.CommitAsync(cancellationToken);
            changes++;
            ComputeLog.LivenessChanged(logger, machine.Id, target, machine.Liveness);
            if (target == MachineLiveness.Lost)
            {
                ComputeLog.TasksLost(logger, machine.Id, lost);
            }
        }

        return changes;
    }

    protected override Task RunAsync(CancellationToken stoppingToken) =>
        PeriodicWork.RunAsync(options.Value.LivenessCheckInterval, time, logger, "Machine liveness", CheckAsync, stoppingToken, Health);

    private static int Rank(string liveness) => liveness switch
    {
        MachineLiveness.Suspect => 1,
        MachineLiveness.Offline => 2,
        MachineLiveness.Lost => 3,
        _ => 0,
    };
}
