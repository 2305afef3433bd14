using System.Text.Json;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using Sluice.Audit;
using Sluice.Compute.Protocol;
using Sluice.Crypto;
using Sluice.Hosting;
using Sluice.Storage;

namespace Sluice.Compute;

/// <summary>
/// The two calls an agent makes: the join exchange (a one-time token for a machine identity) and the heartbeat
/// (telemetry and task states up, the machine's whole desired state down). Both refuse bad input before writing
/// anything, and audit the refusal.
/// </summary>
public sealed class AgentExchange(
    SluiceDbContext db,
    AuditLog audit,
    AuditActor actor,
    SecretBox secrets,
    HeartbeatRecorder recorder,
    RefusalThrottle throttle,
    ITelemetrySink telemetry,
    IOptions<ComputeOptions> options,
    TimeProvider time,
    ILogger<AgentExchange> logger)
{
    public const string JoinAction = "machine.join";
    public const string HeartbeatAction = "machine.heartbeat";

    public async Task<JoinResponse> JoinAsync(JoinRequest request, CancellationToken cancellationToken)
    {
        if (!MachineSecrets.IsWellFormedJoinToken(request.Token))
        {
            await RefuseJoinAsync("join_token:malformed", null, "malformed", cancellationToken);
            throw ApiProblem.Invalid("token", "is not a join token (sjt_…); copy it exactly as it was shown when it was created");
        }

        var errors = new FieldErrors();
        ProtocolValidation.Join(request, errors, options.Value.AllowLoopbackServing);
        if (errors.Any)
        {
            await RefuseJoinAsync("join_token:unverified", null, "invalid request", cancellationToken);
            errors.ThrowIfAny();
        }

        var now = time.GetUtcNow();
        var hash = MachineSecrets.Hash(request.Token);
        var machineId = Guid.CreateVersion7(now);
        await using var transaction = await db.Database.BeginTransactionAsync(cancellationToken);

        // The consuming update comes first, so it takes the write lock (SQLite) or the row lock (PostgreSQL) before
        // anything is read: of two joins with one token, exactly one sees a row change.
        var consumed = await db.MachineJoinTokens
            .Where(t => t.TokenHash == hash && t.UsedAt == null && t.RevokedAt == null && t.ExpiresAt > now)
            .ExecuteUpdateAsync(set => set.SetProperty(t => t.UsedAt, now).SetProperty(t => t.MachineId, machineId), cancellationToken);
        if (consumed != 1)
        {
            await transaction.RollbackAsync(cancellationToken);
            var existing = await db.MachineJoinTokens.AsNoTracking().SingleOrDefaultAsync(t => t.TokenHash == hash, cancellationToken);
            var (reason, message) = existing switch
            {
                null => ("unknown", "The join token is not valid. Ask an operator or organization admin for a new one."),
                { RevokedAt: not null } => ("revoked", "The join token was revoked. Ask for a new one."),
                { UsedAt: not null } => ("used", "The join token was already used: each token joins one machine. Ask for a new one."),
                _ => ("expired", "The join token has expired. Ask for a new one."),
            };
            await RefuseJoinAsync(existing is null ? "join_token:unknown" : $"join_token:{existing.Id}", existing?.OrganizationId, reason, cancellationToken);
            throw new ApiProblemException(StatusCodes.Status401Unauthorized, "The join token was refused.", message);
        }

        var token = await db.MachineJoinTokens.AsNoTracking().SingleAsync(t => t.TokenHash == hash, cancellationToken);
        var credential = MachineSecrets.NewCredential(machineId);
        var servingToken = MachineSecrets.NewServingToken();
        var interval = options.Value.HeartbeatInterval;
        db.Machines.Add(new Machine
        {
            Id = machineId,
            OrganizationId = token.OrganizationId,
            Hostname = request.Hostname,
            ServingUrl = request.ServingUrl,
            CertificateSha256 = request.CertificateSha256,
            CredentialHash = MachineSecrets.Hash(credential),
            ServingTokenSealed = secrets.Seal(servingToken, ServingTokenBinding(machineId)),
            State = MachineStates.Ready,
            Liveness = MachineLiveness.Starting,
            Inventory = JsonSerializer.Serialize(request.Inventory, ComputeJson.Default.MachineInventory),
            AgentVersion = request.AgentVersion,
            Labels = MachineAdmin.LabelsJson(request.Labels ?? new Dictionary<string, string>()),
            JoinTokenId = token.Id,
            JoinedAt = now,
            ContactAt = now + options.Value.StartingGrace,
            StateChangedAt = now,
            LivenessChangedAt = now,
        });
        db.MachineEvents.Add(MachineAdmin.Event(machineId, now, MachineEventKinds.Joined, token.OrganizationId is null ? "platform pool" : "organization fleet"));
        audit.Record(JoinAction, $"machine:{machineId}", token.OrganizationId, actorOverride: $"join_token:{token.Id}");
        await db.SaveChangesAsync(cancellationToken);
        await transaction.CommitAsync(cancellationToken);
        ComputeLog.Joined(logger, machineId, token.OrganizationId is null ? "platform pool" : "organization fleet");
        return new JoinResponse
        {
            MachineId = machineId.ToString(),
            Credential = credential,
            ServingToken = servingToken,
            OrganizationId = token.OrganizationId?.ToString(),
            HeartbeatIntervalSeconds = (int)Math.Ceiling(interval.TotalSeconds),
        };
    }

    /// <summary>The machine a bearer credential belongs to, or a 401/410 refusal (audited, throttled).</summary>
    public async Task<Machine> AuthenticateAsync(string? authorization, CancellationToken cancellationToken)
    {
        var presented = authorization is not null && authorization.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase)
            ? authorization["Bearer ".Length..].Trim()
            : null;
        if (!MachineSecrets.TryParseCredential(presented, out var machineId))
        {
            await RefuseHeartbeatAsync(null, "missing or malformed credential", cancellationToken);
            throw Unauthorized("Send the machine credential from 'sluice agent join' as 'Authorization: Bearer smc_…'.");
        }

        var machine = await db.Machines.AsNoTracking().SingleOrDefaultAsync(m => m.Id == machineId, cancellationToken);
        if (machine is null || !MachineSecrets.HashEquals(MachineSecrets.Hash(presented!), machine.CredentialHash))
        {
            await RefuseHeartbeatAsync(null, "unknown credential", cancellationToken);
            throw Unauthorized("The machine credential is not valid. Join the machine again with a new join token.");
        }

        if (machine.State == MachineStates.Decommissioned)
        {
            await RefuseHeartbeatAsync(machine, "machine decommissioned", cancellationToken);
            throw new ApiProblemException(StatusCodes.Status410Gone, "The machine was decommissioned.",
                "This machine was decommissioned and can no longer connect. Stop the agent; to use the machine again, join it with a new join token.");
        }

        if (machine.CredentialRevokedAt is not null)
        {
            await RefuseHeartbeatAsync(machine, "credential revoked", cancellationToken);
            throw Unauthorized("The machine credential was revoked. Join the machine again with a new join token.");
        }

        return machine;
    }

    public async Task<HeartbeatResponse> HeartbeatAsync(Machine machine, HeartbeatRequest request, CancellationToken cancellationToken)
    {
        var now = time.GetUtcNow();
        var errors = new FieldErrors();
        if (request.Inventory is not null)
        {
            ProtocolValidation.Inventory(errors, "inventory", request.Inventory);
        }

        var inventory = request.Inventory is not null && !errors.Any
            ? request.Inventory
            : JsonSerializer.Deserialize(machine.Inventory, ComputeJson.Default.MachineInventory)!;
        ProtocolValidation.Heartbeat(request, inventory, now, errors);
        // The tasks the reply lists and the ones reported: not the machine's whole history of stopped tasks.
        var reported = (request.Tasks ?? []).Select(t => Guid.TryParse(t?.TaskId, out var id) ? id : Guid.Empty).Where(id => id != Guid.Empty).Distinct().Take(ProtocolValidation.MaxTasks + 1).ToList();
        var tasks = await db.MachineTasks
            .Where(t => t.MachineId == machine.Id && (t.Desired == TaskDesired.Running || t.State != TaskStates.Terminated || reported.Contains(t.Id)))
            .ToListAsync(cancellationToken);
        ProtocolValidation.Tasks(request.Tasks, tasks.Select(t => t.Id).ToHashSet(), errors);
        if (errors.Any)
        {
            await RefuseHeartbeatAsync(machine, "invalid heartbeat", cancellationToken);
            errors.ThrowIfAny();
        }

        var tracked = db.Machines.Attach(machine).Entity;
        if (request.Inventory is not null)
        {
            var json = JsonSerializer.Serialize(request.Inventory, ComputeJson.Default.MachineInventory);
            if (json != tracked.Inventory)
            {
                tracked.Inventory = json;
            }
        }

        if (request.AgentVersion != tracked.AgentVersion)
        {
            tracked.AgentVersion = request.AgentVersion;
        }

        foreach (var report in request.Tasks ?? [])
        {
            var task = tasks.First(t => t.Id == Guid.Parse(report.TaskId));
            if (task.Reason == TaskReasons.MachineLost && report.State != TaskStates.Terminated)
            {
                continue; // declared lost while the machine was away: it stays lost until the agent has stopped it
            }

            // Written only when something changed, so a steady machine costs no task writes. Times are compared as the
            // database keeps them (microseconds): the agent's have 100 ns ticks.
            var startedAt = Microseconds(report.StartedAt);
            var readyAt = Microseconds(report.ReadyAt);
            if (task.State != report.State || task.Reason != report.Reason || task.ReportedGeneration != report.Generation
                || task.Restarts != report.Restarts || task.ExitCode != report.ExitCode || task.StartedAt != startedAt || task.ReadyAt != readyAt
                || task.InFlight != report.InFlight || task.QueueDepth != report.QueueDepth)
            {
                task.State = report.State;
                task.Reason = report.Reason;
                task.ReportedGeneration = report.Generation;
                task.Restarts = report.Restarts;
                task.ExitCode = report.ExitCode;
                task.StartedAt = startedAt;
                task.ReadyAt = readyAt;
                task.InFlight = report.InFlight; // the autoscaler's agent-side load (Deployments/Autoscaling)
                task.QueueDepth = report.QueueDepth;
                task.ReportedAt = now;
            }
        }

        var reportedIds = reported.ToHashSet();
        foreach (var task in tasks)
        {
            if (task.Desired == TaskDesired.Running && task.State == TaskStates.Terminated && task.ReportedGeneration == task.Generation
                && task.Reason is TaskReasons.Completed or TaskReasons.Failed or TaskReasons.HealthCheckFailed)
            {
                // Finished for good (a job that ended, a server that never became ready): out of the desired set, so no
                // later agent (after a restart or an upgrade) runs it again; its GPUs are free once it is terminated.
                task.Desired = TaskDesired.Stopped;
                task.UpdatedAt = now;
            }
            else if (task.Desired == TaskDesired.Stopped && task.State != TaskStates.Terminated && !reportedIds.Contains(task.Id))
            {
                // Stopped and no longer held by the machine (it never got it, or stopped it and forgot it): its GPUs are free.
                task.State = TaskStates.Terminated;
                task.Reason ??= TaskReasons.Stopped;
                task.ReportedAt = now;
            }
        }

        if (db.ChangeTracker.HasChanges())
        {
            await db.SaveChangesAsync(cancellationToken);
        }

        if (machine.Liveness != MachineLiveness.Alive)
        {
            // Back (or first) contact: written now, with its event, and only if no other replica did it first.
            var previous = machine.Liveness;
            var changed = await db.Machines
                .Where(m => m.Id == machine.Id && m.Liveness == previous && m.State != MachineStates.Decommissioned)
                .ExecuteUpdateAsync(set => set.SetProperty(m => m.Liveness, MachineLiveness.Alive).SetProperty(m => m.LivenessChangedAt, now)
                    .SetProperty(m => m.ContactAt, now).SetProperty(m => m.LastHeartbeatAt, now), cancellationToken);
            if (changed == 1)
            {
                db.ChangeTracker.Clear();
                db.MachineEvents.Add(MachineAdmin.Event(machine.Id, now, MachineEventKinds.LivenessChanged, $"{previous} -> {MachineLiveness.Alive}"));
                await db.SaveChangesAsync(cancellationToken);
                ComputeLog.LivenessChanged(logger, machine.Id, MachineLiveness.Alive, previous);
            }
        }
        else
        {
            recorder.Touch(machine.Id, now);
        }

        telemetry.Record(machine.Id.ToString(), request.Telemetry, now);
        return new HeartbeatResponse
        {
            MachineState = machine.State,
            Tasks = tasks.Where(t => t.Desired == TaskDesired.Running).Select(OpenSpec).ToList(),
            HeartbeatIntervalSeconds = (int)Math.Ceiling(options.Value.HeartbeatInterval.TotalSeconds),
        };
    }

    private static DateTimeOffset? Microseconds(DateTimeOffset? at) =>
        at is { } value ? new DateTimeOffset(value.Ticks - (value.Ticks % 10), value.Offset) : null;

    /// <summary>A heartbeat body that could not be read (not JSON, a field missing or of the wrong type): audited as a refusal.</summary>
    public Task RefuseUnreadableAsync(Machine machine, CancellationToken cancellationToken) =>
        RefuseHeartbeatAsync(machine, "unreadable heartbeat", cancellationToken);

    /// <summary>The task's spec, secrets included, opened for its own machine only (the seal is bound to task and machine).</summary>
    internal TaskSpec OpenSpec(MachineTask task)
    {
        var spec = JsonSerializer.Deserialize(secrets.Open(task.SpecSealed, MachineTasks.SpecBinding(task.Id, task.MachineId)), ComputeJson.Default.TaskSpec)!;
        return spec with { TaskId = task.Id.ToString(), Generation = task.Generation, GpuIndices = task.Gpus() };
    }

    public static string ServingTokenBinding(Guid machineId) => $"machine-serving-token:{machineId}";

    /// <summary>
    /// The token the gateway presents to this machine's agent (<c>Authorization: Bearer sst_…</c>), for the serving client
    /// (Compute/Serving); with <see cref="Machine.ServingUrl"/> and the pinned <see cref="Machine.CertificateSha256"/>.
    /// Keep it in memory only.
    /// </summary>
    public static string OpenServingToken(SecretBox secrets, Machine machine) => secrets.Open(machine.ServingTokenSealed, ServingTokenBinding(machine.Id));

    private static ApiProblemException Unauthorized(string detail) =>
        new(StatusCodes.Status401Unauthorized, "The machine credential was refused.", detail);

    private async Task RefuseJoinAsync(string target, Guid? organizationId, string reason, CancellationToken cancellationToken)
    {
        ComputeLog.JoinRefused(logger, reason);
        if (throttle.ShouldAudit($"join:{target}:{actor.SourceNetwork}"))
        {
            await audit.RefuseAsync(JoinAction, target, organizationId, cancellationToken, actorOverride: "anonymous");
        }
    }

    private async Task RefuseHeartbeatAsync(Machine? machine, string reason, CancellationToken cancellationToken)
    {
        ComputeLog.HeartbeatRefused(logger, machine?.Id, reason);
        var key = machine is null ? $"heartbeat:network:{actor.SourceNetwork}" : $"heartbeat:machine:{machine.Id}";
        if (throttle.ShouldAudit(key))
        {
            await audit.RefuseAsync(HeartbeatAction, machine is null ? "machine:unknown" : $"machine:{machine.Id}", machine?.OrganizationId, cancellationToken,
                actorOverride: machine is null ? "anonymous" : $"machine:{machine.Id}");
        }
    }
}
