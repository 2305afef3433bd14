using System.Net;
using System.Net.Http.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Sluice.Billing;
using Sluice.Deployments;
using Sluice.Deployments.Billing;
using Sluice.Storage;
using Sluice.Tests.TestSupport;
using static Sluice.Tests.TestSupport.GatewayKit;

namespace Sluice.Tests.Deployments.Billing;

/// <summary>
/// Deployments' reserved GPU time, charged per second through the wallet's holds and leases, on a manual clock: the
/// ledger to the micro-unit, suspension when the wallet runs out, the wallet's say on scaling, the low-balance warning.
/// </summary>
public abstract class GpuTimeBillingTests(DatabaseProvider provider)
{
    private static Dictionary<string, string?> Settings(Dictionary<string, string?>? extra = null)
    {
        var settings = new Dictionary<string, string?>
        {
            ["Deployments:Billing:MeterInterval"] = "00:01:00", // a real-time timer that never fires in a test: rounds are run by hand
            ["Identity:SessionLifetime"] = "1.00:00:00",
            ["Billing:AlertInterval"] = "01:00:00",

            // Replicas are inserted as the scheduler writes them (no machine tasks behind them): it stays off, so it never
            // stops them for want of a task.
            ["Deployments:Scheduler:Interval"] = "00:10:00",
            ["Deployments:Scheduler:LeaseDuration"] = "00:30:00",
        };
        foreach (var (key, value) in extra ?? [])
        {
            settings[key] = value;
        }

        return settings;
    }

    private static async Task<Guid> FundedTenantAsync(SluiceFactory sluice, HttpClient op, long micros)
    {
        var (_, orgId, _) = await TenantAsync(sluice);
        (await op.PostAsJsonAsync($"/api/v1/admin/orgs/{orgId}/wallet/credits", new { amountMicros = micros, reason = "fund" })).EnsureSuccessStatusCode();
        return orgId;
    }

    private static async Task PriceAsync(HttpClient op, string gpuType, long perGpuHourMicros, DateTimeOffset? from = null) =>
        Assert.Equal(HttpStatusCode.Created, (await op.PostAsJsonAsync("/api/v1/gpu-prices", new { gpuType, perGpuHourMicros, effectiveFrom = from })).StatusCode);

    [Fact]
    public async Task A_replica_running_1h23m17s_on_two_GPUs_across_84_meter_rounds_and_a_price_change_is_charged_the_exact_sum_in_charges_ledger_and_wallet()
    {
        await using var database = await TestDatabase.CreateAsync(provider);
        var clock = GpuKit.Clock();
        await using var sluice = new SluiceFactory(database, Settings(), clock);
        using var op = await OperatorAsync(sluice);
        const long Funds = 1_000_000_000;
        var orgId = await FundedTenantAsync(sluice, op, Funds);
        var placed = GpuKit.Placed(clock.GetUtcNow());
        const long First = 2_345_679; // per GPU-hour: odd, so every interval's exact cost has a fraction
        const long Second = 3_141_593;
        await PriceAsync(op, GpuKit.H100, First);
        await PriceAsync(op, GpuKit.H100, Second, placed.AddSeconds(2_430)); // half-way through the 41st meter interval
        var (_, replica) = await GpuKit.ReplicaAsync(database, orgId, GpuKit.H100, gpus: 2, placed);
        var meter = sluice.Services.GetRequiredService<GpuTimeMeter>();

        for (var round = 0; round < 83; round++)
        {
            clock.Advance(TimeSpan.FromSeconds(60));
            await meter.RunOnceAsync(default);
        }

        var stopped = placed.AddSeconds((1 * 3600) + (23 * 60) + 17); // 4,997 s
        clock.Advance(TimeSpan.FromSeconds(30));
        await GpuKit.StopAsync(database, replica, stopped);
        await meter.RunOnceAsync(default);
        await meter.RunOnceAsync(default); // nothing left to charge: changes nothing

        // ceil(2 GPUs × (2,430 s at the first price + 2,567 s at the second) / 3600): one rounding over the whole run.
        var exact = ((2 * ((First * 2_430) + (Second * 2_567))) + 3_599) / 3_600;
        var books = await GpuKit.BooksAsync(database, orgId);
        Assert.Equal(exact, books.Charged);
        Assert.Equal(exact, books.GpuRevenue);
        Assert.Equal(exact, books.Revenue);
        Assert.Equal(0, books.Uncollected);
        Assert.Equal(Funds - exact, books.Wallet + books.Holds); // the rest is the organization's, part of it still leased
        Assert.InRange(books.Transactions, 84, 84);
        var charges = await GpuKit.ContiguousChargesAsync(database, replica, placed, stopped);
        Assert.Contains(charges, c => c.From == placed.AddSeconds(2_400) && c.To == placed.AddSeconds(2_430) && c.PerGpuHourMicros == First); // split at the price change
        Assert.Contains(charges, c => c.From == placed.AddSeconds(2_430) && c.To == placed.AddSeconds(2_460) && c.PerGpuHourMicros == Second);
        Assert.All(charges, c => Assert.Equal(c.To <= placed.AddSeconds(2_430) ? First : Second, c.PerGpuHourMicros));
        Assert.All(charges, c => Assert.Equal((GpuKit.H100, 2), (c.GpuType, c.GpuCount)));
        await using var db = database.CreateContext();
        Assert.Equal(stopped, (await db.DeploymentReplicas.SingleAsync(r => r.Id == replica)).BilledThrough);

        // Stopping the server gives the held intervals and the leases back: the wallet holds everything not charged.
        await sluice.DisposeAsync();
        var after = await GpuKit.BooksAsync(database, orgId);
        Assert.Equal((Funds - exact, 0L), (after.Wallet, after.Holds));
    }

    [Fact]
    public async Task A_wallet_covering_exactly_500_seconds_is_charged_exactly_that_the_deployment_is_suspended_before_it_runs_out_and_the_wallet_never_goes_negative()
    {
        await using var database = await TestDatabase.CreateAsync(provider);
        var clock = GpuKit.Clock();
        await using var sluice = new SluiceFactory(database, Settings(), clock);
        using var op = await OperatorAsync(sluice);
        await PriceAsync(op, GpuKit.L4, 3_600_000); // 1,000 micro-units per GPU-second
        var orgId = await FundedTenantAsync(sluice, op, 500_000);
        var placed = GpuKit.Placed(clock.GetUtcNow());
        var (deployment, replica) = await GpuKit.ReplicaAsync(database, orgId, GpuKit.L4, gpus: 1, placed);
        var meter = sluice.Services.GetRequiredService<GpuTimeMeter>();
        async Task<Deployment> DeploymentAsync()
        {
            await using var db = database.CreateContext();
            return await db.Deployments.AsNoTracking().SingleAsync(d => d.Id == deployment);
        }

        // Each round charges the last minute and holds the next two (Deployments:Billing:HoldAheadIntervals).
        for (var round = 1; round <= 6; round++)
        {
            clock.Advance(TimeSpan.FromSeconds(60));
            await meter.RunOnceAsync(default);
            Assert.Equal(DeploymentStatuses.Ready, (await DeploymentAsync()).Status); // 360 s charged: 140 s left, the next two minutes still held
        }

        clock.Advance(TimeSpan.FromSeconds(60));
        await meter.RunOnceAsync(default); // 420 s charged; 80 s left cannot hold two minutes: suspended

        var suspended = await DeploymentAsync();
        Assert.Equal((DeploymentStatuses.Suspended, 0), (suspended.Status, suspended.DesiredReplicas));
        Assert.Equal(GpuTimeMeter.SuspendedReason, suspended.StatusReason);
        Assert.Equal(420_000, (await GpuKit.BooksAsync(database, orgId)).Charged);

        // The scheduler takes a while to stop the replica: the meter charges what the wallet still covers, no more.
        for (var round = 0; round < 2; round++)
        {
            clock.Advance(TimeSpan.FromSeconds(60));
            await meter.RunOnceAsync(default);
            var books = await GpuKit.BooksAsync(database, orgId);
            Assert.True(books.Wallet >= 0 && books.Holds >= 0);
        }

        await GpuKit.StopAsync(database, replica, placed.AddSeconds(530.5)); // 531 s billed at the stop
        clock.Advance(TimeSpan.FromSeconds(60));
        await meter.RunOnceAsync(default);

        var final = await GpuKit.BooksAsync(database, orgId);
        Assert.Equal(500_000, final.Charged);
        Assert.Equal(500_000, final.GpuRevenue);
        Assert.Equal(31_000, final.Uncollected); // seconds 500..531: ran after the money ended, never taken from the wallet
        Assert.Equal((0L, 0L), (final.Wallet, final.Holds));
        await GpuKit.ContiguousChargesAsync(database, replica, placed, placed.AddSeconds(531));
        await using var db = database.CreateContext();
        var events = await db.DeploymentEvents.Where(e => e.DeploymentId == deployment).ToListAsync();
        Assert.Single(events, e => e.Kind == DeploymentEventKinds.Suspended);
        var audit = await db.AuditEntries.Where(a => a.Action == "deployment.suspend").ToListAsync();
        Assert.Equal($"deployment:{deployment} reason=wallet", Assert.Single(audit).Target);
        Assert.Equal(orgId, audit[0].OrganizationId);
        Assert.Contains("suspended: its wallet cannot cover its GPU time", sluice.Logs.All, StringComparison.Ordinal);

        // Nothing more is charged once the replica is billed through its stop.
        await meter.RunOnceAsync(default);
        Assert.Equal(final, await GpuKit.BooksAsync(database, orgId));
    }

    [Fact]
    public async Task The_wallet_refuses_scaling_up_beyond_what_it_covers_for_the_horizon_and_unpriced_GPU_types()
    {
        await using var database = await TestDatabase.CreateAsync(provider);
        await using var sluice = new SluiceFactory(database, Settings());
        using var op = await OperatorAsync(sluice);
        await PriceAsync(op, GpuKit.L4, 3_600_000); // 1,000 per GPU-second: one 2-GPU replica for 10 minutes is 1,200,000
        var orgId = await FundedTenantAsync(sluice, op, 2_500_000);
        var billing = sluice.Services.GetRequiredService<IDeploymentBilling>();
        Assert.IsType<WalletDeploymentBilling>(billing);

        var dedicated = GpuKit.Deployment(orgId, GpuKit.L4, gpus: 2, minReplicas: 1);
        Assert.Equal((true, (string?)null), await billing.CanRunAsync(dedicated, 2, default));
        var refused = await billing.CanRunAsync(dedicated, 3, default);
        Assert.False(refused.Covered);
        Assert.Equal("the wallet covers 2 replicas of this deployment for 10 min of GPU time, not 3", refused.Refusal);

        var unpriced = await billing.CanRunAsync(GpuKit.Deployment(orgId, "NVIDIA A10G", gpus: 1, minReplicas: 1), 1, default);
        Assert.False(unpriced.Covered);
        Assert.Contains("no price per GPU-hour", unpriced.Refusal, StringComparison.Ordinal);

        // Serverless with token prices pays per token (not for its replicas' time, by default); without token prices it
        // pays for its GPU time like a dedicated one; a deployment without GPUs costs nothing.
        Assert.True((await billing.CanRunAsync(GpuKit.Deployment(orgId, GpuKit.L4, gpus: 2, minReplicas: 0, pricedPerToken: true), 8, default)).Covered);
        Assert.False((await billing.CanRunAsync(GpuKit.Deployment(orgId, GpuKit.L4, gpus: 2, minReplicas: 0), 8, default)).Covered);
        Assert.True((await billing.CanRunAsync(GpuKit.Deployment(orgId, null, gpus: 0, minReplicas: 1), 8, default)).Covered);

        // With the settings: unpriced GPU types run free, and serverless replicas' time is billed (so covered) too.
        await using var other = new SluiceFactory(database, Settings(new() { ["Deployments:Billing:AllowUnpricedGpus"] = "true", ["Deployments:Billing:BillServerlessReplicaTime"] = "true" }));
        var lenient = other.Services.GetRequiredService<IDeploymentBilling>();
        Assert.True((await lenient.CanRunAsync(GpuKit.Deployment(orgId, "NVIDIA A10G", gpus: 1, minReplicas: 1), 1, default)).Covered);
        Assert.False((await lenient.CanRunAsync(GpuKit.Deployment(orgId, GpuKit.L4, gpus: 2, minReplicas: 0, pricedPerToken: true), 3, default)).Covered);
    }

    [Fact]
    public async Task GPU_time_spend_fires_the_low_balance_alert_and_each_running_deployment_gets_a_billing_warning()
    {
        var received = 0;
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        await using var receiver = builder.Build();
        receiver.MapPost("/hook", () =>
        {
            Interlocked.Increment(ref received);
            return Results.Ok();
        });
        await receiver.StartAsync();

        await using var database = await TestDatabase.CreateAsync(provider);
        var clock = GpuKit.Clock();
        await using var sluice = new SluiceFactory(database, Settings(new() { ["Billing:WebhookAllowedNetworks:0"] = "127.0.0.1/32" }), clock);
        using var op = await OperatorAsync(sluice);
        await PriceAsync(op, GpuKit.L4, 3_600_000);
        var (owner, orgId, _) = await TenantAsync(sluice);
        await op.PostAsJsonAsync($"/api/v1/admin/orgs/{orgId}/wallet/credits", new { amountMicros = 1_000_000, reason = "fund" });
        (await owner.PutAsJsonAsync($"/api/v1/orgs/{orgId}/wallet/alert", new { thresholdMicros = 700_000, url = receiver.Urls.First() + "/hook" })).EnsureSuccessStatusCode();
        var (deployment, _) = await GpuKit.ReplicaAsync(database, orgId, GpuKit.L4, gpus: 1, GpuKit.Placed(clock.GetUtcNow()));
        var meter = sluice.Services.GetRequiredService<GpuTimeMeter>();
        async Task CheckAlertsAsync()
        {
            await using var scope = sluice.Services.CreateAsyncScope();
            await scope.ServiceProvider.GetRequiredService<LowBalanceAlerts>().CheckAsync(default);
        }

        async Task<int> WarningsAsync()
        {
            await using var db = database.CreateContext();
            return await db.DeploymentEvents.CountAsync(e => e.DeploymentId == deployment && e.Kind == DeploymentEventKinds.BillingWarning);
        }

        clock.Advance(TimeSpan.FromSeconds(60));
        await meter.RunOnceAsync(default); // 60,000 charged: 940,000 left
        await CheckAlertsAsync();
        Assert.Equal((0, 0), (received, await WarningsAsync()));

        for (var round = 0; round < 5; round++)
        {
            clock.Advance(TimeSpan.FromSeconds(60));
            await meter.RunOnceAsync(default); // 360,000 charged by the end: 640,000 left, below 700,000
        }

        await CheckAlertsAsync();
        await CheckAlertsAsync(); // once per crossing
        Assert.Equal((1, 1), (received, await WarningsAsync()));
        await using var check = database.CreateContext();
        var warning = await check.DeploymentEvents.SingleAsync(e => e.DeploymentId == deployment && e.Kind == DeploymentEventKinds.BillingWarning);
        Assert.Equal("{\"balanceMicros\":640000,\"thresholdMicros\":700000}", warning.Detail);
        Assert.Equal(DeploymentStatuses.Ready, (await check.Deployments.SingleAsync(d => d.Id == deployment)).Status); // warned, still running
    }

    [Fact]
    public async Task Two_servers_metering_the_same_replicas_charge_each_second_once()
    {
        await using var database = await TestDatabase.CreateAsync(provider);
        var clock = GpuKit.Clock();
        await using var a = new SluiceFactory(database, Settings(), clock);
        using var op = await OperatorAsync(a);
        await PriceAsync(op, GpuKit.L4, 3_600_000);
        var orgId = await FundedTenantAsync(a, op, 100_000_000);
        await using var b = new SluiceFactory(database, Settings(), clock);
        var placed = GpuKit.Placed(clock.GetUtcNow());
        var (_, first) = await GpuKit.ReplicaAsync(database, orgId, GpuKit.L4, gpus: 1, placed);
        var (_, second) = await GpuKit.ReplicaAsync(database, orgId, GpuKit.L4, gpus: 4, placed);
        var meterA = a.Services.GetRequiredService<GpuTimeMeter>();
        var meterB = b.Services.GetRequiredService<GpuTimeMeter>();
        Assert.NotEqual(meterA.Meter, meterB.Meter);

        for (var round = 0; round < 10; round++)
        {
            clock.Advance(TimeSpan.FromSeconds(60));
            await Task.WhenAll(meterA.RunOnceAsync(default), meterB.RunOnceAsync(default));
        }

        await GpuKit.StopAsync(database, first, placed.AddSeconds(600));
        await GpuKit.StopAsync(database, second, placed.AddSeconds(600));
        clock.Advance(TimeSpan.FromSeconds(60));
        await Task.WhenAll(meterA.RunOnceAsync(default), meterB.RunOnceAsync(default));
        await Task.WhenAll(meterA.RunOnceAsync(default), meterB.RunOnceAsync(default));

        var books = await GpuKit.BooksAsync(database, orgId);
        Assert.Equal(600 * 5 * 1_000, books.Charged); // 600 s × (1 + 4) GPUs × 1,000 per GPU-second
        Assert.Equal(books.Charged, books.GpuRevenue);
        Assert.Equal(100_000_000 - books.Charged, books.Wallet + books.Holds);
        await GpuKit.ContiguousChargesAsync(database, first, placed, placed.AddSeconds(600));
        await GpuKit.ContiguousChargesAsync(database, second, placed, placed.AddSeconds(600));
    }

    [Fact]
    public async Task Serverless_replicas_priced_per_token_are_not_charged_for_their_time_unless_the_setting_says_so_and_unpriced_ones_are()
    {
        await using var database = await TestDatabase.CreateAsync(provider);
        var clock = GpuKit.Clock();
        await using var sluice = new SluiceFactory(database, Settings(), clock);
        using var op = await OperatorAsync(sluice);
        await PriceAsync(op, GpuKit.L4, 3_600_000);
        var orgId = await FundedTenantAsync(sluice, op, 10_000_000);
        var placed = GpuKit.Placed(clock.GetUtcNow());
        var (_, replica) = await GpuKit.ReplicaAsync(database, orgId, GpuKit.L4, gpus: 1, placed, minReplicas: 0, pricedPerToken: true);
        var meter = sluice.Services.GetRequiredService<GpuTimeMeter>();

        clock.Advance(TimeSpan.FromSeconds(90));
        await meter.RunOnceAsync(default);

        var books = await GpuKit.BooksAsync(database, orgId);
        Assert.Equal((0L, 0, 10_000_000L), (books.Charged, books.Charges, books.Wallet + books.Holds));
        await using var db = database.CreateContext();
        Assert.Equal(placed.AddSeconds(90), (await db.DeploymentReplicas.SingleAsync(r => r.Id == replica)).BilledThrough); // never billed later

        await using var billed = new SluiceFactory(database, Settings(new() { ["Deployments:Billing:BillServerlessReplicaTime"] = "true" }), clock);
        clock.Advance(TimeSpan.FromSeconds(30));
        await billed.Services.GetRequiredService<GpuTimeMeter>().RunOnceAsync(default);
        Assert.Equal(30_000, (await GpuKit.BooksAsync(database, orgId)).Charged); // from the last second not billed on

        // A serverless endpoint nobody priced per token pays for its GPUs' time: they never run unpaid.
        var (_, unpriced) = await GpuKit.ReplicaAsync(database, orgId, GpuKit.L4, gpus: 1, clock.GetUtcNow(), minReplicas: 0, name: "unpriced-serverless");
        clock.Advance(TimeSpan.FromSeconds(10));
        await meter.RunOnceAsync(default);
        await using var after = database.CreateContext();
        Assert.Equal(10_000, await after.Set<Sluice.Deployments.Billing.DeploymentCharge>().Where(c => c.ReplicaId == unpriced).SumAsync(c => c.CostMicros));
    }
}

public sealed class SqliteGpuTimeBillingTests() : GpuTimeBillingTests(DatabaseProvider.Sqlite);

public sealed class PostgresGpuTimeBillingTests() : GpuTimeBillingTests(DatabaseProvider.Postgres);
