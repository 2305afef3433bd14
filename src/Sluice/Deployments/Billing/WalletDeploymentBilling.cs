using System.Globalization;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using Sluice.Billing;
using Sluice.Storage;

namespace Sluice.Deployments.Billing;

/// <summary>
/// The wallet's say on GPU time (<see cref="IDeploymentBilling"/>): a deployment that pays for its GPU time (dedicated,
/// or serverless with <see cref="DeploymentBillingOptions.BillServerlessReplicaTime"/>) may run N replicas only while the
/// organization's money (wallet plus what is held for it) covers N replicas' GPUs for
/// <see cref="DeploymentBillingOptions.CoverageHorizon"/> at the price in force. A GPU type with no price is refused
/// unless <see cref="DeploymentBillingOptions.AllowUnpricedGpus"/>. A deployment that names no GPU type is costed at the
/// dearest priced type (the scheduler may place it on any).
/// </summary>
internal sealed class WalletDeploymentBilling(
    IServiceScopeFactory scopes, IOptions<DeploymentBillingOptions> options, IOptions<BillingOptions> billing, TimeProvider time) : IDeploymentBilling
{
    public async ValueTask<(bool Covered, string? Refusal)> CanRunAsync(Deployment deployment, int replicas, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(deployment);
        var settings = options.Value;
        if (replicas <= 0 || deployment.GpusPerReplica <= 0 || !PaysForGpuTime(deployment, settings))
        {
            return (true, null);
        }

        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<SluiceDbContext>();
        var now = time.GetUtcNow();
        var prices = GpuPrices.InForce(await db.Set<GpuPrice>().AsNoTracking().Where(p => p.EffectiveFrom <= now).ToListAsync(cancellationToken), now);
        long perHour;
        if (deployment.GpuType is { } gpuType)
        {
            if (!prices.TryGetValue(gpuType, out perHour))
            {
                return settings.AllowUnpricedGpus
                    ? (true, null)
                    : (false, "the GPU type has no price per GPU-hour; an operator sets one (sluice gpu-prices set) before dedicated work runs on it");
            }
        }
        else if (prices.Count == 0)
        {
            return settings.AllowUnpricedGpus ? (true, null) : (false, "no GPU type has a price per GPU-hour; an operator sets one (sluice gpu-prices set) before dedicated work runs");
        }
        else
        {
            perHour = prices.Values.Max();
        }

        if (perHour == 0)
        {
            return (true, null);
        }

        var perReplica = PerReplicaCost(perHour, deployment.GpusPerReplica, settings.CoverageHorizon);
        var money = await MoneyAsync(db, deployment.OrganizationId, billing.Value.Currency, cancellationToken);
        if (money >= perReplica * replicas)
        {
            return (true, null);
        }

        var covered = Math.Max(0, money / perReplica);
        return (false, string.Create(CultureInfo.InvariantCulture,
            $"the wallet covers {covered} replica{(covered == 1 ? "" : "s")} of this deployment for {Horizon(settings.CoverageHorizon)} of GPU time, not {replicas}"));
    }

    /// <summary>Whether the deployment pays for its replicas' GPU time (dedicated; serverless only with the setting).</summary>
    public static bool PaysForGpuTime(Deployment deployment, DeploymentBillingOptions settings) =>
        PaysForGpuTime(deployment.MinReplicas, DeploymentPricing.ForTokens(deployment) is not null, settings);

    /// <summary>
    /// Dedicated replicas (min 1 or more) pay for their GPU time; a serverless deployment pays per token at its prices
    /// instead, or for its replicas' time when it has no token prices (a private endpoint nobody priced), or when
    /// <see cref="DeploymentBillingOptions.BillServerlessReplicaTime"/> says so: GPUs never run unpaid.
    /// </summary>
    public static bool PaysForGpuTime(int minReplicas, bool pricedPerToken, DeploymentBillingOptions settings) =>
        minReplicas >= 1 || !pricedPerToken || settings.BillServerlessReplicaTime;

    /// <summary>The organization's money: its wallet plus what is held (leased) for it, in micro-units.</summary>
    public static async Task<long> MoneyAsync(SluiceDbContext db, Guid organizationId, string currency, CancellationToken ct)
    {
        Guid? orgId = organizationId;
        return await db.LedgerAccounts.AsNoTracking()
            .Where(a => a.OrganizationId == orgId && (a.Type == AccountTypes.CustomerWallet || a.Type == AccountTypes.CustomerHolds) && a.Currency == currency)
            .SumAsync(a => a.BalanceMicros, ct);
    }

    private static long PerReplicaCost(long perHour, int gpus, TimeSpan horizon)
    {
        var units = (Int128)perHour * gpus * (long)Math.Ceiling(horizon.TotalSeconds);
        return (long)Int128.Min((units + 3599) / 3600, long.MaxValue / 1024);
    }

    private static string Horizon(TimeSpan horizon) =>
        horizon.TotalMinutes >= 1 && horizon.Seconds == 0 ? $"{(long)horizon.TotalMinutes} min" : $"{(long)Math.Ceiling(horizon.TotalSeconds)} s";
}
