using System.Text.Json;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using Sluice.Audit;
using Sluice.Compute.Protocol;
using Sluice.Hosting;
using Sluice.Storage;

namespace Sluice.Compute;

public sealed record MachineView(
    Guid Id, Guid? OrganizationId, string Hostname, string ServingUrl, string CertificateSha256, string State, string Liveness,
    MachineInventory Inventory, string AgentVersion, IReadOnlyDictionary<string, string> Labels, bool CredentialRevoked,
    DateTimeOffset JoinedAt, DateTimeOffset? LastHeartbeatAt, DateTimeOffset StateChangedAt, DateTimeOffset LivenessChangedAt);

public sealed record MachineEventView(DateTimeOffset At, string Kind, string? Detail);

public sealed record JoinTokenView(
    Guid Id, Guid? OrganizationId, string? Description, string Status, string CreatedBy, DateTimeOffset CreatedAt, DateTimeOffset ExpiresAt,
    DateTimeOffset? UsedAt, Guid? MachineId, DateTimeOffset? RevokedAt);

/// <summary><c>organizationId</c> null: the platform pool (operators only). <c>ttlSeconds</c> may only shorten the default.</summary>
public sealed record CreateJoinTokenRequest(Guid? OrganizationId, int? TtlSeconds, string? Description);

/// <summary>The token is shown here once; only its hash is kept.</summary>
public sealed record CreatedJoinToken(string Token, JoinTokenView Details);

/// <summary>Labels to set (a value) or remove (null).</summary>
public sealed record UpdateLabelsRequest(Dictionary<string, string?>? Labels);

/// <summary>Machines and join tokens for operators and organization admins; every change is audited in its own transaction.</summary>
public sealed class MachineAdmin(SluiceDbContext db, AuditLog audit, AuditActor actor, IOptions<ComputeOptions> options, TimeProvider time)
{
    public const string Cordon = "cordon";
    public const string Uncordon = "uncordon";
    public const string Drain = "drain";

    public async Task<List<MachineView>> ListAsync(ComputeCaller caller, Guid? organizationId, CancellationToken cancellationToken)
    {
        if (!caller.IsOperator)
        {
            await caller.EnsureAdminAsync(db, organizationId, "organization", cancellationToken);
        }

        var query = db.Machines.AsNoTracking();
        if (organizationId is { } org)
        {
            query = query.Where(m => m.OrganizationId == org);
        }

        return (await query.OrderBy(m => m.JoinedAt).ToListAsync(cancellationToken)).Select(View).ToList();
    }

    public async Task<MachineView> GetAsync(ComputeCaller caller, Guid id, CancellationToken cancellationToken) =>
        View(await FindAsync(caller, id, cancellationToken));

    public async Task<List<MachineEventView>> EventsAsync(ComputeCaller caller, Guid id, int? limit, CancellationToken cancellationToken)
    {
        await FindAsync(caller, id, cancellationToken);
        var take = Math.Clamp(limit ?? 100, 1, 1000);
        return await db.MachineEvents.AsNoTracking().Where(e => e.MachineId == id).OrderByDescending(e => e.At).ThenByDescending(e => e.Id).Take(take)
            .Select(e => new MachineEventView(e.At, e.Kind, e.Detail)).ToListAsync(cancellationToken);
    }

    public async Task<MachineView> UpdateLabelsAsync(ComputeCaller caller, Guid id, UpdateLabelsRequest request, CancellationToken cancellationToken)
    {
        var machine = await FindAsync(caller, id, cancellationToken, tracked: true);
        if (request.Labels is null || request.Labels.Count == 0)
        {
            await audit.RefuseAsync("machine.labels_update", $"machine:{id}", machine.OrganizationId, cancellationToken);
            throw ApiProblem.Invalid("labels", "give at least one label to set (a value) or remove (null)");
        }

        var labels = ParseLabels(machine.Labels);
        foreach (var (key, value) in request.Labels)
        {
            if (value is null)
            {
                labels.Remove(key);
            }
            else
            {
                labels[key] = value;
            }
        }

        var errors = new FieldErrors();
        ProtocolValidation.Labels(errors, "labels", labels);
        if (errors.Any)
        {
            await audit.RefuseAsync("machine.labels_update", $"machine:{id}", machine.OrganizationId, cancellationToken);
            errors.ThrowIfAny();
        }

        machine.Labels = LabelsJson(labels);
        db.MachineEvents.Add(Event(id, time.GetUtcNow(), MachineEventKinds.LabelsChanged, string.Join(",", request.Labels.Keys.Order(StringComparer.Ordinal)) is var keys && keys.Length > 200 ? keys[..200] : keys));
        audit.Record("machine.labels_update", $"machine:{id}", machine.OrganizationId);
        await db.SaveChangesAsync(cancellationToken);
        return View(machine);
    }

    /// <summary>cordon: no new tasks; drain: no new tasks, and the scheduler moves work away; uncordon: ready again.</summary>
    public async Task<MachineView> ChangeStateAsync(ComputeCaller caller, Guid id, string change, CancellationToken cancellationToken)
    {
        var machine = await FindAsync(caller, id, cancellationToken, tracked: true);
        var target = change switch
        {
            Cordon => MachineStates.Cordoned,
            Uncordon => MachineStates.Ready,
            Drain => MachineStates.Draining,
            _ => throw ApiProblem.Invalid("change", "must be cordon, uncordon or drain"),
        };
        if (machine.State == MachineStates.Decommissioned)
        {
            await audit.RefuseAsync($"machine.{change}", $"machine:{id}", machine.OrganizationId, cancellationToken);
            throw ApiProblem.Conflict("state", "the machine is decommissioned, which is final");
        }

        if (machine.State != target)
        {
            var now = time.GetUtcNow();
            db.MachineEvents.Add(Event(id, now, MachineEventKinds.StateChanged, $"{machine.State} -> {target}"));
            machine.State = target;
            machine.StateChangedAt = now;
        }

        audit.Record($"machine.{change}", $"machine:{id}", machine.OrganizationId);
        await db.SaveChangesAsync(cancellationToken);
        return View(machine);
    }

    /// <summary>Final: the credential is revoked, every task is stopped, and the agent's next call gets 410.</summary>
    public async Task<MachineView> DecommissionAsync(ComputeCaller caller, Guid id, CancellationToken cancellationToken)
    {
        var machine = await FindAsync(caller, id, cancellationToken, tracked: true);
        if (machine.State == MachineStates.Decommissioned)
        {
            return View(machine);
        }

        var now = time.GetUtcNow();
        await using var transaction = await db.Database.BeginTransactionAsync(cancellationToken);
        db.MachineEvents.Add(Event(id, now, MachineEventKinds.StateChanged, $"{machine.State} -> {MachineStates.Decommissioned}"));
        machine.State = MachineStates.Decommissioned;
        machine.StateChangedAt = now;
        machine.CredentialRevokedAt ??= now;
        foreach (var task in await db.MachineTasks.Where(t => t.MachineId == id && (t.Desired == TaskDesired.Running || t.State != TaskStates.Terminated)).ToListAsync(cancellationToken))
        {
            task.Desired = TaskDesired.Stopped;
            if (task.State != TaskStates.Terminated)
            {
                task.State = TaskStates.Terminated;
                task.Reason = TaskReasons.Stopped;
            }

            task.UpdatedAt = now;
        }

        audit.Record("machine.decommission", $"machine:{id}", machine.OrganizationId);
        await db.SaveChangesAsync(cancellationToken);
        await transaction.CommitAsync(cancellationToken);
        return View(machine);
    }

    /// <summary>The agent's next heartbeat is refused with 401; the machine joins again with a new token.</summary>
    public async Task<MachineView> RevokeCredentialAsync(ComputeCaller caller, Guid id, CancellationToken cancellationToken)
    {
        var machine = await FindAsync(caller, id, cancellationToken, tracked: true);
        if (machine.CredentialRevokedAt is null)
        {
            var now = time.GetUtcNow();
            machine.CredentialRevokedAt = now;
            db.MachineEvents.Add(Event(id, now, MachineEventKinds.CredentialRevoked, null));
        }

        audit.Record("machine.credential_revoke", $"machine:{id}", machine.OrganizationId);
        await db.SaveChangesAsync(cancellationToken);
        return View(machine);
    }

    public async Task<CreatedJoinToken> CreateJoinTokenAsync(ComputeCaller caller, CreateJoinTokenRequest request, CancellationToken cancellationToken)
    {
        try
        {
            if (request.OrganizationId is null && !caller.IsOperator)
            {
                throw ApiProblem.Forbidden("Only platform operators create join tokens for the platform pool; give organizationId for your organization's fleet.");
            }

            await caller.EnsureAdminAsync(db, request.OrganizationId, "organization", cancellationToken);
        }
        catch (ApiProblemException)
        {
            // Someone tried to let a machine in without the right to: worth a line in the log of record.
            await audit.RefuseAsync("machine.join_token_create", "join_token:new", null, cancellationToken);
            throw;
        }

        if (request.OrganizationId is { } org && !await db.Organizations.AnyAsync(o => o.Id == org, cancellationToken))
        {
            throw ApiProblem.NotFound("organization");
        }

        var ttl = options.Value.JoinTokenTtl;
        var errors = new FieldErrors();
        if (request.TtlSeconds is { } seconds)
        {
            if (seconds < 60 || seconds > ttl.TotalSeconds)
            {
                errors.Add("ttlSeconds", $"must be between 60 and {(long)ttl.TotalSeconds} (Compute:JoinTokenTtl)");
            }
            else
            {
                ttl = TimeSpan.FromSeconds(seconds);
            }
        }

        if (request.Description is { } description && (description.Length > 200 || description.Any(char.IsControl)))
        {
            errors.Add("description", "must be at most 200 characters without control characters");
        }

        if (errors.Any)
        {
            await audit.RefuseAsync("machine.join_token_create", "join_token:new", request.OrganizationId, cancellationToken);
            errors.ThrowIfAny();
        }

        var now = time.GetUtcNow();
        var secret = MachineSecrets.NewJoinToken();
        var token = new MachineJoinToken
        {
            Id = Guid.CreateVersion7(now),
            OrganizationId = request.OrganizationId,
            TokenHash = MachineSecrets.Hash(secret),
            Description = request.Description,
            CreatedBy = actor.Id,
            CreatedAt = now,
            ExpiresAt = now + ttl,
        };
        db.MachineJoinTokens.Add(token);
        audit.Record("machine.join_token_create", $"join_token:{token.Id}", token.OrganizationId);
        await db.SaveChangesAsync(cancellationToken);
        return new CreatedJoinToken(secret, View(token, now));
    }

    public async Task<List<JoinTokenView>> JoinTokensAsync(ComputeCaller caller, Guid? organizationId, CancellationToken cancellationToken)
    {
        if (!caller.IsOperator)
        {
            await caller.EnsureAdminAsync(db, organizationId, "organization", cancellationToken);
        }

        var query = db.MachineJoinTokens.AsNoTracking();
        if (organizationId is { } org)
        {
            query = query.Where(t => t.OrganizationId == org);
        }

        var now = time.GetUtcNow();
        return (await query.OrderByDescending(t => t.CreatedAt).Take(1000).ToListAsync(cancellationToken)).Select(t => View(t, now)).ToList();
    }

    public async Task<JoinTokenView> RevokeJoinTokenAsync(ComputeCaller caller, Guid id, CancellationToken cancellationToken)
    {
        var token = await db.MachineJoinTokens.SingleOrDefaultAsync(t => t.Id == id, cancellationToken) ?? throw ApiProblem.NotFound("join token");
        await caller.EnsureAdminAsync(db, token.OrganizationId, "join token", cancellationToken);
        var now = time.GetUtcNow();
        if (token.UsedAt is not null)
        {
            await audit.RefuseAsync("machine.join_token_revoke", $"join_token:{id}", token.OrganizationId, cancellationToken);
            throw ApiProblem.Conflict("token", "was already used; revoke the machine's credential instead");
        }

        if (token.RevokedAt is null)
        {
            token.RevokedAt = now;
            token.RevokedBy = actor.Id;
        }

        audit.Record("machine.join_token_revoke", $"join_token:{id}", token.OrganizationId);
        await db.SaveChangesAsync(cancellationToken);
        return View(token, now);
    }

    internal async Task<Machine> FindAsync(ComputeCaller caller, Guid id, CancellationToken cancellationToken, bool tracked = false)
    {
        var query = tracked ? db.Machines : db.Machines.AsNoTracking();
        var machine = await query.SingleOrDefaultAsync(m => m.Id == id, cancellationToken) ?? throw ApiProblem.NotFound("machine");
        if (!caller.IsOperator && machine.OrganizationId is null)
        {
            throw ApiProblem.NotFound("machine"); // the platform pool is the operators' alone
        }

        await caller.EnsureAdminAsync(db, machine.OrganizationId, "machine", cancellationToken);
        return machine;
    }

    internal static MachineEvent Event(Guid machineId, DateTimeOffset at, string kind, string? detail) =>
        new() { Id = Guid.CreateVersion7(at), MachineId = machineId, At = at, Kind = kind, Detail = detail };

    internal static string LabelsJson(IReadOnlyDictionary<string, string> labels) =>
        JsonSerializer.Serialize(labels, ComputeJson.Default.IReadOnlyDictionaryStringString);

    internal static Dictionary<string, string> ParseLabels(string json) =>
        new(JsonSerializer.Deserialize(json, ComputeJson.Default.IReadOnlyDictionaryStringString) ?? new Dictionary<string, string>(), StringComparer.Ordinal);

    public static MachineView View(Machine m) => new(
        m.Id, m.OrganizationId, m.Hostname, m.ServingUrl, m.CertificateSha256, m.State, m.Liveness,
        JsonSerializer.Deserialize(m.Inventory, ComputeJson.Default.MachineInventory)!, m.AgentVersion, ParseLabels(m.Labels), m.CredentialRevokedAt is not null,
        m.JoinedAt, m.LastHeartbeatAt, m.StateChangedAt, m.LivenessChangedAt);

    private static JoinTokenView View(MachineJoinToken t, DateTimeOffset now) => new(
        t.Id, t.OrganizationId, t.Description,
        t.UsedAt is not null ? "used" : t.RevokedAt is not null ? "revoked" : t.ExpiresAt <= now ? "expired" : "active",
        t.CreatedBy, t.CreatedAt, t.ExpiresAt, t.UsedAt, t.MachineId, t.RevokedAt);
}
