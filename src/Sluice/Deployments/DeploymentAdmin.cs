using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using Sluice.Audit;
using Sluice.Compute.Protocol;
using Sluice.Crypto;
using Sluice.Gateway;
using Sluice.Hosting;
using Sluice.Storage;

namespace Sluice.Deployments;

/// <summary>
/// <c>POST /api/v1/deployments</c>. <c>artifactKind</c> defaults from <c>artifact</c> (absent: none; an absolute path:
/// path; otherwise: hub). Omitted scaling fields take the defaults in <see cref="DeploymentAdmin"/>. Secrets are
/// environment variables for the engine, kept sealed and never shown again (only their names).
/// </summary>
public sealed record CreateDeploymentRequest(
    Guid? OrganizationId, string? Name, string? Description, string? Engine, string? ArtifactKind, string? Artifact, string? GpuType, int? GpusPerReplica,
    int? MinReplicas, int? MaxReplicas, int? TargetConcurrency, int? IdleTimeoutSeconds, int? ScaleDownDelaySeconds, DeploymentLaunchSettings? Launch,
    Dictionary<string, string>? Secrets);

/// <summary>
/// <c>PATCH /api/v1/deployments/{id}</c>: only the fields given change. <c>gpuType</c> "" clears it (any GPU);
/// <c>launch</c> replaces the launch settings whole; <c>secrets</c> sets (a value) or removes (null) each name given.
/// </summary>
public sealed record UpdateDeploymentRequest(
    string? Name, string? Description, string? Engine, string? ArtifactKind, string? Artifact, string? GpuType, int? GpusPerReplica, int? MinReplicas,
    int? MaxReplicas, int? TargetConcurrency, int? IdleTimeoutSeconds, int? ScaleDownDelaySeconds, DeploymentLaunchSettings? Launch,
    Dictionary<string, string?>? Secrets);

/// <summary><c>POST /api/v1/deployments/{id}/publish</c>: per-token prices in micro-units per million tokens.</summary>
public sealed record PublishDeploymentRequest(decimal? InputPerMillionMicros, decimal? OutputPerMillionMicros);

public sealed record DeploymentReplicaView(Guid Id, Guid MachineId, string State, int Generation, bool ColdStart, DateTimeOffset CreatedAt, DateTimeOffset? ReadyAt);

/// <summary>A deployment as the API shows it: its spec and state, the names of its secrets (never their values), and its live replicas.</summary>
public sealed record DeploymentView(
    Guid Id, Guid OrganizationId, string Name, string? Description, string Engine, string ArtifactKind, string? Artifact, string? GpuType, int GpusPerReplica,
    int MinReplicas, int MaxReplicas, int TargetConcurrency, int IdleTimeoutSeconds, int ScaleDownDelaySeconds, DeploymentLaunchSettings Launch,
    IReadOnlyList<string> SecretNames, int Generation, int DesiredReplicas, string Status, string? StatusReason, bool Public, long? InputPerMillionMicros,
    long? OutputPerMillionMicros, string CreatedBy, DateTimeOffset CreatedAt, DateTimeOffset UpdatedAt, IReadOnlyList<DeploymentReplicaView>? Replicas);

public sealed record DeploymentEventView(DateTimeOffset At, string Kind, string? Detail);

/// <summary>
/// Deployments for organization owners and admins (members read) and operators: every change is checked before
/// anything is written, written with its event and its audit entry in one transaction; a refusal writes only its
/// audit entry. The API writes the spec and <see cref="Deployment.DesiredReplicas"/> at create; after that the
/// autoscaler owns the desired count (an update only clamps it into the new bounds) and the scheduler the replicas.
/// </summary>
public sealed partial class DeploymentAdmin(
    SluiceDbContext db, AuditLog audit, AuditActor actor, SecretBox box, Catalog catalog, IDeploymentBilling billing,
    IOptions<DeploymentsOptions> options, TimeProvider time)
{
    public const int DefaultTargetConcurrency = 8;
    public const int DefaultIdleTimeoutSeconds = 300;
    public const int DefaultScaleDownDelaySeconds = 300;
    public const int MaxGpusPerReplica = 8;
    public const int MaxLaunchBytes = 16 * 1024;

    public async Task<DeploymentView> CreateAsync(DeploymentCaller caller, CreateDeploymentRequest request, CancellationToken cancellationToken)
    {
        try
        {
            if (request.OrganizationId is null)
            {
                throw ApiProblem.Invalid("organizationId", "is required: the organization the deployment belongs to");
            }

            await caller.EnsureAsync(db, request.OrganizationId, manage: true, "organization", cancellationToken);
            if (!await db.Organizations.AnyAsync(o => o.Id == request.OrganizationId, cancellationToken))
            {
                throw ApiProblem.NotFound("organization");
            }
        }
        catch (ApiProblemException)
        {
            await audit.RefuseAsync("deployment.create", "deployment:new", request.OrganizationId, cancellationToken);
            throw;
        }

        var org = request.OrganizationId.Value;
        var now = time.GetUtcNow();
        var id = Guid.CreateVersion7(now);
        var errors = new FieldErrors();
        var launch = request.Launch ?? new DeploymentLaunchSettings();
        var min = request.MinReplicas ?? 1;
        var deployment = new Deployment
        {
            Id = id,
            OrganizationId = org,
            Name = request.Name ?? "",
            Description = request.Description,
            Engine = request.Engine ?? "",
            ArtifactKind = request.ArtifactKind ?? DefaultArtifactKind(request.Artifact),
            Artifact = string.IsNullOrEmpty(request.Artifact) ? null : request.Artifact,
            GpuType = string.IsNullOrEmpty(request.GpuType) ? null : request.GpuType,
            GpusPerReplica = request.GpusPerReplica ?? (string.IsNullOrEmpty(request.GpuType) ? 0 : 1),
            MinReplicas = min,
            MaxReplicas = request.MaxReplicas ?? Math.Max(1, min),
            TargetConcurrency = request.TargetConcurrency ?? DefaultTargetConcurrency,
            IdleTimeoutSeconds = request.IdleTimeoutSeconds ?? DefaultIdleTimeoutSeconds,
            ScaleDownDelaySeconds = request.ScaleDownDelaySeconds ?? DefaultScaleDownDelaySeconds,
            LaunchJson = "{}",
            Generation = 1,
            DesiredReplicas = min,
            Status = DeploymentStatuses.Pending,
            CreatedBy = actor.Id,
            CreatedAt = now,
            UpdatedAt = now,
        };

        ValidateSecrets(errors, request.Secrets?.ToDictionary(s => s.Key, s => (string?)s.Value));
        await ValidateAsync(deployment, launch, errors, cancellationToken);
        if (errors.Any)
        {
            await audit.RefuseAsync("deployment.create", "deployment:new", org, cancellationToken);
            errors.ThrowIfAny();
        }

        await EnsureCoveredAsync(deployment, "deployment.create", "deployment:new", cancellationToken);
        deployment.LaunchJson = LaunchJson(launch);
        deployment.SecretsSealed = DeploymentSecrets.Seal(box, id, request.Secrets);

        await using var transaction = await db.Database.BeginTransactionAsync(cancellationToken);
        await LockOrganizationAsync(org, cancellationToken);
        if (await CollisionAsync(deployment, cancellationToken) is { } collision)
        {
            await transaction.RollbackAsync(cancellationToken);
            await audit.RefuseAsync("deployment.create", "deployment:new", org, cancellationToken);
            throw collision;
        }

        if (await db.Deployments.CountAsync(d => d.OrganizationId == org && d.DeletedAt == null, cancellationToken) >= options.Value.MaxPerOrganization)
        {
            await transaction.RollbackAsync(cancellationToken);
            await audit.RefuseAsync("deployment.create", "deployment:new", org, cancellationToken);
            throw ApiProblem.Conflict("organizationId", $"already has {options.Value.MaxPerOrganization} deployments (Deployments:MaxPerOrganization); delete one first");
        }

        db.Deployments.Add(deployment);
        db.DeploymentEvents.Add(Event(id, now, DeploymentEventKinds.Created, new JsonObject
        {
            ["generation"] = 1, ["desiredReplicas"] = deployment.DesiredReplicas, ["engine"] = deployment.Engine,
        }));
        audit.Record("deployment.create", $"deployment:{id}", org);
        await db.SaveChangesAsync(cancellationToken);
        await transaction.CommitAsync(cancellationToken);
        return View(deployment, []);
    }

    /// <summary>An organization's live deployments (every organization's for an operator who names none).</summary>
    public async Task<List<DeploymentView>> ListAsync(DeploymentCaller caller, Guid? organizationId, CancellationToken cancellationToken)
    {
        if (!caller.IsOperator || organizationId is not null)
        {
            await caller.EnsureAsync(db, organizationId, manage: false, "organization", cancellationToken);
        }

        var query = db.Deployments.AsNoTracking().Where(d => d.DeletedAt == null);
        if (organizationId is { } org)
        {
            query = query.Where(d => d.OrganizationId == org);
        }

        return (await query.OrderBy(d => d.CreatedAt).ThenBy(d => d.Id).Take(1000).ToListAsync(cancellationToken)).Select(d => View(d, null)).ToList();
    }

    public async Task<DeploymentView> GetAsync(DeploymentCaller caller, Guid id, CancellationToken cancellationToken)
    {
        var deployment = await FindAsync(caller, id, manage: false, tracked: false, cancellationToken);
        return View(deployment, await ReplicasAsync(id, cancellationToken));
    }

    public async Task<List<DeploymentEventView>> EventsAsync(DeploymentCaller caller, Guid id, int? limit, CancellationToken cancellationToken)
    {
        await FindAsync(caller, id, manage: false, tracked: false, cancellationToken);
        var take = Math.Clamp(limit ?? 100, 1, 1000);
        return await db.DeploymentEvents.AsNoTracking().Where(e => e.DeploymentId == id).OrderByDescending(e => e.At).ThenByDescending(e => e.Id).Take(take)
            .Select(e => new DeploymentEventView(e.At, e.Kind, e.Detail)).ToListAsync(cancellationToken);
    }

    public async Task<DeploymentView> UpdateAsync(DeploymentCaller caller, Guid id, UpdateDeploymentRequest request, CancellationToken cancellationToken)
    {
        var deployment = await FindForChangeAsync(caller, id, "deployment.update", cancellationToken);
        var target = $"deployment:{id}";
        var errors = new FieldErrors();
        var changed = new List<string>();
        var respec = false;

        if (request.Name is not null && request.Name != deployment.Name)
        {
            errors.Add("name", "cannot change (callers use it as the model id); create a new deployment under the new name");
        }

        if (request.Description is not null && request.Description != deployment.Description)
        {
            deployment.Description = request.Description.Length == 0 ? null : request.Description;
            changed.Add("description");
        }

        void Spec<T>(string field, T? value, T current, Action<T> set)
        {
            if (value is not null && !EqualityComparer<T>.Default.Equals(value, current))
            {
                set(value);
                changed.Add(field);
                respec = true;
            }
        }

        void SpecCount(string field, int? value, int current, Action<int> set)
        {
            if (value is { } v && v != current)
            {
                set(v);
                changed.Add(field);
                respec = true;
            }
        }

        void Scale(string field, int? value, int current, Action<int> set)
        {
            if (value is { } v && v != current)
            {
                set(v);
                changed.Add(field);
            }
        }

        Spec("engine", request.Engine, deployment.Engine, v => deployment.Engine = v);
        if (request.Artifact is not null || request.ArtifactKind is not null)
        {
            var artifact = request.Artifact is null ? deployment.Artifact : request.Artifact.Length == 0 ? null : request.Artifact;
            var kind = request.ArtifactKind ?? (request.Artifact is null ? deployment.ArtifactKind : DefaultArtifactKind(artifact));
            Spec("artifact", artifact ?? "", deployment.Artifact ?? "", _ => deployment.Artifact = artifact);
            Spec("artifactKind", kind, deployment.ArtifactKind, v => deployment.ArtifactKind = v);
        }

        Spec("gpuType", request.GpuType, deployment.GpuType ?? "", v => deployment.GpuType = v.Length == 0 ? null : v);
        SpecCount("gpusPerReplica", request.GpusPerReplica, deployment.GpusPerReplica, v => deployment.GpusPerReplica = v);
        Scale("minReplicas", request.MinReplicas, deployment.MinReplicas, v => deployment.MinReplicas = v);
        Scale("maxReplicas", request.MaxReplicas, deployment.MaxReplicas, v => deployment.MaxReplicas = v);
        Scale("targetConcurrency", request.TargetConcurrency, deployment.TargetConcurrency, v => deployment.TargetConcurrency = v);
        Scale("idleTimeoutSeconds", request.IdleTimeoutSeconds, deployment.IdleTimeoutSeconds, v => deployment.IdleTimeoutSeconds = v);
        Scale("scaleDownDelaySeconds", request.ScaleDownDelaySeconds, deployment.ScaleDownDelaySeconds, v => deployment.ScaleDownDelaySeconds = v);

        var launch = DeploymentLaunch.Settings(deployment);
        if (request.Launch is not null && LaunchJson(request.Launch) != LaunchJson(launch))
        {
            launch = request.Launch;
            changed.Add("launch");
            respec = true;
        }

        Dictionary<string, string>? secrets = null;
        if (request.Secrets is { Count: > 0 })
        {
            var current = DeploymentSecrets.Open(box, deployment);
            secrets = new Dictionary<string, string>(current, StringComparer.Ordinal);
            foreach (var (name, value) in request.Secrets)
            {
                if (value is null)
                {
                    secrets.Remove(name);
                }
                else
                {
                    secrets[name] = value;
                }
            }

            ValidateSecrets(errors, secrets.ToDictionary(s => s.Key, s => (string?)s.Value));
            if (secrets.Count != current.Count || secrets.Any(s => !current.TryGetValue(s.Key, out var v) || v != s.Value))
            {
                changed.Add("secrets");
                respec = true;
            }
            else
            {
                secrets = null;
            }
        }

        await ValidateAsync(deployment, launch, errors, cancellationToken, checkName: false);
        if (errors.Any)
        {
            await audit.RefuseAsync("deployment.update", target, deployment.OrganizationId, cancellationToken);
            errors.ThrowIfAny();
        }

        var suspended = deployment.Status == DeploymentStatuses.Suspended;
        if (changed.Count == 0 && !suspended)
        {
            return View(deployment, await ReplicasAsync(id, cancellationToken)); // a suspended one resumes on any update the wallet covers
        }

        if (changed.Any(f => f is "minReplicas" or "gpuType" or "gpusPerReplica") || respec || suspended)
        {
            await EnsureCoveredAsync(deployment, "deployment.update", target, cancellationToken);
        }

        var now = time.GetUtcNow();
        if (respec)
        {
            deployment.Generation++;
            deployment.LaunchJson = LaunchJson(launch);
            if (secrets is not null)
            {
                deployment.SecretsSealed = DeploymentSecrets.Seal(box, id, secrets);
            }

            if (deployment.Status == DeploymentStatuses.Failed)
            {
                // A new spec gets a new chance: the scheduler places it again.
                deployment.Status = DeploymentStatuses.Pending;
                deployment.StatusReason = null;
            }

            if (deployment.Public)
            {
                // An operator published what it ran then; other organizations' requests do not follow a new engine,
                // image or secret the owner chose since. It is private again until an operator publishes it again.
                deployment.Public = false;
                db.DeploymentEvents.Add(Event(id, now, DeploymentEventKinds.Unpublished, new JsonObject { ["reason"] = "respecified", ["generation"] = deployment.Generation }));
                audit.Record("deployment.unpublish", target, deployment.OrganizationId);
            }
        }

        if (suspended)
        {
            // Suspended for lack of funds; the wallet covers it again (checked above), so it starts again at its minimum.
            deployment.Status = DeploymentStatuses.Pending;
            deployment.StatusReason = null;
            deployment.DesiredReplicas = deployment.MinReplicas;
        }

        // The autoscaler owns the desired count; an update only keeps it within the new bounds.
        deployment.DesiredReplicas = Math.Clamp(deployment.DesiredReplicas, deployment.MinReplicas, deployment.MaxReplicas);
        deployment.UpdatedAt = now;
        db.DeploymentEvents.Add(Event(id, now, DeploymentEventKinds.Updated, new JsonObject
        {
            ["generation"] = deployment.Generation,
            ["fields"] = new JsonArray([.. changed.Select(f => JsonValue.Create(f))]),
            ["desiredReplicas"] = deployment.DesiredReplicas,
        }));
        audit.Record("deployment.update", target, deployment.OrganizationId);
        await db.SaveChangesAsync(cancellationToken);
        return View(deployment, await ReplicasAsync(id, cancellationToken));
    }

    /// <summary>Marks the deployment deleted: the scheduler stops its replicas; it is gone from listings at once.</summary>
    public async Task DeleteAsync(DeploymentCaller caller, Guid id, CancellationToken cancellationToken)
    {
        var deployment = await FindForChangeAsync(caller, id, "deployment.delete", cancellationToken);
        var now = time.GetUtcNow();
        deployment.DeletedAt = now;
        deployment.Status = DeploymentStatuses.Deleting;
        deployment.StatusReason = null;
        deployment.UpdatedAt = now;
        db.DeploymentEvents.Add(Event(id, now, DeploymentEventKinds.Deleted, null));
        audit.Record("deployment.delete", $"deployment:{id}", deployment.OrganizationId);
        await db.SaveChangesAsync(cancellationToken);
    }

    /// <summary>Operators only: every organization sees the deployment in <c>/v1/models</c> and may call it at these prices.</summary>
    public async Task<DeploymentView> PublishAsync(DeploymentCaller caller, Guid id, PublishDeploymentRequest request, CancellationToken cancellationToken)
    {
        var deployment = await FindForOperatorAsync(caller, id, "deployment.publish", cancellationToken);
        var target = $"deployment:{id}";
        var errors = new FieldErrors();
        var input = Micros(request.InputPerMillionMicros, "inputPerMillionMicros", errors);
        var output = Micros(request.OutputPerMillionMicros, "outputPerMillionMicros", errors);
        if (errors.Any)
        {
            await audit.RefuseAsync("deployment.publish", target, deployment.OrganizationId, cancellationToken);
            errors.ThrowIfAny();
        }

        await using var transaction = await db.Database.BeginTransactionAsync(cancellationToken);
        await LockOrganizationAsync(deployment.OrganizationId, cancellationToken);
        var name = deployment.Name;
        if (await db.Deployments.AnyAsync(d => d.Id != id && d.DeletedAt == null && d.Name == name && (d.Public || d.OrganizationId != deployment.OrganizationId), cancellationToken))
        {
            await transaction.RollbackAsync(cancellationToken);
            await audit.RefuseAsync("deployment.publish", target, deployment.OrganizationId, cancellationToken);
            throw ApiProblem.Conflict("name", "another organization's deployment has this name: a public model's name must be unique across the platform");
        }

        var now = time.GetUtcNow();
        deployment.Public = true;
        deployment.InputPerMillionMicros = input;
        deployment.OutputPerMillionMicros = output;
        deployment.UpdatedAt = now;
        db.DeploymentEvents.Add(Event(id, now, DeploymentEventKinds.Published, new JsonObject
        {
            ["inputPerMillionMicros"] = input, ["outputPerMillionMicros"] = output,
        }));
        audit.Record("deployment.publish", target, deployment.OrganizationId);
        await db.SaveChangesAsync(cancellationToken);
        await transaction.CommitAsync(cancellationToken);
        return View(deployment, await ReplicasAsync(id, cancellationToken));
    }

    /// <summary>Operators only: private to its organization again; its per-token prices are kept for a later publish.</summary>
    public async Task<DeploymentView> UnpublishAsync(DeploymentCaller caller, Guid id, CancellationToken cancellationToken)
    {
        var deployment = await FindForOperatorAsync(caller, id, "deployment.unpublish", cancellationToken);
        if (deployment.Public)
        {
            var now = time.GetUtcNow();
            deployment.Public = false;
            deployment.UpdatedAt = now;
            db.DeploymentEvents.Add(Event(id, now, DeploymentEventKinds.Unpublished, null));
        }

        audit.Record("deployment.unpublish", $"deployment:{id}", deployment.OrganizationId);
        await db.SaveChangesAsync(cancellationToken);
        return View(deployment, await ReplicasAsync(id, cancellationToken));
    }

    internal async Task<Deployment> FindAsync(DeploymentCaller caller, Guid id, bool manage, bool tracked, CancellationToken cancellationToken)
    {
        var query = tracked ? db.Deployments : db.Deployments.AsNoTracking();
        var deployment = await query.SingleOrDefaultAsync(d => d.Id == id && d.DeletedAt == null, cancellationToken) ?? throw ApiProblem.NotFound("deployment");
        await caller.EnsureAsync(db, deployment.OrganizationId, manage, "deployment", cancellationToken);
        return deployment;
    }

    private async Task<Deployment> FindForChangeAsync(DeploymentCaller caller, Guid id, string action, CancellationToken cancellationToken)
    {
        try
        {
            return await FindAsync(caller, id, manage: true, tracked: true, cancellationToken);
        }
        catch (ApiProblemException)
        {
            await audit.RefuseAsync(action, $"deployment:{id}", null, cancellationToken);
            throw;
        }
    }

    private async Task<Deployment> FindForOperatorAsync(DeploymentCaller caller, Guid id, string action, CancellationToken cancellationToken)
    {
        if (!caller.IsOperator)
        {
            await audit.RefuseAsync(action, $"deployment:{id}", null, cancellationToken);
            throw ApiProblem.Forbidden("Only platform operators publish deployments to the public catalog.");
        }

        return await FindAsync(caller, id, manage: true, tracked: true, cancellationToken);
    }

    private async Task<List<DeploymentReplicaView>> ReplicasAsync(Guid id, CancellationToken cancellationToken) =>
        await db.DeploymentReplicas.AsNoTracking()
            .Where(r => r.DeploymentId == id && r.State != ReplicaStates.Stopped && r.State != ReplicaStates.Failed)
            .OrderBy(r => r.CreatedAt).ThenBy(r => r.Id)
            .Select(r => new DeploymentReplicaView(r.Id, r.MachineId, r.State, r.Generation, r.ColdStart, r.CreatedAt, r.ReadyAt))
            .ToListAsync(cancellationToken);

    /// <summary>
    /// The wallet's say: the deployment's minimum must be covered (a serverless one, min 0, is asked about one replica:
    /// its first request starts one).
    /// </summary>
    private async Task EnsureCoveredAsync(Deployment deployment, string action, string target, CancellationToken cancellationToken)
    {
        var (covered, refusal) = await billing.CanRunAsync(deployment, Math.Max(1, deployment.MinReplicas), cancellationToken);
        if (!covered)
        {
            await audit.RefuseAsync(action, target, deployment.OrganizationId, cancellationToken);
            var message = refusal ?? "the organization's wallet cannot cover this many replicas' GPU time";
            throw new ApiProblemException(StatusCodes.Status402PaymentRequired, "The wallet cannot cover this deployment.",
                $"minReplicas: {message}; top up the wallet or ask for fewer replicas or GPUs.",
                new Dictionary<string, string[]> { ["minReplicas"] = [message] });
        }
    }

    /// <summary>Takes the organization's row lock (PostgreSQL) or the write lock (SQLite): creates and publishes in one organization take turns, so two cannot claim one name.</summary>
    private Task<int> LockOrganizationAsync(Guid org, CancellationToken cancellationToken) =>
        db.Organizations.Where(o => o.Id == org).ExecuteUpdateAsync(set => set.SetProperty(o => o.Name, o => o.Name), cancellationToken);

    private async Task<ApiProblemException?> CollisionAsync(Deployment deployment, CancellationToken cancellationToken)
    {
        var name = deployment.Name;
        if (await db.Deployments.AnyAsync(d => d.Id != deployment.Id && d.DeletedAt == null && d.Name == name && (d.OrganizationId == deployment.OrganizationId || d.Public), cancellationToken))
        {
            return ApiProblem.Conflict("name", "another deployment of this organization (or a public one) already has this name");
        }

        return null;
    }

    private async Task ValidateAsync(Deployment d, DeploymentLaunchSettings launch, FieldErrors errors, CancellationToken cancellationToken, bool checkName = true)
    {
        var limits = options.Value;
        // An update keeps the name: a catalog model added since does not lock the deployment.
        if (checkName && !NamePattern().IsMatch(d.Name))
        {
            errors.Add("name", "must be 1-100 characters of a-z, 0-9, '-', '.', '_', '/', ':', starting with a letter or digit");
        }
        else if (checkName && (catalog.Find(d.Name) is not null || d.Name is Catalog.EchoModelId or Catalog.BuiltInEmbeddingsModelId
            || await db.CatalogModels.AnyAsync(m => m.Id == d.Name, cancellationToken)
            || await db.CatalogModelAliases.AnyAsync(a => a.Alias == d.Name, cancellationToken)))
        {
            errors.Add("name", "is a catalog model's id or alias; a deployment's name must not collide with the catalog");
        }

        if (d.Description is { } description && (description.Length > 500 || description.Any(char.IsControl)))
        {
            errors.Add("description", "must be at most 500 characters without control characters");
        }

        var engineKnown = DeploymentEngines.All.Contains(d.Engine);
        if (!engineKnown)
        {
            errors.Add("engine", $"must be one of {string.Join(", ", DeploymentEngines.All)}");
        }

        if (d.GpusPerReplica is < 0 or > MaxGpusPerReplica)
        {
            errors.Add("gpusPerReplica", $"must be between 0 and {MaxGpusPerReplica}");
        }

        if (d.GpuType is { } gpuType && (gpuType.Length > 100 || gpuType.Any(char.IsControl)))
        {
            errors.Add("gpuType", "must be at most 100 characters without control characters (as nvidia-smi names the GPU)");
        }

        if (d.MinReplicas < 0 || d.MinReplicas > limits.MaxReplicas)
        {
            errors.Add("minReplicas", $"must be between 0 and {limits.MaxReplicas}");
        }

        if (d.MaxReplicas < 1 || d.MaxReplicas > limits.MaxReplicas)
        {
            errors.Add("maxReplicas", $"must be between 1 and {limits.MaxReplicas} (Deployments:MaxReplicas)");
        }
        else if (d.MinReplicas > d.MaxReplicas)
        {
            errors.Add("minReplicas", "must not be more than maxReplicas");
        }

        if (d.TargetConcurrency is < 1 or > 1024)
        {
            errors.Add("targetConcurrency", "must be between 1 and 1024 requests in flight per replica");
        }

        if (d.IdleTimeoutSeconds is < 30 or > 86_400)
        {
            errors.Add("idleTimeoutSeconds", "must be between 30 and 86400");
        }

        if (d.ScaleDownDelaySeconds is < 0 or > 86_400)
        {
            errors.Add("scaleDownDelaySeconds", "must be between 0 and 86400");
        }

        ValidateLaunch(d.Engine, launch, errors);
        var artifactChecked = engineKnown && ValidateArtifact(d, launch, errors);

        // What the fleet the organization may use offers: its private machines and the platform pool, not decommissioned.
        if (d.GpusPerReplica is >= 0 and <= MaxGpusPerReplica && d.GpuType is not { Length: > 100 })
        {
            var org = d.OrganizationId;
            var inventories = (await db.Machines.AsNoTracking()
                    .Where(m => (m.OrganizationId == org || m.OrganizationId == null) && m.State != MachineStates.Decommissioned)
                    .Select(m => m.Inventory).ToListAsync(cancellationToken))
                .Select(json => JsonSerializer.Deserialize(json, ComputeJson.Default.MachineInventory)!).ToList();
            int Fits(MachineInventory inventory) => (inventory.Gpus ?? []).Count(g => d.GpuType is null || string.Equals(g.Name, d.GpuType, StringComparison.Ordinal));
            var gpuFits = inventories.Where(i => Fits(i) >= d.GpusPerReplica && (d.GpuType is null || Fits(i) > 0)).ToList();
            if (d.GpuType is not null && inventories.All(i => Fits(i) == 0))
            {
                errors.Add("gpuType", "no machine this organization may use (its own or the platform pool) has a GPU of this type");
            }
            else if (d.GpusPerReplica > 0 && gpuFits.Count == 0)
            {
                var largest = inventories.Count == 0 ? 0 : inventories.Max(Fits);
                errors.Add("gpusPerReplica", $"the largest machine this organization may use has {largest} such GPU(s)");
            }
            else if (artifactChecked && d.ArtifactKind == ArtifactKinds.Path && !gpuFits.Any(i => DeploymentArtifacts.MachineHas(i, d)))
            {
                errors.Add("artifact", "no machine this organization may use (with the GPUs asked for) reports this file in its models directory");
            }
        }
    }

    /// <summary>Checks the artifact against its kind and the engine; true when it is a well-formed path the fleet should be asked about.</summary>
    private static bool ValidateArtifact(Deployment d, DeploymentLaunchSettings launch, FieldErrors errors)
    {
        var artifact = d.Artifact;
        var custom = d.Engine is DeploymentEngines.CustomCommand or DeploymentEngines.CustomContainer;
        var container = DeploymentLaunch.Runtime(d.Engine, launch) == TaskRuntimes.Container;
        switch (d.ArtifactKind)
        {
            case ArtifactKinds.None:
                if (artifact is not null)
                {
                    errors.Add("artifact", "must be absent with artifactKind none");
                }
                else if (!custom && d.Engine != DeploymentEngines.BuiltInEmbeddings)
                {
                    errors.Add("artifact", $"is required for engine {d.Engine}: a path on the machine or an id the engine fetches");
                }

                return false;
            case ArtifactKinds.FineTuned:
                errors.Add("artifact", "no fine-tuned model with this id");
                return false;
            case ArtifactKinds.Hub:
                if (artifact is null || artifact.Length > 200 || !(HubPattern().IsMatch(artifact) || OllamaPattern().IsMatch(artifact)))
                {
                    errors.Add("artifact", "a hub id must be a Hugging Face repository (org/name) or an Ollama tag (name:tag)");
                    return false;
                }

                if (d.Engine is DeploymentEngines.BuiltInLlama or DeploymentEngines.BuiltInEmbeddings)
                {
                    errors.Add("artifactKind", d.Engine == DeploymentEngines.BuiltInLlama
                        ? "the built-in engine serves a GGUF file on the machine: give its absolute path"
                        : "the built-in embeddings engine serves all-MiniLM-L6-v2 and takes no artifact (artifactKind none)");
                }
                else if (d.Engine == DeploymentEngines.Ollama && !OllamaPattern().IsMatch(artifact))
                {
                    errors.Add("artifact", "Ollama pulls a tag: give name:tag (llama3.2:1b)");
                }

                return false;
            case ArtifactKinds.Path:
                if (artifact is null || !artifact.StartsWith('/') || artifact.Length > 1000 || artifact.Any(char.IsControl)
                    || artifact.Split('/').Any(segment => segment is "." or ".."))
                {
                    errors.Add("artifact", "a path must be absolute (on the machine), at most 1000 characters, without '.' or '..' segments");
                    return false;
                }

                var ok = true;
                if (d.Engine is DeploymentEngines.BuiltInLlama && !artifact.EndsWith(".gguf", StringComparison.OrdinalIgnoreCase))
                {
                    errors.Add("artifact", "the built-in engine serves a GGUF file: the path must end in .gguf");
                    ok = false;
                }
                else if (d.Engine is DeploymentEngines.BuiltInEmbeddings)
                {
                    errors.Add("artifactKind", "the built-in embeddings engine serves all-MiniLM-L6-v2 and takes no artifact (artifactKind none)");
                    ok = false;
                }
                else if (d.Engine is DeploymentEngines.Ollama)
                {
                    errors.Add("artifactKind", "Ollama pulls its models: give the tag as a hub artifact (llama3.2:1b)");
                    ok = false;
                }
                else if (container && !custom)
                {
                    errors.Add("artifact", "a container cannot see the machine's files: give a hub id, or run the engine as a process (launch.runtime process)");
                    ok = false;
                }

                return ok;
            default:
                errors.Add("artifactKind", "must be path, hub, fine_tuned or none");
                return false;
        }
    }

    private static void ValidateLaunch(string engine, DeploymentLaunchSettings launch, FieldErrors errors)
    {
        static bool Clean(string? value, int max) => value is null || (value.Length <= max && !value.Any(char.IsControl));

        if (launch.Runtime is not (null or TaskRuntimes.Process or TaskRuntimes.Container))
        {
            errors.Add("launch.runtime", "must be process or container");
        }

        var runtime = DeploymentLaunch.Runtime(engine, launch);
        if (engine is DeploymentEngines.BuiltInLlama or DeploymentEngines.BuiltInEmbeddings or DeploymentEngines.LlamaCpp or DeploymentEngines.CustomCommand
            && runtime != TaskRuntimes.Process)
        {
            errors.Add("launch.runtime", $"engine {engine} runs as a process");
        }

        if (engine == DeploymentEngines.CustomContainer && runtime != TaskRuntimes.Container)
        {
            errors.Add("launch.runtime", "engine custom-container runs as a container");
        }

        if ((launch.EngineArgs ?? []).Count > 64 || (launch.EngineArgs ?? []).Any(a => a is null || !Clean(a, 1000)))
        {
            errors.Add("launch.engineArgs", "at most 64 arguments of at most 1000 characters without control characters");
        }

        if ((launch.Args ?? []).Count > 64 || (launch.Args ?? []).Any(a => a is null || !Clean(a, 1000)))
        {
            errors.Add("launch.args", "at most 64 arguments of at most 1000 characters without control characters");
        }

        if (!Clean(launch.Command, 1000) || launch.Command is "")
        {
            errors.Add("launch.command", "must be 1-1000 characters without control characters");
        }

        if (!Clean(launch.Image, 300) || launch.Image is "" || launch.Image?.Any(char.IsWhiteSpace) == true)
        {
            errors.Add("launch.image", "must be an image reference of 1-300 characters without spaces");
        }

        if (launch.ContainerPort is < 1 or > 65535)
        {
            errors.Add("launch.containerPort", "must be a port between 1 and 65535");
        }

        if (!Clean(launch.ServedModel, 200))
        {
            errors.Add("launch.servedModel", "must be at most 200 characters without control characters");
        }

        if (launch.Environment is { } environment && (environment.Count > 64 || environment.Any(e => !EnvironmentName().IsMatch(e.Key) || e.Value is null || e.Value.Length > 4096)))
        {
            errors.Add("launch.environment", "at most 64 variables named like shell variables (A-Z, a-z, 0-9, _), values of at most 4096 characters");
        }

        if (launch.Probe is { } probe && (probe.Path is not ("/health" or "/v1/models") || probe.StartupTimeoutSeconds is < 1 or > 86_400
            || probe.IntervalSeconds is < 1 or > 3600 || probe.FailureThreshold is < 1 or > 100))
        {
            errors.Add("launch.probe", "path must be /health or /v1/models; startupTimeoutSeconds 1-86400, intervalSeconds 1-3600, failureThreshold 1-100");
        }

        if (engine == DeploymentEngines.CustomCommand && string.IsNullOrWhiteSpace(launch.Command))
        {
            errors.Add("launch.command", "is required for engine custom-command: the executable that serves the OpenAI API on {port}");
        }

        if (engine == DeploymentEngines.CustomContainer)
        {
            if (string.IsNullOrWhiteSpace(launch.Image))
            {
                errors.Add("launch.image", "is required for engine custom-container");
            }

            if (launch.ContainerPort is null)
            {
                errors.Add("launch.containerPort", "is required for engine custom-container: the port the image serves the OpenAI API on");
            }
        }

        if (Encoding(launch) > MaxLaunchBytes)
        {
            errors.Add("launch", $"must be at most {MaxLaunchBytes / 1024} KiB as JSON");
        }
    }

    private static int Encoding(DeploymentLaunchSettings launch) =>
        JsonSerializer.SerializeToUtf8Bytes(launch, DeploymentJson.Default.DeploymentLaunchSettings).Length;

    private static void ValidateSecrets(FieldErrors errors, IReadOnlyDictionary<string, string?>? secrets)
    {
        if (secrets is null)
        {
            return;
        }

        if (secrets.Count > DeploymentSecrets.MaxCount || secrets.Any(s => !EnvironmentName().IsMatch(s.Key)))
        {
            errors.Add("secrets", $"at most {DeploymentSecrets.MaxCount} environment variables named like shell variables (A-Z, a-z, 0-9, _; 1-128 characters)");
        }

        if (secrets.Values.Any(v => v is null || v.Length is 0 or > DeploymentSecrets.MaxValueLength))
        {
            errors.Add("secrets", $"each value must be 1-{DeploymentSecrets.MaxValueLength} characters");
        }
    }

    private static long? Micros(decimal? value, string field, FieldErrors errors)
    {
        if (value is null)
        {
            errors.Add(field, "is required (micro-units per million tokens)");
            return null;
        }

        if (value < 0 || value != decimal.Truncate(value.Value) || value > 1_000_000_000_000m)
        {
            errors.Add(field, "must be a whole, non-negative number of micro-units");
            return null;
        }

        return (long)value;
    }

    private static string DefaultArtifactKind(string? artifact) =>
        string.IsNullOrEmpty(artifact) ? ArtifactKinds.None : artifact.StartsWith('/') ? ArtifactKinds.Path : ArtifactKinds.Hub;

    private static string LaunchJson(DeploymentLaunchSettings launch) => JsonSerializer.Serialize(launch, DeploymentJson.Default.DeploymentLaunchSettings);

    internal static DeploymentEvent Event(Guid deploymentId, DateTimeOffset at, string kind, JsonObject? detail) =>
        new() { Id = Guid.CreateVersion7(at), DeploymentId = deploymentId, At = at, Kind = kind, Detail = detail?.ToJsonString() };

    private DeploymentView View(Deployment d, IReadOnlyList<DeploymentReplicaView>? replicas) => new(
        d.Id, d.OrganizationId, d.Name, d.Description, d.Engine, d.ArtifactKind, d.Artifact, d.GpuType, d.GpusPerReplica, d.MinReplicas, d.MaxReplicas,
        d.TargetConcurrency, d.IdleTimeoutSeconds, d.ScaleDownDelaySeconds, DeploymentLaunch.Settings(d),
        [.. DeploymentSecrets.Open(box, d).Keys.Order(StringComparer.Ordinal)], d.Generation, d.DesiredReplicas, d.Status, d.StatusReason, d.Public,
        d.InputPerMillionMicros, d.OutputPerMillionMicros, d.CreatedBy, d.CreatedAt, d.UpdatedAt, replicas);

    [GeneratedRegex("^[a-z0-9][a-z0-9._/:-]{0,99}$")]
    private static partial Regex NamePattern();

    [GeneratedRegex("^[A-Za-z0-9][A-Za-z0-9._-]{0,95}/[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")]
    private static partial Regex HubPattern();

    [GeneratedRegex("^[a-z0-9][a-z0-9._-]{0,99}(/[a-z0-9][a-z0-9._-]{0,99})?:[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")]
    private static partial Regex OllamaPattern();

    [GeneratedRegex("^[A-Za-z_][A-Za-z0-9_]{0,127}$")]
    private static partial Regex EnvironmentName();
}
