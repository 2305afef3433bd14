using System.Collections.Concurrent;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using Sluice.Compute;
using Sluice.Compute.Protocol;
using Sluice.Compute.Serving;
using Sluice.Crypto;
using Sluice.Gateway;
using Sluice.Hosting;
using Sluice.Storage;

namespace Sluice.Deployments.Routing;

/// <summary>A ready replica as routing needs it: where its task is reached, through its machine's pinned endpoint.</summary>
public sealed record ReplicaTarget(Guid ReplicaId, Guid TaskId, MachineEndpoint Machine);

/// <summary>One live deployment as the directory last saw it (immutable; a refresh makes new ones).</summary>
public sealed class DeploymentTarget
{
    public required Deployment Deployment { get; init; }

    public Guid Id => Deployment.Id;

    /// <summary>The name the engine serves, written into each forwarded request's <c>model</c>.</summary>
    public required string ServedModel { get; init; }

    /// <summary>Ready replicas on machines that can serve (alive or suspect, credential valid, not decommissioned).</summary>
    public required IReadOnlyList<ReplicaTarget> Replicas { get; init; }

    /// <summary>The deployment as a model with one route of kind <see cref="ProviderKind.Deployment"/> (id: the deployment's).</summary>
    public required ModelInfo Model { get; init; }
}

/// <summary>
/// The live deployments and their ready replicas, in memory: reloaded every
/// <see cref="DeploymentRoutingOptions.DirectoryRefreshInterval"/> with one query (deployments left-joined to their ready
/// replicas and those replicas' machines), so nothing on the request path queries the database. Answers the gateway's
/// model lookup (<see cref="IOrganizationModels"/>): an organization's own deployments by name, and published ones.
/// A request waiting for a replica (the cold-start queue) is woken by the refresh that first sees its deployment change,
/// not by polling.
/// </summary>
public sealed class DeploymentDirectory(IServiceScopeFactory scopes, SecretBox secrets) : IOrganizationModels, IDisposable
{
    private static readonly IReadOnlyDictionary<Guid, DeploymentTarget> NoTargets = new Dictionary<Guid, DeploymentTarget>();

    private volatile Snapshot _snapshot = new(NoTargets, new Dictionary<(Guid, string), DeploymentTarget>(), new Dictionary<string, DeploymentTarget>(StringComparer.Ordinal),
        new Dictionary<Guid, List<ModelInfo>>());

    private readonly ConcurrentDictionary<Guid, TaskCompletionSource> _waiters = new();
    private readonly ConcurrentDictionary<string, string> _tokens = new(StringComparer.Ordinal); // sealed serving token → opened
    private readonly SemaphoreSlim _refreshing = new(1, 1);

    /// <summary>The deployment with this id as last seen; null when it is gone (deleted, being deleted, never existed).</summary>
    public DeploymentTarget? Get(Guid deploymentId) => _snapshot.ById.TryGetValue(deploymentId, out var target) ? target : null;

    /// <summary>Every live deployment as last seen (for the autoscaler and diagnostics).</summary>
    public IEnumerable<DeploymentTarget> All => _snapshot.ById.Values;

    public ModelInfo? FindOwn(Guid organizationId, string model) => _snapshot.Own.TryGetValue((organizationId, model), out var target) ? target.Model : null;

    public ModelInfo? FindPublished(string model) => _snapshot.Shared.TryGetValue(model, out var target) ? target.Model : null;

    public IEnumerable<ModelInfo> Own(Guid organizationId) => _snapshot.OwnByOrganization.TryGetValue(organizationId, out var models) ? models : [];

    public IEnumerable<ModelInfo> Published() => _snapshot.Shared.Values.Select(t => t.Model);

    /// <summary>
    /// Completes at the first refresh that sees <paramref name="deploymentId"/> change in a way a waiting request cares
    /// about (a replica ready, a final status, gone). Take it BEFORE checking <see cref="Get"/>, so no change is missed.
    /// </summary>
    public Task Changed(Guid deploymentId) =>
        _waiters.GetOrAdd(deploymentId, static _ => new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).Task;

    public async Task RefreshAsync(CancellationToken cancellationToken)
    {
        await _refreshing.WaitAsync(cancellationToken);
        try
        {
            await using var scope = scopes.CreateAsyncScope();
            var db = scope.ServiceProvider.GetRequiredService<SluiceDbContext>();
            var rows = await (
                from d in db.Deployments.AsNoTracking()
                where d.DeletedAt == null && d.Status != DeploymentStatuses.Deleting
                // Ready, or starting with its task already reported ready (the scheduler records it at its next pass; a
                // cold-started request need not wait for that).
                join r0 in db.DeploymentReplicas.Where(r => r.State == ReplicaStates.Ready || (r.State == ReplicaStates.Starting
                        && db.MachineTasks.Any(t => t.Id == r.TaskId && t.State == TaskStates.Ready && t.Desired == TaskDesired.Running)))
                    on d.Id equals r0.DeploymentId into replicas
                from r in replicas.DefaultIfEmpty()
                join m0 in db.Machines.Where(m => m.CredentialRevokedAt == null && m.State != MachineStates.Decommissioned
                        && (m.Liveness == MachineLiveness.Alive || m.Liveness == MachineLiveness.Suspect))
                    on r.MachineId equals m0.Id into machines
                from m in machines.DefaultIfEmpty()
                select new
                {
                    Deployment = d,
                    ReplicaId = (Guid?)r.Id,
                    TaskId = (Guid?)r.TaskId,
                    MachineId = (Guid?)m.Id,
                    ServingUrl = m.ServingUrl,
                    CertificateSha256 = m.CertificateSha256,
                    ServingTokenSealed = m.ServingTokenSealed,
                }).ToListAsync(cancellationToken);

            var deployments = new Dictionary<Guid, (Deployment Deployment, List<ReplicaTarget> Replicas)>();
            foreach (var row in rows)
            {
                if (!deployments.TryGetValue(row.Deployment.Id, out var entry))
                {
                    entry = (row.Deployment, []);
                    deployments[row.Deployment.Id] = entry;
                }

                if (row is { ReplicaId: { } replicaId, TaskId: { } taskId, MachineId: { } machineId })
                {
                    var token = _tokens.GetOrAdd(row.ServingTokenSealed, (sealedToken, id) => secrets.Open(sealedToken, AgentExchange.ServingTokenBinding(id)), machineId);
                    entry.Replicas.Add(new ReplicaTarget(replicaId, taskId, new MachineEndpoint(machineId.ToString(), new Uri(row.ServingUrl), row.CertificateSha256, token)));
                }
            }

            var previous = _snapshot;
            var byId = new Dictionary<Guid, DeploymentTarget>(deployments.Count);
            var own = new Dictionary<(Guid, string), DeploymentTarget>();
            var shared = new Dictionary<string, DeploymentTarget>(StringComparer.Ordinal);
            var ownByOrganization = new Dictionary<Guid, List<ModelInfo>>();
            foreach (var (deployment, replicas) in deployments.Values.OrderBy(e => e.Deployment.CreatedAt).ThenBy(e => e.Deployment.Id))
            {
                replicas.Sort((a, b) => a.ReplicaId.CompareTo(b.ReplicaId));
                var target = new DeploymentTarget
                {
                    Deployment = deployment,
                    ServedModel = DeploymentLaunch.ServedModelName(deployment),
                    Replicas = replicas,
                    Model = ToModel(deployment, previous.ById.TryGetValue(deployment.Id, out var before) ? before.Model : null),
                };
                byId[deployment.Id] = target;
                own.TryAdd((deployment.OrganizationId, deployment.Name), target);
                if (deployment.Public)
                {
                    shared.TryAdd(deployment.Name, target); // the earliest published of a name wins
                }

                if (!ownByOrganization.TryGetValue(deployment.OrganizationId, out var models))
                {
                    ownByOrganization[deployment.OrganizationId] = models = [];
                }

                models.Add(target.Model);
            }

            _snapshot = new Snapshot(byId, own, shared, ownByOrganization);
            if (_tokens.Count > 4 * Math.Max(16, byId.Count))
            {
                _tokens.Clear(); // re-joined machines leave old sealed tokens behind; reopened on the next refresh
            }

            // Wake the requests waiting on a deployment that changed in a way they care about.
            foreach (var (id, waiter) in _waiters)
            {
                if (Matters(previous.ById.GetValueOrDefault(id), byId.GetValueOrDefault(id)) && _waiters.TryRemove(new KeyValuePair<Guid, TaskCompletionSource>(id, waiter)))
                {
                    waiter.TrySetResult();
                }
            }
        }
        finally
        {
            _refreshing.Release();
        }
    }

    public void Dispose() => _refreshing.Dispose();

    /// <summary>Whether a waiting request must look again: a replica became ready, the deployment's status or desired count changed, or it is gone.</summary>
    private static bool Matters(DeploymentTarget? before, DeploymentTarget? after) =>
        after is null
        || after.Replicas.Count > 0
        || before is null
        || before.Deployment.Status != after.Deployment.Status
        || before.Deployment.DesiredReplicas != after.Deployment.DesiredReplicas;

    /// <summary>The deployment as a model; the previous refresh's instance when nothing the gateway reads changed.</summary>
    private static ModelInfo ToModel(Deployment deployment, ModelInfo? previous)
    {
        var served = DeploymentLaunch.ServedModelName(deployment);
        var pricing = Deployments.Billing.DeploymentPricing.ForTokens(deployment);
        var ownedBy = deployment.Public ? "sluice" : deployment.OrganizationId.ToString();
        if (previous is { Routes: [var route] } && previous.Id == deployment.Name && previous.Description == deployment.Description
            && previous.OwnedBy == ownedBy && route.UpstreamModel == served && route.Pricing == pricing)
        {
            return previous;
        }

        var provider = new ProviderInfo(deployment.Id, "deployment", ProviderKind.Deployment, new Uri($"urn:sluice:deployment:{deployment.Id}"), null, []);
        return new ModelInfo(deployment.Name, deployment.Description, deployment.CreatedAt, false,
            [new RouteInfo(deployment.Id, deployment.Name, provider, served, 0, 1, RetainsData: false, TrainsOnData: false) { Pricing = pricing }])
        {
            OwnedBy = ownedBy,
        };
    }

    private sealed record Snapshot(
        IReadOnlyDictionary<Guid, DeploymentTarget> ById,
        IReadOnlyDictionary<(Guid, string), DeploymentTarget> Own,
        IReadOnlyDictionary<string, DeploymentTarget> Shared,
        IReadOnlyDictionary<Guid, List<ModelInfo>> OwnByOrganization);
}

/// <summary>Loads the directory before the server starts, then reloads it every <see cref="DeploymentRoutingOptions.DirectoryRefreshInterval"/>.</summary>
internal sealed class DeploymentDirectoryRefresher(
    DeploymentDirectory directory, IOptions<DeploymentRoutingOptions> options, ILogger<DeploymentDirectoryRefresher> logger, BackgroundHealth? health = null,
    DeploymentLoad? load = null)
    : SupervisedService(health)
{
    /// <summary>How often the directory is reloaded while a request waits for a replica (a cold start): it goes as soon as one is ready.</summary>
    private static readonly TimeSpan WhileWaiting = TimeSpan.FromMilliseconds(100);

    private long _lastRefresh;

    public override async Task StartAsync(CancellationToken cancellationToken)
    {
        try
        {
            await directory.RefreshAsync(cancellationToken);
        }
        catch (Exception ex) when (DatabaseFailures.IsUnavailable(ex))
        {
            // The loop retries; the server serves catalog models meanwhile.
        }

        await base.StartAsync(cancellationToken);
    }

    // On the real clock, as metering paces itself: a test that moves a manual clock must not have to move it for routing.
    protected override Task RunAsync(CancellationToken stoppingToken)
    {
        var interval = options.Value.DirectoryRefreshInterval;
        var tick = interval < WhileWaiting ? interval : WhileWaiting;
        return PeriodicWork.RunAsync(tick, TimeProvider.System, logger, "Reloading the deployment directory", async ct =>
        {
            if (load?.AnyWaiting != true && System.Diagnostics.Stopwatch.GetElapsedTime(Interlocked.Read(ref _lastRefresh)) < interval)
            {
                return;
            }

            Interlocked.Exchange(ref _lastRefresh, System.Diagnostics.Stopwatch.GetTimestamp());
            await directory.RefreshAsync(ct);
        }, stoppingToken, Health);
    }
}
