using System.Text.Json;
using System.Text.Json.Serialization;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using Sluice.Audit;
using Sluice.Hosting;
using Sluice.Storage;

namespace Sluice.Deployments.Autoscaling;

/// <param name="Decided">Whether this server replica holds the lease and decided this round.</param>
/// <param name="Changed">Deployments whose desired replicas it changed.</param>
/// <param name="Refused">Scale-ups the wallet refused.</param>
public readonly record struct AutoscaleRound(bool Decided, int Changed, int Refused);

/// <summary>
/// The autoscaler: on the one server replica that holds the <c>autoscaler_leases</c> row, every
/// <see cref="AutoscalerOptions.TickInterval"/>, samples each deployment's observed concurrency (the gateways' load
/// reports, summed over the fresh ones, and the agents' in-flight and engine queue figures on the replicas' tasks),
/// runs <see cref="ScaleDecider"/>, and writes <see cref="Deployment.DesiredReplicas"/> when the decision changes it: a
/// conditional update on the value it read (so a cold-start wake or an API change made meanwhile wins and is decided on
/// next round), never for a deleted, failed, suspended or deleting deployment, with a <c>scaled</c> event holding every
/// input, in one transaction. Before scaling up it asks <see cref="IDeploymentBilling"/>; a refusal keeps the count and
/// writes a <c>scale_up_refused</c> event (at most one per <see cref="AutoscalerOptions.RefusalEventInterval"/>).
/// </summary>
public sealed class DeploymentAutoscaler(
    IServiceScopeFactory scopes, DeploymentLoadReporter reporter, IOptions<AutoscalerOptions> options, TimeProvider time,
    ILogger<DeploymentAutoscaler> logger, BackgroundHealth? health = null)
    : SupervisedService(health)
{
    /// <summary>The lease row's name.</summary>
    public const string LeaseName = "deployments";

    /// <summary>The audit action of a scale-up the wallet refused (outcome <c>refused</c>, target <c>deployment:ID</c>).</summary>
    public const string ScaleUpAction = "deployment.scale_up";

    private static readonly string[] Inactive = [DeploymentStatuses.Failed, DeploymentStatuses.Suspended, DeploymentStatuses.Deleting];
    private static readonly string[] Serving = [ReplicaStates.Starting, ReplicaStates.Ready, ReplicaStates.Draining];

    private readonly Dictionary<Guid, LoadWindow> _windows = [];
    private readonly SemaphoreSlim _gate = new(1, 1);
    private DateTimeOffset _lastCleanup = DateTimeOffset.MinValue;

    /// <summary>Whether this replica decided the last round.</summary>
    public bool IsLeader { get; private set; }

    /// <summary>The sample window of a deployment on this replica (null when it does not decide or has not seen it).</summary>
    public LoadWindow? Window(Guid deploymentId) => _windows.GetValueOrDefault(deploymentId);

    public async Task<AutoscaleRound> TickAsync(CancellationToken cancellationToken)
    {
        await _gate.WaitAsync(cancellationToken);
        try
        {
            return await RoundAsync(cancellationToken);
        }
        finally
        {
            _gate.Release();
        }
    }

    private async Task<AutoscaleRound> RoundAsync(CancellationToken cancellationToken)
    {
        var settings = options.Value;
        var now = time.GetUtcNow();
        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<SluiceDbContext>();
        if (!await HoldLeaseAsync(db, now, settings.LeaseDuration, cancellationToken))
        {
            if (IsLeader)
            {
                AutoscalingLog.LeaseLost(logger, reporter.ServerId);
            }

            IsLeader = false;
            _windows.Clear(); // another replica decides; should this one take over later, it starts afresh
            return new AutoscaleRound(false, 0, 0);
        }

        if (!IsLeader)
        {
            AutoscalingLog.LeaseTaken(logger, reporter.ServerId);
            IsLeader = true;
        }

        var deployments = await db.Deployments.AsNoTracking()
            .Where(d => d.DeletedAt == null && !Inactive.Contains(d.Status))
            .ToListAsync(cancellationToken);
        var reports = (await db.DeploymentLoadReports.AsNoTracking().ToListAsync(cancellationToken)).ToLookup(r => r.DeploymentId);
        var replicas = (await db.DeploymentReplicas.AsNoTracking()
            .Where(r => Serving.Contains(r.State))
            .Select(r => new { r.DeploymentId, r.State, r.TaskId })
            .ToListAsync(cancellationToken)).ToLookup(r => r.DeploymentId);
        var taskIds = replicas.SelectMany(g => g.Select(r => r.TaskId)).ToList();
        var tasks = new Dictionary<Guid, (int InFlight, int QueueDepth)>();
        foreach (var chunk in taskIds.Chunk(1000))
        {
            var ids = chunk.ToList();
            foreach (var t in await db.MachineTasks.AsNoTracking().Where(t => ids.Contains(t.Id))
                .Select(t => new { t.Id, t.InFlight, t.QueueDepth }).ToListAsync(cancellationToken))
            {
                tasks[t.Id] = (t.InFlight ?? 0, t.QueueDepth ?? 0);
            }
        }

        var tuning = ScaleTuning.For(settings);
        var fresh = now - settings.ReportFreshness;
        int changed = 0, refused = 0;
        var seen = new HashSet<Guid>();
        foreach (var deployment in deployments)
        {
            seen.Add(deployment.Id);
            if (!_windows.TryGetValue(deployment.Id, out var window))
            {
                window = new LoadWindow(now, deployment.DesiredReplicas);
                _windows[deployment.Id] = window;
            }

            if (deployment.DesiredReplicas != window.KnownDesired)
            {
                window.Memory = window.Memory.SetOutside(now, deployment.DesiredReplicas);
                window.KnownDesired = deployment.DesiredReplicas;
            }

            int gatewayInFlight = 0, waiting = 0, servers = 0;
            foreach (var report in reports[deployment.Id])
            {
                window.SawRequest(report.LastRequestAt);
                if (report.ReportedAt >= fresh)
                {
                    gatewayInFlight += report.InFlight;
                    waiting += report.Waiting;
                    servers++;
                }
            }

            int agentInFlight = 0, queueDepth = 0, ready = 0;
            foreach (var replica in replicas[deployment.Id])
            {
                ready += replica.State == ReplicaStates.Ready ? 1 : 0;
                if (tasks.TryGetValue(replica.TaskId, out var task))
                {
                    agentInFlight += task.InFlight;
                    queueDepth += task.QueueDepth;
                }
            }

            var observed = ScaleDecider.Observed(gatewayInFlight, waiting, agentInFlight, queueDepth);
            window.Add(now, observed, settings.StableWindow);
            var stable = window.Average(now, settings.StableWindow);
            var panic = window.Average(now, settings.PanicWindow);
            var policy = ScalePolicy.For(deployment);
            var decision = ScaleDecider.Decide(policy, tuning, new ScaleInputs(now, stable, panic, deployment.DesiredReplicas, ready, observed, window.IdleSince), window.Memory);
            window.Memory = decision.Memory;
            if (decision.Desired == deployment.DesiredReplicas)
            {
                continue;
            }

            var detail = new ScaledDetail(
                deployment.DesiredReplicas, decision.Desired, decision.Reason, decision.Panic, Math.Round(stable, 3), Math.Round(panic, 3),
                decision.StableWant, decision.PanicWant, observed, gatewayInFlight, waiting, agentInFlight, queueDepth, ready, servers,
                deployment.TargetConcurrency, deployment.MinReplicas, deployment.MaxReplicas,
                (long)Math.Floor((now - window.IdleSince).TotalSeconds), deployment.IdleTimeoutSeconds, deployment.ScaleDownDelaySeconds);
            if (decision.Desired > deployment.DesiredReplicas)
            {
                var billing = scope.ServiceProvider.GetRequiredService<IDeploymentBilling>();
                var (covered, refusal) = await billing.CanRunAsync(deployment, decision.Desired, cancellationToken);
                if (!covered)
                {
                    refused++;
                    await RefusedAsync(db, scope.ServiceProvider.GetRequiredService<AuditLog>(), deployment, window, detail, refusal, now, settings.RefusalEventInterval, cancellationToken);
                    continue;
                }
            }

            if (await WriteAsync(db, deployment, decision.Desired, detail, now, cancellationToken))
            {
                changed++;
                window.KnownDesired = decision.Desired;
                AutoscalingLog.Scaled(logger, deployment.Id, deployment.DesiredReplicas, decision.Desired, decision.Reason, stable, panic, ready);
            }
        }

        foreach (var gone in _windows.Keys.Where(id => !seen.Contains(id)).ToList())
        {
            _windows.Remove(gone);
        }

        // Rows of servers long gone (a server writes only while it sees activity, so a live one refreshes its rows); once a minute.
        if (now - _lastCleanup >= TimeSpan.FromMinutes(1))
        {
            var stale = now - settings.ReportRetention;
            await db.DeploymentLoadReports.Where(r => r.ReportedAt < stale).ExecuteDeleteAsync(cancellationToken);
            _lastCleanup = now;
        }

        return new AutoscaleRound(true, changed, refused);
    }

    /// <summary>
    /// Takes or renews the lease: renewed by its holder, taken by anyone once expired, created by the first replica to
    /// ask. A conditional update, so two replicas asking at once never both get it.
    /// </summary>
    private async Task<bool> HoldLeaseAsync(SluiceDbContext db, DateTimeOffset now, TimeSpan duration, CancellationToken cancellationToken)
    {
        var me = reporter.ServerId;
        var until = now + duration;
        var taken = await db.AutoscalerLeases
            .Where(l => l.Name == LeaseName && (l.Holder == me || l.ExpiresAt < now))
            .ExecuteUpdateAsync(set => set.SetProperty(l => l.Holder, me).SetProperty(l => l.ExpiresAt, until), cancellationToken);
        if (taken == 1)
        {
            return true;
        }

        if (await db.AutoscalerLeases.AnyAsync(l => l.Name == LeaseName, cancellationToken))
        {
            return false;
        }

        db.AutoscalerLeases.Add(new AutoscalerLease { Name = LeaseName, Holder = me, ExpiresAt = until });
        try
        {
            await db.SaveChangesAsync(cancellationToken);
            return true;
        }
        catch (DbUpdateException)
        {
            db.ChangeTracker.Clear();
            return false; // another replica created it first
        }
    }

    private static async Task<bool> WriteAsync(SluiceDbContext db, Deployment deployment, int desired, ScaledDetail detail, DateTimeOffset now, CancellationToken cancellationToken)
    {
        await using var transaction = await db.Database.BeginTransactionAsync(cancellationToken);
        var from = deployment.DesiredReplicas;
        var updated = await db.Deployments
            .Where(d => d.Id == deployment.Id && d.DesiredReplicas == from && d.DeletedAt == null && !Inactive.Contains(d.Status))
            .ExecuteUpdateAsync(set => set.SetProperty(d => d.DesiredReplicas, desired), cancellationToken);
        if (updated != 1)
        {
            return false; // changed meanwhile (a cold-start wake, an update, a delete): decided again next round
        }

        db.DeploymentEvents.Add(new DeploymentEvent
        {
            Id = Guid.CreateVersion7(now),
            DeploymentId = deployment.Id,
            At = now,
            Kind = DeploymentEventKinds.Scaled,
            Detail = JsonSerializer.Serialize(detail, AutoscalingJson.Default.ScaledDetail),
        });
        await db.SaveChangesAsync(cancellationToken);
        await transaction.CommitAsync(cancellationToken);
        db.ChangeTracker.Clear();
        return true;
    }

    private async Task RefusedAsync(
        SluiceDbContext db, AuditLog audit, Deployment deployment, LoadWindow window, ScaledDetail detail, string? refusal, DateTimeOffset now, TimeSpan interval,
        CancellationToken cancellationToken)
    {
        if (window.LastRefusalEventAt is { } last && now - last < interval)
        {
            return;
        }

        // The refusal is audited (background work acts as system) with its event, in one transaction.
        await using var transaction = await db.Database.BeginTransactionAsync(cancellationToken);
        await audit.RefuseAsync(ScaleUpAction, $"deployment:{deployment.Id}", deployment.OrganizationId, cancellationToken, actorOverride: "system");
        db.DeploymentEvents.Add(new DeploymentEvent
        {
            Id = Guid.CreateVersion7(now),
            DeploymentId = deployment.Id,
            At = now,
            Kind = DeploymentEventKinds.ScaleUpRefused,
            Detail = JsonSerializer.Serialize(
                new ScaleUpRefusedDetail(detail.From, detail.To, Truncate(refusal ?? "the wallet does not cover more replicas"), detail),
                AutoscalingJson.Default.ScaleUpRefusedDetail),
        });
        await db.SaveChangesAsync(cancellationToken);
        await transaction.CommitAsync(cancellationToken);
        db.ChangeTracker.Clear();
        window.LastRefusalEventAt = now;
        AutoscalingLog.ScaleUpRefused(logger, deployment.Id, detail.From, detail.To);
    }

    private static string Truncate(string value) => value.Length <= 300 ? value : value[..300];

    protected override Task RunAsync(CancellationToken stoppingToken) =>
        PeriodicWork.RunAsync(options.Value.TickInterval, time, logger, "Deployment autoscaler", async ct => await TickAsync(ct), stoppingToken, Health);
}

/// <summary>A <c>scaled</c> event's detail: the decision and every input it was made from. Figures only.</summary>
public sealed record ScaledDetail(
    int From, int To, string Reason, bool Panic, double StableAverage, double PanicAverage, int StableWant, int PanicWant,
    int Observed, int GatewayInFlight, int Waiting, int AgentInFlight, int QueueDepth, int ReadyReplicas, int ReportingServers,
    int TargetConcurrency, int MinReplicas, int MaxReplicas, long IdleSeconds, int IdleTimeoutSeconds, int ScaleDownDelaySeconds);

/// <summary>A <c>scale_up_refused</c> event's detail: the scale-up the wallet refused, its fixed refusal sentence, and the decision's inputs.</summary>
public sealed record ScaleUpRefusedDetail(int From, int To, string Refusal, ScaledDetail Decision);

[JsonSourceGenerationOptions(JsonSerializerDefaults.Web)]
[JsonSerializable(typeof(ScaledDetail))]
[JsonSerializable(typeof(ScaleUpRefusedDetail))]
public sealed partial class AutoscalingJson : JsonSerializerContext;
