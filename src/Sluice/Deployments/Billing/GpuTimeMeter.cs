using System.Globalization;
using System.Text.Json;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using Sluice.Audit;
using Sluice.Billing;
using Sluice.Hosting;
using Sluice.Storage;

namespace Sluice.Deployments.Billing;

/// <summary>
/// Charges deployments' reserved GPU time through the wallet's holds and leases (docs/billing.md, "GPU time"). Each
/// round, for every replica that pays for its time and is not yet billed through its stop: the seconds since its last
/// charge cost <c>C(end) − C(billed)</c> (<see cref="GpuTimeCost"/>); the meter holds that plus the next
/// <see cref="DeploymentBillingOptions.HoldAheadIntervals"/> intervals from the organization's wallet
/// (<see cref="SpendGuard.TryHoldFromPurseAsync"/>, purse <c>gpu</c>), settles the exact cost in one database transaction
/// with the replica's charge records and its <see cref="DeploymentReplica.BilledThrough"/>
/// (<see cref="SpendGuard.SettleRecordedAsync"/>), and keeps the next intervals held. When the wallet cannot give the
/// next intervals, the deployment is suspended (status, reason, desired replicas 0, an event and an audit entry); the
/// seconds it can still pay for are charged, and time a replica runs beyond what the wallet covered is recorded as
/// uncollected, never taken (the wallet never goes negative). Safe on several server replicas: a charge is a
/// conditional move of <c>billed_through</c>, and a replica charged by another server's meter within two intervals is
/// left to it.
/// </summary>
public sealed partial class GpuTimeMeter(
    IServiceScopeFactory scopes,
    SpendGuard guard,
    IOptions<DeploymentBillingOptions> options,
    IOptions<BillingOptions> billing,
    TimeProvider time,
    ILogger<GpuTimeMeter> logger) : IDisposable
{
    /// <summary>The wallet purse GPU time is held and settled from (its own lease, apart from the token path's).</summary>
    public const string Purse = "gpu";

    public const string SuspendedReason = "the organization's wallet cannot cover the next GPU time of this deployment; top up, then update the deployment to resume";

    private readonly Dictionary<Guid, SpendGuard.Hold> _holds = [];
    private readonly SemaphoreSlim _gate = new(1, 1);

    public void Dispose() => _gate.Dispose();

    /// <summary>The meter's own name on its charges (this server replica).</summary>
    public string Meter => guard.Replica;

    private sealed record Candidate(
        Guid Id, Guid DeploymentId, Guid OrganizationId, string? GpuType, int GpuCount, DateTimeOffset CreatedAt, DateTimeOffset? StoppedAt,
        DateTimeOffset? BilledThrough, int MinReplicas, bool PricedPerToken, string Status, DateTimeOffset? DeletedAt);

    /// <summary>One round over every replica still to be billed; returns how many replicas were charged.</summary>
    public async Task<int> RunOnceAsync(CancellationToken ct)
    {
        await _gate.WaitAsync(ct);
        try
        {
            return await RoundAsync(ct);
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>Gives back every hold (the server is stopping): the next round, here or on another server, holds afresh.</summary>
    public async Task ReleaseAllAsync()
    {
        await _gate.WaitAsync();
        try
        {
            foreach (var hold in _holds.Values)
            {
                SpendGuard.Release(hold);
            }

            _holds.Clear();
        }
        finally
        {
            _gate.Release();
        }
    }

    private async Task<int> RoundAsync(CancellationToken ct)
    {
        var settings = options.Value;
        var now = time.GetUtcNow();
        List<Candidate> candidates;
        HashSet<Guid> elsewhere;
        Dictionary<string, List<GpuPrice>> prices;
        await using (var scope = scopes.CreateAsyncScope())
        {
            var db = scope.ServiceProvider.GetRequiredService<SluiceDbContext>();
            candidates = await (
                from r in db.DeploymentReplicas.AsNoTracking()
                join d in db.Deployments.AsNoTracking() on r.DeploymentId equals d.Id
                where r.GpuCount > 0
                    && (r.StoppedAt == null
                        ? r.State != ReplicaStates.Stopped && r.State != ReplicaStates.Failed
                        : r.BilledThrough == null || r.BilledThrough < r.StoppedAt)
                select new Candidate(r.Id, r.DeploymentId, r.OrganizationId, r.GpuType, r.GpuCount, r.CreatedAt, r.StoppedAt, r.BilledThrough,
                    d.MinReplicas, d.InputPerMillionMicros != null || d.OutputPerMillionMicros != null, d.Status, d.DeletedAt)).ToListAsync(ct);
            var ids = candidates.Select(c => c.Id).ToList();
            var recent = now - (settings.MeterInterval * 2);
            var me = Meter;
            elsewhere = ids.Count == 0 ? [] : (await db.Set<DeploymentCharge>().AsNoTracking()
                .Where(c => ids.Contains(c.ReplicaId) && c.Meter != me && c.CreatedAt > recent).Select(c => c.ReplicaId).Distinct().ToListAsync(ct)).ToHashSet();
            var types = candidates.Where(c => c.GpuType != null).Select(c => c.GpuType!).Distinct().ToList();
            prices = types.Count == 0 ? new(StringComparer.Ordinal) : (await db.Set<GpuPrice>().AsNoTracking().Where(p => types.Contains(p.GpuType)).ToListAsync(ct))
                .GroupBy(p => p.GpuType, StringComparer.Ordinal).ToDictionary(g => g.Key, g => g.ToList(), StringComparer.Ordinal);
        }

        // Holds of replicas that are done (billed through their stop) or gone go back to the purse.
        var live = candidates.Select(c => c.Id).ToHashSet();
        foreach (var gone in _holds.Keys.Where(id => !live.Contains(id) || elsewhere.Contains(id)).ToList())
        {
            SpendGuard.Release(_holds[gone]);
            _holds.Remove(gone);
        }

        var charged = 0;
        var suspend = new Dictionary<Guid, Candidate>();
        foreach (var replica in candidates.Where(c => !elsewhere.Contains(c.Id)))
        {
            var cost = new GpuTimeCost(replica.CreatedAt, replica.GpuCount, replica.GpuType is { } type && prices.TryGetValue(type, out var versions) ? versions : []);
            var outcome = await ChargeAsync(replica, cost, WalletDeploymentBilling.PaysForGpuTime(replica.MinReplicas, replica.PricedPerToken, settings), now, ct);
            if (outcome.Charged)
            {
                charged++;
            }

            if (!outcome.Covered && replica.StoppedAt is null && replica.DeletedAt is null && replica.Status != DeploymentStatuses.Suspended)
            {
                suspend.TryAdd(replica.DeploymentId, replica);
            }
        }

        foreach (var replica in suspend.Values)
        {
            await SuspendAsync(replica, now, ct);
        }

        return charged;
    }

    private async Task<(bool Charged, bool Covered)> ChargeAsync(Candidate replica, GpuTimeCost cost, bool pays, DateTimeOffset now, CancellationToken ct)
    {
        var settings = options.Value;
        var stopped = replica.StoppedAt is not null;
        var end = stopped ? cost.SecondsStopped(replica.StoppedAt!.Value) : cost.SecondsRunning(now);
        var billed = replica.BilledThrough is { } through ? cost.SecondsAt(through) : 0;
        if (_holds.Remove(replica.Id, out var previous))
        {
            SpendGuard.Release(previous); // back into the purse: this round holds what it needs afresh (in memory)
        }

        if (!pays)
        {
            // Not billed for its time (serverless): move billed_through along, so a later switch to dedicated never
            // bills the free past.
            if (end > billed)
            {
                await WriteAsync(replica, cost, billed, end, end, records: false, ct);
            }

            return (false, true);
        }

        var aheadSeconds = stopped ? 0 : (long)Math.Ceiling(settings.MeterInterval.TotalSeconds * settings.HoldAheadIntervals);
        var due = cost.Cumulative(end) - cost.Cumulative(billed);
        var ahead = cost.Cumulative(end + aheadSeconds) - cost.Cumulative(end);
        var wanted = due + ahead;
        SpendGuard.Hold? hold = null;
        var covered = true;
        if (wanted > 0)
        {
            hold = await guard.TryHoldFromPurseAsync(replica.OrganizationId, Purse, wanted, ct);
            if (hold is null)
            {
                covered = false;
                var available = guard.Unreserved(replica.OrganizationId, Purse) + await WalletAsync(replica.OrganizationId, ct);
                var partial = Math.Min(available, due);
                hold = partial > 0 ? await guard.TryHoldFromPurseAsync(replica.OrganizationId, Purse, partial, ct) : null;
            }
        }

        var paidThrough = covered ? end : cost.AffordableThrough(billed, end, Math.Min(hold?.AmountMicros ?? 0, due));
        var paid = cost.Cumulative(paidThrough) - cost.Cumulative(billed);
        var closeAt = stopped && !covered ? end : paidThrough; // a stopped replica is closed: what was not paid is uncollected
        var chargedNow = false;
        if (closeAt > billed)
        {
            var key = paid > 0 ? string.Create(CultureInfo.InvariantCulture, $"gpu:{replica.Id}:{paidThrough}") : null;
            if (hold is not null)
            {
                chargedNow = await guard.SettleRecordedAsync(hold, paid, key ?? "unused",
                    (db, token) => RecordAsync(db, replica, cost, billed, paidThrough, closeAt, key, records: true, token), ct);
                hold = null;
            }
            else if (paid == 0)
            {
                chargedNow = await WriteAsync(replica, cost, billed, paidThrough, closeAt, records: true, ct);
            }
        }

        if (hold is not null)
        {
            SpendGuard.Release(hold);
        }

        if (covered && !stopped && ahead > 0)
        {
            // The next intervals, held from what the round's hold left in the purse (in memory, no database round trip).
            if (await guard.TryHoldFromPurseAsync(replica.OrganizationId, Purse, ahead, ct) is { } next)
            {
                _holds[replica.Id] = next;
            }
            else
            {
                covered = false;
            }
        }

        if (!covered)
        {
            GpuTimeNotCovered(logger, replica.DeploymentId, replica.Id);
        }

        return (chargedNow, covered);
    }

    private async Task<bool> WriteAsync(Candidate replica, GpuTimeCost cost, long billed, long paidThrough, long closeAt, bool records, CancellationToken ct)
    {
        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<SluiceDbContext>();
        await using var transaction = await db.Database.BeginTransactionAsync(ct);
        if (!await RecordAsync(db, replica, cost, billed, paidThrough, closeAt, null, records, ct))
        {
            await transaction.RollbackAsync(ct);
            return false;
        }

        await transaction.CommitAsync(ct);
        return true;
    }

    /// <summary>
    /// Inside the charge's transaction: moves the replica's billed_through from where this round read it (a conditional
    /// update: if another meter moved it first, nothing is written) and adds the charge records, one per price in force.
    /// </summary>
    private async Task<bool> RecordAsync(
        SluiceDbContext db, Candidate replica, GpuTimeCost cost, long billed, long paidThrough, long closeAt, string? key, bool records, CancellationToken ct)
    {
        var from = replica.BilledThrough;
        var to = cost.At(closeAt);
        var claim = from is { } previous
            ? db.DeploymentReplicas.Where(r => r.Id == replica.Id && r.BilledThrough == previous)
            : db.DeploymentReplicas.Where(r => r.Id == replica.Id && r.BilledThrough == null);
        if (await claim.ExecuteUpdateAsync(set => set.SetProperty(r => r.BilledThrough, to), ct) == 0)
        {
            return false;
        }

        if (!records)
        {
            return true; // time that is not billed (serverless): billed_through moves, no charge record
        }

        var now = time.GetUtcNow();
        var meter = Meter;
        var charges = db.Set<DeploymentCharge>();
        foreach (var (a, b, perHour) in cost.Split(billed, paidThrough))
        {
            charges.Add(Charge(replica, cost, a, b, perHour, cost.Cumulative(b) - cost.Cumulative(a), 0, key, meter, now));
        }

        foreach (var (a, b, perHour) in cost.Split(paidThrough, closeAt))
        {
            charges.Add(Charge(replica, cost, a, b, perHour, 0, cost.Cumulative(b) - cost.Cumulative(a), null, meter, now));
        }

        await db.SaveChangesAsync(ct);
        return true;
    }

    private static DeploymentCharge Charge(
        Candidate replica, GpuTimeCost cost, long a, long b, long perHour, long paid, long uncollected, string? key, string meter, DateTimeOffset now) => new()
        {
            Id = Guid.CreateVersion7(now),
            ReplicaId = replica.Id,
            DeploymentId = replica.DeploymentId,
            OrganizationId = replica.OrganizationId,
            From = cost.At(a),
            To = cost.At(b),
            Seconds = b - a,
            GpuType = replica.GpuType,
            GpuCount = replica.GpuCount,
            PerGpuHourMicros = perHour,
            CostMicros = paid,
            UncollectedMicros = uncollected,
            LedgerKey = paid > 0 ? key : null,
            Meter = meter,
            CreatedAt = now,
        };

    private async Task<long> WalletAsync(Guid organizationId, CancellationToken ct)
    {
        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<SluiceDbContext>();
        Guid? orgId = organizationId;
        var currency = billing.Value.Currency;
        return await db.LedgerAccounts.AsNoTracking()
            .Where(a => a.OrganizationId == orgId && a.Type == AccountTypes.CustomerWallet && a.Currency == currency).SumAsync(a => a.BalanceMicros, ct);
    }

    /// <summary>
    /// The wallet could not give the next intervals' hold: the deployment is suspended (status, reason, desired replicas
    /// 0, a <c>suspended</c> event and an audit entry, in one transaction). The scheduler stops its replicas; it runs
    /// again only when an update after a top-up asks for replicas (and <see cref="IDeploymentBilling"/> agrees).
    /// </summary>
    private async Task SuspendAsync(Candidate replica, DateTimeOffset now, CancellationToken ct)
    {
        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<SluiceDbContext>();
        await using var transaction = await db.Database.BeginTransactionAsync(ct);
        var suspended = await db.Deployments.Where(d => d.Id == replica.DeploymentId && d.DeletedAt == null && d.Status != DeploymentStatuses.Suspended)
            .ExecuteUpdateAsync(set => set
                .SetProperty(d => d.Status, DeploymentStatuses.Suspended)
                .SetProperty(d => d.StatusReason, SuspendedReason)
                .SetProperty(d => d.DesiredReplicas, 0)
                .SetProperty(d => d.UpdatedAt, now), ct);
        if (suspended == 0)
        {
            await transaction.RollbackAsync(ct);
            return;
        }

        db.DeploymentEvents.Add(new DeploymentEvent
        {
            Id = Guid.CreateVersion7(now),
            DeploymentId = replica.DeploymentId,
            At = now,
            Kind = DeploymentEventKinds.Suspended,
            Detail = JsonSerializer.Serialize(new SuspendedDetail("wallet", replica.Id), DeploymentBillingJson.Default.SuspendedDetail),
        });
        scope.ServiceProvider.GetRequiredService<AuditLog>().Record("deployment.suspend", $"deployment:{replica.DeploymentId} reason=wallet", replica.OrganizationId, actorOverride: "system");
        await db.SaveChangesAsync(ct);
        await transaction.CommitAsync(ct);
        DeploymentSuspended(logger, replica.DeploymentId, replica.OrganizationId);
    }

    [LoggerMessage(1701, LogLevel.Warning, "The wallet does not cover the next GPU time of deployment {DeploymentId} (replica {ReplicaId})")]
    private static partial void GpuTimeNotCovered(ILogger logger, Guid deploymentId, Guid replicaId);

    [LoggerMessage(1702, LogLevel.Warning, "Deployment {DeploymentId} of organization {OrganizationId} suspended: its wallet cannot cover its GPU time")]
    private static partial void DeploymentSuspended(ILogger logger, Guid deploymentId, Guid organizationId);
}

internal sealed record SuspendedDetail(string Cause, Guid ReplicaId);

internal sealed record BillingWarningDetail(long BalanceMicros, long ThresholdMicros);

[System.Text.Json.Serialization.JsonSourceGenerationOptions(PropertyNamingPolicy = System.Text.Json.Serialization.JsonKnownNamingPolicy.CamelCase)]
[System.Text.Json.Serialization.JsonSerializable(typeof(SuspendedDetail))]
[System.Text.Json.Serialization.JsonSerializable(typeof(BillingWarningDetail))]
internal sealed partial class DeploymentBillingJson : System.Text.Json.Serialization.JsonSerializerContext;

/// <summary>Runs the <see cref="GpuTimeMeter"/> every <see cref="DeploymentBillingOptions.MeterInterval"/>; gives its holds back on stop.</summary>
internal sealed class GpuTimeMeterService(GpuTimeMeter meter, IOptions<DeploymentBillingOptions> options, TimeProvider time, ILogger<GpuTimeMeterService> logger, BackgroundHealth? health = null)
    : SupervisedService(health)
{
    protected override async Task RunAsync(CancellationToken stoppingToken)
    {
        try
        {
            await PeriodicWork.RunAsync(options.Value.MeterInterval, time, logger, "Metering GPU time", ct => meter.RunOnceAsync(ct), stoppingToken, Health);
        }
        finally
        {
            await meter.ReleaseAllAsync();
        }
    }
}
