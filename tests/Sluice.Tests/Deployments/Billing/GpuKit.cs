using Microsoft.EntityFrameworkCore;
using Sluice.Billing;
using Sluice.Deployments;
using Sluice.Deployments.Billing;
using Sluice.Tests.TestSupport;

namespace Sluice.Tests.Deployments.Billing;

/// <summary>Deployments and replicas inserted directly (the scheduler is another part), and what the ledger says about GPU time.</summary>
internal static class GpuKit
{
    public const string H100 = "NVIDIA H100 80GB HBM3";
    public const string L4 = "NVIDIA L4";

    public static async Task<(Guid Deployment, Guid Replica)> ReplicaAsync(
        TestDatabase database, Guid orgId, string? gpuType, int gpus, DateTimeOffset createdAt, int minReplicas = 1, string name = "private-model",
        bool pricedPerToken = false)
    {
        await using var db = database.CreateContext();
        var deployment = await db.Deployments.SingleOrDefaultAsync(d => d.OrganizationId == orgId && d.Name == name);
        if (deployment is null)
        {
            deployment = Deployment(orgId, gpuType, gpus, minReplicas, name, createdAt, pricedPerToken);
            db.Deployments.Add(deployment);
        }

        var replica = new DeploymentReplica
        {
            Id = Guid.NewGuid(), DeploymentId = deployment.Id, OrganizationId = orgId, Generation = 1, MachineId = Guid.NewGuid(), TaskId = Guid.NewGuid(),
            GpuType = gpuType, GpuCount = gpus, State = ReplicaStates.Ready, CreatedAt = createdAt, ReadyAt = createdAt,
        };
        db.DeploymentReplicas.Add(replica);
        await db.SaveChangesAsync();
        return (deployment.Id, replica.Id);
    }

    /// <summary>A deployment row; <c>pricedPerToken</c>: it has per-token prices (serverless with them pays per token, not for GPU time).</summary>
    public static Deployment Deployment(
        Guid orgId, string? gpuType, int gpus, int minReplicas, string name = "private-model", DateTimeOffset? at = null, bool pricedPerToken = false) => new()
    {
        InputPerMillionMicros = pricedPerToken ? 100_000 : null,
        OutputPerMillionMicros = pricedPerToken ? 400_000 : null,
        Id = Guid.NewGuid(), OrganizationId = orgId, Name = name, Engine = DeploymentEngines.Vllm, ArtifactKind = ArtifactKinds.Hub, Artifact = "org/model",
        GpuType = gpuType, GpusPerReplica = gpus, MinReplicas = minReplicas, MaxReplicas = 8, TargetConcurrency = 4, IdleTimeoutSeconds = 300,
        ScaleDownDelaySeconds = 300, LaunchJson = "{}", Generation = 1, DesiredReplicas = Math.Max(1, minReplicas), Status = DeploymentStatuses.Ready,
        CreatedBy = "test", CreatedAt = at ?? DateTimeOffset.UtcNow, UpdatedAt = at ?? DateTimeOffset.UtcNow,
    };

    public static async Task StopAsync(TestDatabase database, Guid replicaId, DateTimeOffset stoppedAt)
    {
        await using var db = database.CreateContext();
        await db.DeploymentReplicas.Where(r => r.Id == replicaId)
            .ExecuteUpdateAsync(set => set.SetProperty(r => r.StoppedAt, stoppedAt).SetProperty(r => r.State, ReplicaStates.Stopped));
    }

    /// <summary>A manual clock at a whole second plus a quarter (placement times are rarely whole seconds).</summary>
    public static ManualTimeProvider Clock()
    {
        var now = DateTimeOffset.UtcNow;
        return new ManualTimeProvider(new DateTimeOffset(now.Ticks - (now.Ticks % TimeSpan.TicksPerSecond), TimeSpan.Zero).AddMilliseconds(250));
    }

    /// <summary>A replica placed now, at the manual clock's time; the GPU prices set before it are in force from its first second.</summary>
    public static DateTimeOffset Placed(DateTimeOffset now) => now;

    public sealed record Books(long Charged, long Uncollected, long GpuRevenue, long Revenue, long Wallet, long Holds, int Charges, int Transactions);

    /// <summary>
    /// The charge records, the ledger's GPU-time transactions and the organization's accounts; asserts that every
    /// ledger transaction carries exactly the charges that name it, and that each ledger transaction balances.
    /// </summary>
    public static async Task<Books> BooksAsync(TestDatabase database, Guid orgId)
    {
        await using var db = database.CreateContext();
        var charges = await db.Set<DeploymentCharge>().AsNoTracking().Where(c => c.OrganizationId == orgId).ToListAsync();
        var transactions = await db.LedgerTransactions.AsNoTracking().Where(t => t.Type == "gpu_time" && t.OrganizationId == orgId).ToListAsync();
        var ids = transactions.Select(t => t.Id).ToList();
        var entries = await db.LedgerEntries.AsNoTracking().Where(e => ids.Contains(e.TransactionId)).ToListAsync();
        var revenueAccounts = await db.LedgerAccounts.AsNoTracking().Where(a => a.Type == AccountTypes.Revenue).Select(a => a.Id).ToListAsync();
        foreach (var transaction in transactions)
        {
            var lines = entries.Where(e => e.TransactionId == transaction.Id).ToList();
            Assert.Equal(0, lines.Sum(e => e.AmountMicros));
            var paid = lines.Where(e => revenueAccounts.Contains(e.AccountId)).Sum(e => e.AmountMicros);
            Assert.Equal(charges.Where(c => c.LedgerKey == transaction.IdempotencyKey).Sum(c => c.CostMicros), paid);
        }

        Assert.All(charges.Where(c => c.CostMicros > 0), c => Assert.Contains(transactions, t => t.IdempotencyKey == c.LedgerKey));
        Guid? org = orgId;
        var accounts = await db.LedgerAccounts.AsNoTracking().Where(a => a.OrganizationId == org).ToDictionaryAsync(a => a.Type, a => a.BalanceMicros);
        var revenue = await db.LedgerAccounts.AsNoTracking().Where(a => a.Type == AccountTypes.Revenue).SumAsync(a => a.BalanceMicros);
        return new Books(
            charges.Sum(c => c.CostMicros), charges.Sum(c => c.UncollectedMicros),
            entries.Where(e => revenueAccounts.Contains(e.AccountId)).Sum(e => e.AmountMicros), revenue,
            accounts.GetValueOrDefault(AccountTypes.CustomerWallet), accounts.GetValueOrDefault(AccountTypes.CustomerHolds), charges.Count, transactions.Count);
    }

    /// <summary>The replica's charges in order: contiguous from placement to <paramref name="end"/>.</summary>
    public static async Task<List<DeploymentCharge>> ContiguousChargesAsync(TestDatabase database, Guid replicaId, DateTimeOffset placed, DateTimeOffset end)
    {
        await using var db = database.CreateContext();
        var charges = (await db.Set<DeploymentCharge>().AsNoTracking().Where(c => c.ReplicaId == replicaId).ToListAsync()).OrderBy(c => c.From).ToList();
        Assert.NotEmpty(charges);
        Assert.Equal(placed, charges[0].From);
        for (var i = 1; i < charges.Count; i++)
        {
            Assert.Equal(charges[i - 1].To, charges[i].From);
        }

        Assert.Equal(end, charges[^1].To);
        Assert.All(charges, c => Assert.Equal((long)(c.To - c.From).TotalSeconds, c.Seconds));
        return charges;
    }
}
