using System.Text;
using System.Text.Json;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using Sluice.Audit;
using Sluice.Compute;
using Sluice.Compute.Protocol;
using Sluice.Crypto;
using Sluice.Hosting;
using Sluice.Storage;

namespace Sluice.Deployments.Scheduling;

/// <summary>What one pass did (for tests and the log): whether this replica led, and how many replicas it changed.</summary>
public sealed record SchedulerPass(bool Leader, int Deployments, int Placed, int Drained, int Stopped);

/// <summary>
/// Converges every live deployment's replicas to its <see cref="Deployment.DesiredReplicas"/> at its current
/// <see cref="Deployment.Generation"/>: places missing replicas (through <see cref="MachineTasks"/>' placement, so GPUs
/// are checked under each machine's row lock), follows their tasks' states (ready, failed, lost with their machine),
/// drains and stops the replicas beyond the desired count, rolls out a new generation one replica at a time (a new
/// replica ready before an old one drains), stops everything of a deleted deployment, and keeps the deployment's status
/// in step. One server replica schedules at a time: the holder of the <c>deployments</c> lease, renewed by every pass
/// and re-checked at the start of each deployment's transaction, so a replica that lost it writes nothing.
/// </summary>
public sealed class DeploymentScheduler(
    IServiceScopeFactory scopes, IOptions<SchedulerOptions> options, TimeProvider time, ILogger<DeploymentScheduler> logger,
    BackgroundHealth? health = null, DeploymentSignals? signals = null) : SupervisedService(health)
{
    private readonly SemaphoreSlim _passes = new(1, 1);
    private readonly CancellationTokenSource _stopping = new();
    private bool _leader;

    public override Task StartAsync(CancellationToken cancellationToken)
    {
        // A request woke a deployment from zero on this server: a pass now (a cold start waits on it), beside the periodic ones.
        if (options.Value.PassOnWake)
        {
            signals?.OnWoken(RunSoon);
        }
        return base.StartAsync(cancellationToken);
    }

    private void RunSoon() => _ = Task.Run(async () =>
    {
        try
        {
            await PassAsync(_stopping.Token);
        }
        catch (Exception ex) when (ex is not OperationCanceledException || !_stopping.IsCancellationRequested)
        {
            SchedulingLog.SoonPassFailed(logger, ex.GetType().Name); // the periodic pass still comes
        }
        catch (OperationCanceledException)
        {
        }
    });

    /// <summary>This server replica's name in the lease: its host and a random id per process.</summary>
    public string Holder { get; } = $"{Truncate(Environment.MachineName, 150)}/{Guid.NewGuid():N}";

    /// <summary>One pass over every deployment (only if this replica holds or takes the lease). Passes in one process take turns.</summary>
    public async Task<SchedulerPass> PassAsync(CancellationToken cancellationToken)
    {
        await _passes.WaitAsync(cancellationToken);
        try
        {
            return await RunPassAsync(cancellationToken);
        }
        finally
        {
            _passes.Release();
        }
    }

    protected override Task RunAsync(CancellationToken stoppingToken) =>
        PeriodicWork.RunAsync(options.Value.Interval, time, logger, "Deployment scheduler", PassAsync, stoppingToken, Health);

    public override async Task StopAsync(CancellationToken cancellationToken)
    {
        await _stopping.CancelAsync();
        await base.StopAsync(cancellationToken);
        if (!_leader)
        {
            return;
        }

        try
        {
            // Handing the lease over at once: the next replica schedules within its own interval, not after the lease expires.
            await using var scope = scopes.CreateAsyncScope();
            await SchedulerLeases.ReleaseAsync(scope.ServiceProvider.GetRequiredService<SluiceDbContext>(), Holder, time.GetUtcNow(), cancellationToken);
        }
        catch (Exception)
        {
            // Best effort, cancellation included (the host's shutdown grace may already be spent): the lease expires on its own.
        }
    }

    private async Task<SchedulerPass> RunPassAsync(CancellationToken cancellationToken)
    {
        var settings = options.Value;
        await using var scope = scopes.CreateAsyncScope();
        var services = scope.ServiceProvider;
        services.GetRequiredService<AuditActor>().Fixed = "system:scheduler";
        var db = services.GetRequiredService<SluiceDbContext>();
        var (held, taken) = await SchedulerLeases.TryAcquireAsync(db, Holder, time.GetUtcNow(), settings.LeaseDuration, cancellationToken);
        if (!held)
        {
            if (_leader)
            {
                _leader = false;
                SchedulingLog.LeaseLost(logger);
            }

            return new SchedulerPass(false, 0, 0, 0, 0);
        }

        if (taken || !_leader)
        {
            _leader = true;
            SchedulingLog.LeaseTaken(logger, Holder);
        }

        var ids = await db.Deployments.AsNoTracking()
            .Where(d => d.DeletedAt == null || db.DeploymentReplicas.Any(r => r.DeploymentId == d.Id
                && (r.State == ReplicaStates.Starting || r.State == ReplicaStates.Ready || r.State == ReplicaStates.Draining)))
            .OrderBy(d => d.CreatedAt)
            .Select(d => d.Id)
            .ToListAsync(cancellationToken);
        var fleet = await LoadFleetAsync(db, cancellationToken);
        var tally = new Tally();
        var failures = 0;
        Exception? lastFailure = null;
        foreach (var id in ids)
        {
            try
            {
                await ConvergeAsync(services, db, fleet, id, tally, cancellationToken);
            }
            catch (LeaseLostException)
            {
                _leader = false;
                SchedulingLog.LeaseLost(logger);
                break;
            }
            catch (Exception ex) when (ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
            {
                // One deployment's trouble does not hold up the others; the round still reports failing below.
                failures++;
                lastFailure = ex;
                db.ChangeTracker.Clear();
                SchedulingLog.ConvergeFailed(logger, id, ex.GetType().Name);
            }
        }

        if (failures > 0)
        {
            throw new SchedulerRoundException(failures, lastFailure);
        }

        return new SchedulerPass(true, ids.Count, tally.Placed, tally.Drained, tally.Stopped);
    }

    private static async Task<Dictionary<Guid, MachineSlot>> LoadFleetAsync(SluiceDbContext db, CancellationToken cancellationToken)
    {
        var machines = await db.Machines.AsNoTracking()
            .Where(m => m.State == MachineStates.Ready && m.Liveness == MachineLiveness.Alive)
            .Select(m => new { m.Id, m.OrganizationId, m.Inventory })
            .ToListAsync(cancellationToken);
        var inUse = await db.MachineTasks.AsNoTracking()
            .Where(t => t.State != TaskStates.Terminated && t.GpuIndices != ""
                && db.Machines.Any(m => m.Id == t.MachineId && m.State == MachineStates.Ready && m.Liveness == MachineLiveness.Alive))
            .Select(t => new { t.MachineId, t.GpuIndices })
            .ToListAsync(cancellationToken);
        var taken = inUse.GroupBy(t => t.MachineId).ToDictionary(
            g => g.Key,
            g => g.SelectMany(t => t.GpuIndices.Split(',')).Select(s => int.Parse(s, System.Globalization.CultureInfo.InvariantCulture)).ToHashSet());
        return machines.ToDictionary(
            m => m.Id,
            m => new MachineSlot(m.Id, m.OrganizationId, JsonSerializer.Deserialize(m.Inventory, ComputeJson.Default.MachineInventory)!,
                taken.GetValueOrDefault(m.Id) ?? []));
    }

    private async Task ConvergeAsync(
        IServiceProvider services, SluiceDbContext db, Dictionary<Guid, MachineSlot> fleet, Guid id, Tally tally, CancellationToken cancellationToken)
    {
        var now = time.GetUtcNow();
        db.ChangeTracker.Clear();
        Microsoft.EntityFrameworkCore.Storage.IDbContextTransaction? transaction = null;
        try
        {
            await ConvergeAsync(services, db, fleet, id, tally, now, () => transaction, t => transaction = t, cancellationToken);
        }
        finally
        {
            if (transaction is not null)
            {
                await transaction.DisposeAsync();
            }
        }
    }

    /// <summary>
    /// One deployment's step: read and decide without a transaction; only if something is to be written, begin one whose
    /// first statement renews the lease (the fence), then write. A deployment at rest costs reads only.
    /// </summary>
    private async Task ConvergeAsync(
        IServiceProvider services, SluiceDbContext db, Dictionary<Guid, MachineSlot> fleet, Guid id, Tally tally, DateTimeOffset now,
        Func<Microsoft.EntityFrameworkCore.Storage.IDbContextTransaction?> currentTransaction, Action<Microsoft.EntityFrameworkCore.Storage.IDbContextTransaction> began,
        CancellationToken cancellationToken)
    {
        var settings = options.Value;

        async Task BeginWritesAsync()
        {
            if (currentTransaction() is not null)
            {
                return;
            }

            began(await db.Database.BeginTransactionAsync(cancellationToken));
            if (!await SchedulerLeases.RenewAsync(db, Holder, now, settings.LeaseDuration, cancellationToken))
            {
                throw new LeaseLostException();
            }
        }

        var deployment = await db.Deployments.AsNoTracking().SingleAsync(d => d.Id == id, cancellationToken);
        var live = await db.DeploymentReplicas
            .Where(r => r.DeploymentId == id && (r.State == ReplicaStates.Starting || r.State == ReplicaStates.Ready || r.State == ReplicaStates.Draining))
            .OrderBy(r => r.CreatedAt)
            .ToListAsync(cancellationToken);
        var taskIds = live.Select(r => r.TaskId).ToList();
        var tasks = await db.MachineTasks.Where(t => taskIds.Contains(t.Id)).ToDictionaryAsync(t => t.Id, cancellationToken);
        var machineIds = live.Select(r => r.MachineId).Distinct().ToList();
        var leaving = (await db.Machines.AsNoTracking()
                .Where(m => machineIds.Contains(m.Id) && (m.State == MachineStates.Draining || m.State == MachineStates.Decommissioned))
                .Select(m => m.Id).ToListAsync(cancellationToken))
            .ToHashSet();
        var machineTasks = services.GetRequiredService<MachineTasks>();
        var touched = new HashSet<Guid>(); // machines whose desired task set this step changes: nudged once it commits

        // Events of one pass are a microsecond apart (what the database keeps), so listings show them in the order they happened.
        var sequence = 0;
        void Event(string kind, string? detail)
        {
            var at = now.AddTicks(10 * sequence++);
            db.DeploymentEvents.Add(new DeploymentEvent { Id = Guid.CreateVersion7(at), DeploymentId = id, At = at, Kind = kind, Detail = detail });
        }

        void StopTask(DeploymentReplica replica)
        {
            if (tasks.TryGetValue(replica.TaskId, out var task) && task.Desired != TaskDesired.Stopped)
            {
                machineTasks.Stop(task);
                touched.Add(task.MachineId);
                tally.Stopped++;
            }
        }

        // 1. Follow the tasks: ready, back to starting after an engine restart, stopped, failed, lost with their machine.
        foreach (var replica in live)
        {
            var draining = replica.State == ReplicaStates.Draining;
            if (!tasks.TryGetValue(replica.TaskId, out var task) || task.State == TaskStates.Terminated)
            {
                var reason = task?.Reason ?? TaskReasons.Stopped;
                replica.StoppedAt = now;
                replica.Reason = reason;
                if (reason == TaskReasons.MachineLost)
                {
                    replica.State = ReplicaStates.Stopped;
                    Event(draining ? DeploymentEventKinds.ReplicaStopped : DeploymentEventKinds.ReplicaLost,
                        Detail(("replica", replica.Id), ("machine", replica.MachineId), ("reason", reason)));
                }
                else if (draining || reason == TaskReasons.Stopped)
                {
                    replica.State = ReplicaStates.Stopped;
                    Event(DeploymentEventKinds.ReplicaStopped, Detail(("replica", replica.Id), ("machine", replica.MachineId), ("reason", reason)));
                }
                else
                {
                    replica.State = ReplicaStates.Failed;
                    Event(DeploymentEventKinds.ReplicaFailed, Detail(("replica", replica.Id), ("machine", replica.MachineId), ("reason", reason),
                        ("exitCode", task?.ExitCode), ("sentence", FailureSentence(replica, task))));
                }

                SchedulingLog.ReplicaState(logger, id, replica.Id, replica.State);
                continue;
            }

            if (replica.State == ReplicaStates.Starting && task.State == TaskStates.Ready)
            {
                replica.State = ReplicaStates.Ready;
                replica.ReadyAt = now;
                Event(DeploymentEventKinds.ReplicaReady, Detail(("replica", replica.Id), ("machine", replica.MachineId),
                    ("startupSeconds", Math.Round((now - replica.CreatedAt).TotalSeconds, 3))));
                SchedulingLog.ReplicaState(logger, id, replica.Id, replica.State);
            }
            else if (replica.State == ReplicaStates.Ready && task.State is TaskStates.Pending or TaskStates.Preparing or TaskStates.Starting)
            {
                replica.State = ReplicaStates.Starting; // the agent restarted its engine: out of routing until ready again
                SchedulingLog.ReplicaState(logger, id, replica.Id, replica.State);
            }

            if (draining && (replica.ReadyAt is null || now - (replica.DrainingAt ?? now) >= settings.DrainGrace))
            {
                StopTask(replica);
            }
        }

        // 2. Failures in a row of this generation (newest first): enough of them and nothing more is placed until an update.
        var recent = await db.DeploymentReplicas.AsNoTracking()
            .Where(r => r.DeploymentId == id && r.Generation == deployment.Generation)
            .OrderByDescending(r => r.CreatedAt)
            .Take(settings.FailuresBeforeFailed)
            .Select(r => new { r.Id, r.State, r.TaskId, r.ReadyAt })
            .ToListAsync(cancellationToken);
        var followed = live.ToDictionary(r => r.Id, r => r.State); // this pass's states, not yet written
        var streak = recent.TakeWhile(r => followed.GetValueOrDefault(r.Id, r.State) == ReplicaStates.Failed).Count();
        string? failure = null;
        if (streak >= settings.FailuresBeforeFailed)
        {
            var last = recent[0];
            var lastTask = tasks.GetValueOrDefault(last.TaskId)
                ?? await db.MachineTasks.AsNoTracking().SingleOrDefaultAsync(t => t.Id == last.TaskId, cancellationToken);
            failure = FailureSentence(last.ReadyAt is null, lastTask);
        }

        // 3. Decide: drain what is beyond the desired count (old generation, leaving machines first once new ones are
        // ready), place what is missing, one extra at a time while rolling out.
        var deleted = deployment.DeletedAt is not null;
        // Suspended for lack of funds: nothing runs, whatever count an update raced in (it resumes only through an update
        // the wallet covers, which moves the status out of suspended).
        var desired = deleted || deployment.Status == DeploymentStatuses.Suspended ? 0 : Math.Max(0, deployment.DesiredReplicas);
        var active = live.Where(r => r.State is ReplicaStates.Starting or ReplicaStates.Ready).ToList();
        var old = active.Where(r => r.Generation != deployment.Generation || leaving.Contains(r.MachineId)).ToList();
        var current = active.Except(old).ToList();
        var rollingOut = old.Any(r => r.Generation != deployment.Generation);

        void Drain(DeploymentReplica replica, string why)
        {
            replica.State = ReplicaStates.Draining;
            replica.DrainingAt = now;
            Event(DeploymentEventKinds.ReplicaDraining, Detail(("replica", replica.Id), ("machine", replica.MachineId), ("reason", why)));
            SchedulingLog.ReplicaState(logger, id, replica.Id, replica.State);
            tally.Drained++;
            if (replica.ReadyAt is null || settings.DrainGrace <= TimeSpan.Zero)
            {
                StopTask(replica); // never served: nothing to wait for
            }
        }

        if (desired == 0)
        {
            foreach (var replica in active)
            {
                Drain(replica, deleted ? "deleted" : deployment.Status == DeploymentStatuses.Suspended ? "suspended" : "scale_down");
            }

            old.Clear();
            current.Clear();
        }
        else
        {
            var readyNew = current.Count(r => r.State == ReplicaStates.Ready);
            var drainOld = Math.Max(0, readyNew + old.Count - desired);
            foreach (var replica in old.OrderBy(r => r.State == ReplicaStates.Ready ? 1 : 0).ThenBy(r => r.Generation).ThenByDescending(r => r.CreatedAt).Take(drainOld).ToList())
            {
                Drain(replica, replica.Generation != deployment.Generation ? "rollout" : "machine_draining");
                old.Remove(replica);
            }

            if (drainOld > 0 && rollingOut && old.All(r => r.Generation == deployment.Generation))
            {
                Event(DeploymentEventKinds.RolloutCompleted, Detail(("generation", deployment.Generation)));
            }

            if (current.Count > desired)
            {
                foreach (var replica in current.OrderBy(r => r.State == ReplicaStates.Ready ? 1 : 0).ThenByDescending(r => r.CreatedAt).Take(current.Count - desired).ToList())
                {
                    Drain(replica, "scale_down");
                    current.Remove(replica);
                }
            }
        }

        var missing = desired - current.Count;
        if (old.Count > 0)
        {
            missing = Math.Min(missing, desired + 1 - current.Count - old.Count); // surge 1
        }

        string? unschedulable = null;
        var placedHere = 0;
        var mayPlace = !deleted && deployment.Status != DeploymentStatuses.Suspended && failure is null;
        if (missing > 0 && mayPlace)
        {
            var (spec, launchProblem) = Launch(services, deployment);
            if (spec is null)
            {
                unschedulable = launchProblem;
            }
            else
            {
                if (rollingOut && recent.Count == 0)
                {
                    Event(DeploymentEventKinds.RolloutStarted, Detail(("generation", deployment.Generation), ("replicas", old.Count)));
                }

                var holding = active.Select(r => r.MachineId).ToHashSet();
                var excluded = new HashSet<Guid>();
                var coldStart = deployment.MinReplicas == 0 && live.All(r => r.State is not (ReplicaStates.Starting or ReplicaStates.Ready or ReplicaStates.Draining));
                for (var placed = 0; placed < missing && unschedulable is null;)
                {
                    var (candidates, reason) = Placement.Candidates(fleet.Values, deployment, spec.Runtime == TaskRuntimes.Container, holding, excluded,
                        ownMachinesOnly: spec.Runtime == TaskRuntimes.Process && deployment.Engine is not (DeploymentEngines.BuiltInLlama or DeploymentEngines.BuiltInEmbeddings));
                    if (candidates.Count == 0)
                    {
                        unschedulable = reason;
                        break;
                    }

                    await BeginWritesAsync();
                    var slot = candidates[0];
                    var replicaId = Guid.CreateVersion7(now);
                    var placement = await machineTasks.PlaceAsync(slot.Id, deployment.OrganizationId, spec, deployment.GpusPerReplica, null, deployment.GpuType,
                        task =>
                        {
                            var gpus = task.Gpus();
                            db.DeploymentReplicas.Add(new DeploymentReplica
                            {
                                Id = replicaId,
                                DeploymentId = id,
                                OrganizationId = deployment.OrganizationId,
                                Generation = deployment.Generation,
                                MachineId = slot.Id,
                                TaskId = task.Id,
                                GpuType = slot.Inventory.Gpus.FirstOrDefault(g => gpus.Contains(g.Index))?.Name is { } gpuName ? Truncate(gpuName, 100) : null,
                                GpuCount = gpus.Count,
                                State = ReplicaStates.Starting,
                                ColdStart = coldStart,
                                CreatedAt = now,
                            });
                            Event(DeploymentEventKinds.ReplicaPlaced, Detail(("replica", replicaId), ("machine", slot.Id), ("generation", deployment.Generation),
                                ("gpus", gpus.Count), ("coldStart", coldStart)));
                        },
                        cancellationToken);
                    if (placement.Task is null)
                    {
                        excluded.Add(slot.Id); // taken meanwhile (or no longer ready): try the next machine
                        continue;
                    }

                    foreach (var index in placement.Task.Gpus())
                    {
                        slot.Taken.Add(index);
                    }

                    holding.Add(slot.Id);
                    touched.Add(slot.Id);
                    placed++;
                    placedHere++;
                    tally.Placed++;
                    coldStart = false;
                    SchedulingLog.ReplicaPlaced(logger, id, replicaId, slot.Id, deployment.Generation);
                }
            }

            if (unschedulable is not null
                && !await db.DeploymentEvents.AnyAsync(e => e.DeploymentId == id && e.Kind == DeploymentEventKinds.Unschedulable && e.At > now - settings.UnschedulableEventInterval, cancellationToken))
            {
                Event(DeploymentEventKinds.Unschedulable, Detail(("reason", unschedulable), ("missing", missing)));
                SchedulingLog.Unschedulable(logger, id, unschedulable);
            }
        }

        // 4. The deployment's status, written only if nobody changed the deployment meanwhile (an update, a suspension, a wake).
        var ready = live.Count(r => r.State == ReplicaStates.Ready);
        var running = live.Count(r => r.State is ReplicaStates.Starting or ReplicaStates.Ready or ReplicaStates.Draining) + placedHere;
        var (status, statusReason) = deleted
            ? (DeploymentStatuses.Deleting, running > 0 ? $"deleted: stopping {running} replica(s)" : "deleted: every replica stopped")
            : deployment.Status == DeploymentStatuses.Suspended ? (DeploymentStatuses.Suspended, deployment.StatusReason)
            : failure is not null && ready == 0 ? (DeploymentStatuses.Failed, failure)
            : ready > 0 ? (DeploymentStatuses.Ready, failure is not null ? $"generation {deployment.Generation} failed to start: {failure}"
                : unschedulable is not null ? $"not every replica is placed: {unschedulable}" : null)
            : desired == 0 && running == 0 ? (DeploymentStatuses.ScaledToZero, null)
            : (DeploymentStatuses.Pending, unschedulable ?? (running > 0 ? "waiting for a replica to become ready" : null));
        statusReason = statusReason is null ? null : Truncate(statusReason, 300);
        var statusChanged = status != deployment.Status || statusReason != deployment.StatusReason;
        if (currentTransaction() is null && !statusChanged && !db.ChangeTracker.HasChanges())
        {
            return; // at rest: nothing to write
        }

        await BeginWritesAsync();
        if (statusChanged)
        {
            var changed = await db.Deployments
                .Where(d => d.Id == id && d.Status == deployment.Status && d.Generation == deployment.Generation
                    && d.DesiredReplicas == deployment.DesiredReplicas && (d.DeletedAt == null) == !deleted)
                .ExecuteUpdateAsync(set => set.SetProperty(d => d.Status, status).SetProperty(d => d.StatusReason, statusReason), cancellationToken);
            if (changed == 1 && status == DeploymentStatuses.Failed && deployment.Status != DeploymentStatuses.Failed)
            {
                Event(DeploymentEventKinds.Failed, Detail(("generation", deployment.Generation), ("reason", failure)));
                SchedulingLog.Failed(logger, id, failure!);
            }
        }

        await db.SaveChangesAsync(cancellationToken);
        await currentTransaction()!.CommitAsync(cancellationToken);

        // The agents fetch their new desired sets now rather than at their next heartbeat (a cold start is waiting on this).
        if (touched.Count > 0 && services.GetService<Compute.Serving.MachineNudger>() is { } nudger)
        {
            foreach (var machine in touched)
            {
                nudger.Nudge(machine);
            }
        }
    }

    /// <summary>The task spec for a replica, or why there is none (content-free: never the secrets or the spec).</summary>
    private static (TaskSpec? Spec, string? Problem) Launch(IServiceProvider services, Deployment deployment)
    {
        IReadOnlyDictionary<string, string>? secrets = null;
        if (deployment.SecretsSealed is { } sealedSecrets)
        {
            try
            {
                var json = services.GetRequiredService<SecretBox>().Open(sealedSecrets, $"deployment:{deployment.Id}");
                secrets = JsonSerializer.Deserialize(json, DeploymentJson.Default.DictionaryStringString);
            }
            catch (Exception ex) when (ex is System.Security.Cryptography.CryptographicException or JsonException or FormatException or ArgumentException or OverflowException)
            {
                return (null, "the deployment's secrets cannot be opened with this server's data key");
            }
        }

        try
        {
            return (DeploymentLaunch.ToTaskSpec(deployment, secrets), null);
        }
        catch (NotSupportedException)
        {
            return (null, $"the engine {Truncate(deployment.Engine, 32)} cannot be launched by this server yet");
        }
        catch (Exception ex) when (ex is JsonException or ArgumentException or InvalidOperationException)
        {
            return (null, "the deployment's launch settings cannot be turned into a task");
        }
    }

    private static string FailureSentence(DeploymentReplica replica, MachineTask? task) => FailureSentence(replica.ReadyAt is null, task);

    /// <summary>Why a replica's engine ended, in a fixed sentence from the task's reason and exit code (never its output).</summary>
    internal static string FailureSentence(bool duringStartup, MachineTask? task)
    {
        var when = duringStartup ? " during start-up" : "";
        return task?.Reason switch
        {
            TaskReasons.HealthCheckFailed => duringStartup ? "the engine did not become ready before its start-up timeout" : "the engine stopped answering its health check",
            TaskReasons.Failed or TaskReasons.Completed when task.ExitCode is { } code => $"the engine exited{when} (exit code {code})",
            TaskReasons.Failed => $"the engine could not be started{when}",
            TaskReasons.Completed => $"the engine exited{when}",
            _ => $"the engine's task ended{when}",
        };
    }

    private static string Detail(params (string Name, object? Value)[] fields)
    {
        using var buffer = new MemoryStream();
        using (var writer = new Utf8JsonWriter(buffer))
        {
            writer.WriteStartObject();
            foreach (var (name, value) in fields)
            {
                switch (value)
                {
                    case null: writer.WriteNull(name); break;
                    case int i: writer.WriteNumber(name, i); break;
                    case double d: writer.WriteNumber(name, d); break;
                    case bool b: writer.WriteBoolean(name, b); break;
                    case Guid g: writer.WriteString(name, g); break;
                    default: writer.WriteString(name, value.ToString()); break;
                }
            }

            writer.WriteEndObject();
        }

        return Encoding.UTF8.GetString(buffer.ToArray());
    }

    private static string Truncate(string value, int length) => value.Length <= length ? value : value[..length];

    private sealed class Tally
    {
        public int Placed;
        public int Drained;
        public int Stopped;
    }

    private sealed class LeaseLostException : Exception;
}

/// <summary>Some deployments could not be converged this round (each is logged with its id); the round shows as failing in <c>/readyz</c>.</summary>
/// The last failure is kept as the inner exception for a debugger, never logged (its message could quote data).
public sealed class SchedulerRoundException(int failures, Exception? last) : Exception($"{failures} deployment(s) could not be converged this round", last);
