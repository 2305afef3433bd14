using System.Net;
using System.Net.Http.Json;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Sluice.Billing;
using Sluice.Storage;
using Sluice.Tests.TestSupport;
using static Sluice.Tests.TestSupport.GatewayKit;

namespace Sluice.Tests.Billing;

/// <summary>Holds never overspend, with concurrent clients on two replicas sharing one database, and crashes leave no hold behind.</summary>
public sealed class HoldTests
{
    private const string Body = """{"model":"m","messages":[{"role":"user","content":"hi"}],"max_tokens":10}""";

    [Fact]
    public async Task Sixty_four_clients_on_two_replicas_never_spend_more_than_the_wallet_holds()
    {
        await using var upstream = await FakeUpstream.StartAsync();
        upstream.DelayBeforeHeaders = TimeSpan.FromMilliseconds(400);
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Postgres);
        var settings = new Dictionary<string, string?>
        {
            ["Billing:LeaseSliceMicros"] = "1", // leases as small as one request: replicas compete for every request's money
            ["Billing:SettleInterval"] = "00:00:00.100",
        };
        var replicaA = new SluiceFactory(database, settings);
        var replicaB = new SluiceFactory(database, settings);
        using var op = await OperatorAsync(replicaA);
        await ProviderAsync(op, "p", upstream.BaseUrl);
        await ModelAsync(op, "m");
        var route = await RouteAsync(op, "m", "p", "m");
        // 1 micro-unit per input or output token: the worst case is body/4 + 10 tokens.
        await op.PostAsJsonAsync($"/api/v1/catalog/routes/{route}/prices", new { inputPerMillionMicros = 1_000_000, outputPerMillionMicros = 1_000_000 });
        var worstCase = (Body.Length / 4) + 10L;
        upstream.Usage = ((int)worstCase - 10, 10); // every request really costs its worst case: exactly Affordable fit
        const int Affordable = 20;
        var (_, orgId, key) = await TenantAsync(replicaA);
        await op.PostAsJsonAsync($"/api/v1/admin/orgs/{orgId}/wallet/credits", new { amountMicros = worstCase * Affordable, reason = "exactly twenty requests" });
        await CatalogSeesAsync("m", priced: true, replicaA, replicaB);
        using var onA = replicaA.WithKey(key);
        using var onB = replicaB.WithKey(key);

        var statuses = await Task.WhenAll(Enumerable.Range(0, 64).Select(async i =>
            (await (i % 2 == 0 ? onA : onB).PostAsync("/v1/chat/completions", Json(Body))).StatusCode));
        await UsageAsync(database, 64); // every request has finished on the server (settled its hold, then metered)
        await replicaA.DisposeAsync();
        await replicaB.DisposeAsync(); // a clean stop settles and returns every lease

        var succeeded = statuses.Count(s => s == HttpStatusCode.OK);
        Assert.InRange(succeeded, 1, Affordable);
        Assert.Equal(64 - succeeded, statuses.Count(s => s == HttpStatusCode.PaymentRequired));
        await using var db = database.CreateContext();
        var balances = await db.LedgerAccounts.Where(a => a.OrganizationId == orgId).ToDictionaryAsync(a => a.Type, a => a.BalanceMicros);
        var revenue = await db.LedgerAccounts.Where(a => a.Type == AccountTypes.Revenue).SumAsync(a => a.BalanceMicros);
        Assert.Equal(succeeded * worstCase, revenue);
        Assert.Equal((worstCase * Affordable) - revenue, balances[AccountTypes.CustomerWallet]);
        Assert.Equal(0, balances.GetValueOrDefault(AccountTypes.CustomerHolds));
        Assert.Empty(await db.LedgerEntries.GroupBy(e => e.TransactionId).Where(g => g.Sum(e => e.AmountMicros) != 0).Select(g => g.Key).ToListAsync());
        Assert.All(await db.WalletLeases.ToListAsync(), l => Assert.True(l.Released && l.AmountMicros == l.SettledMicros + l.ReturnedMicros));
    }

    [Fact]
    public async Task A_keys_spend_limit_holds_across_two_replicas_like_the_wallet()
    {
        await using var upstream = await FakeUpstream.StartAsync();
        upstream.DelayBeforeHeaders = TimeSpan.FromMilliseconds(300);
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Postgres);
        var settings = new Dictionary<string, string?> { ["Billing:LeaseSliceMicros"] = "1", ["Billing:SettleInterval"] = "00:00:00.100" };
        var replicaA = new SluiceFactory(database, settings);
        var replicaB = new SluiceFactory(database, settings);
        using var op = await OperatorAsync(replicaA);
        await ProviderAsync(op, "p", upstream.BaseUrl);
        await ModelAsync(op, "m");
        var route = await RouteAsync(op, "m", "p", "m");
        await op.PostAsJsonAsync($"/api/v1/catalog/routes/{route}/prices", new { inputPerMillionMicros = 1_000_000, outputPerMillionMicros = 1_000_000 });
        var worstCase = (Body.Length / 4) + 10L;
        upstream.Usage = ((int)worstCase - 10, 10);
        var (owner, orgId, _) = await TenantAsync(replicaA);
        await op.PostAsJsonAsync($"/api/v1/admin/orgs/{orgId}/wallet/credits", new { amountMicros = 1_000_000, reason = "plenty" });
        var created = await owner.PostAsJsonAsync($"/api/v1/orgs/{orgId}/keys", new { name = "capped", scopes = new[] { "inference" }, spendLimits = new { dailyMicros = worstCase * 5, totalMicros = worstCase * 100 } });
        var key = (await created.Content.ReadFromJsonAsync<System.Text.Json.JsonElement>()).GetProperty("key").GetString()!;
        await CatalogSeesAsync("m", priced: true, replicaA, replicaB);
        using var onA = replicaA.WithKey(key);
        using var onB = replicaB.WithKey(key);

        var responses = await Task.WhenAll(Enumerable.Range(0, 20).Select(i => (i % 2 == 0 ? onA : onB).PostAsync("/v1/chat/completions", Json(Body))));
        await UsageAsync(database, 20);
        await replicaA.DisposeAsync();
        await replicaB.DisposeAsync();

        var succeeded = responses.Count(r => r.StatusCode == HttpStatusCode.OK);
        Assert.InRange(succeeded, 1, 5);
        var refused = responses.First(r => r.StatusCode == HttpStatusCode.PaymentRequired);
        Assert.Contains("daily spend limit", await refused.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        await using var db = database.CreateContext();
        var budgets = await db.Set<KeyBudget>().ToListAsync();
        Assert.Equal(2, budgets.Count); // daily and total
        Assert.All(budgets, b => Assert.Equal((succeeded * worstCase, 0L), (b.SpentMicros, b.LeasedMicros)));
        Assert.Equal(1_000_000 - (succeeded * worstCase), await db.LedgerAccounts.Where(a => a.OrganizationId == orgId && a.Type == AccountTypes.CustomerWallet).Select(a => a.BalanceMicros).SingleAsync());
    }

    [Fact]
    public async Task A_settle_round_cancelled_while_its_write_waits_still_records_the_spend()
    {
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Postgres);
        await using var sluice = new SluiceFactory(database, new Dictionary<string, string?> { ["Billing:SettleInterval"] = "00:01:00" });
        using var op = await OperatorAsync(sluice);
        var (_, orgId, _) = await TenantAsync(sluice);
        await op.PostAsJsonAsync($"/api/v1/admin/orgs/{orgId}/wallet/credits", new { amountMicros = 10_000_000, reason = "fund" });
        var guard = sluice.Services.GetRequiredService<SpendGuard>();
        var (hold, _) = await guard.TryHoldAsync(orgId, null, 500, default);
        guard.Settle(hold!, 300);

        // Another session holds the lease row, so the round's write waits; the round is cancelled meanwhile (a stopping server).
        await using var blocker = (Npgsql.NpgsqlConnection)database.OpenConnection();
        await using var transaction = await blocker.BeginTransactionAsync();
        await using (var lockRows = new Npgsql.NpgsqlCommand("SELECT * FROM wallet_leases FOR UPDATE", blocker, transaction))
        {
            await lockRows.ExecuteNonQueryAsync();
        }

        using var stopping = new CancellationTokenSource(TimeSpan.FromMilliseconds(200));
        var round = guard.SettleAsync(returnUnused: false, stopping.Token);
        await Task.Delay(500);
        await transaction.RollbackAsync();
        try
        {
            await round;
        }
        catch (OperationCanceledException)
        {
        }

        await guard.SettleAsync(returnUnused: true, default);
        await using var db = database.CreateContext();
        Assert.Equal(300, await db.LedgerAccounts.Where(a => a.Type == AccountTypes.Revenue).SumAsync(a => a.BalanceMicros));
        Assert.Equal(10_000_000 - 300, await db.LedgerAccounts.Where(a => a.OrganizationId == orgId && a.Type == AccountTypes.CustomerWallet).Select(a => a.BalanceMicros).SingleAsync());
    }

    [Theory]
    [InlineData(DatabaseProvider.Sqlite)]
    [InlineData(DatabaseProvider.Postgres)]
    public async Task A_lease_whose_replica_never_comes_back_stays_held_until_the_deadline_then_is_returned_once(DatabaseProvider provider)
    {
        await using var database = await TestDatabase.CreateAsync(provider);
        var clock = new ManualTimeProvider(DateTimeOffset.UtcNow);
        await using var sluice = new SluiceFactory(database, new Dictionary<string, string?>
        {
            ["Billing:LeaseTtl"] = "00:00:05", ["Billing:UnreplayedLeaseDeadline"] = "00:10:00",
            ["Billing:SettleInterval"] = "00:01:00", // the test sweeps by hand
            ["Identity:SessionLifetime"] = "1.00:00:00",
        }, clock);
        using var op = await OperatorAsync(sluice);
        var (_, orgId, _) = await TenantAsync(sluice);
        await op.PostAsJsonAsync($"/api/v1/admin/orgs/{orgId}/wallet/credits", new { amountMicros = 1_000, reason = "fund" });

        // A replica on a lost machine (no journal anyone can replay): it leased 600 and settled 100 before it vanished;
        // how much of the other 500 it served is unknown.
        await using (var scope = sluice.Services.CreateAsyncScope())
        {
            var db = scope.ServiceProvider.GetRequiredService<SluiceDbContext>();
            var ledger = scope.ServiceProvider.GetRequiredService<Ledger>();
            var lease = new WalletLease { Id = Guid.NewGuid(), OrganizationId = orgId, Replica = "lost", AmountMicros = 600, SettledMicros = 100, ExpiresAt = clock.GetUtcNow().AddSeconds(5), CreatedAt = clock.GetUtcNow() };
            db.WalletLeases.Add(lease);
            await db.SaveChangesAsync();
            await ledger.PostAsync(new LedgerPosting("lost-lease", "lease", orgId, null, [new LedgerLine(orgId, AccountTypes.CustomerWallet, -600), new LedgerLine(orgId, AccountTypes.CustomerHolds, 600)]), default);
            await ledger.PostAsync(new LedgerPosting("lost-settle", "usage", orgId, null, [new LedgerLine(orgId, AccountTypes.CustomerHolds, -100), new LedgerLine(null, AccountTypes.Revenue, 100)]), default);
        }

        var guard = sluice.Services.GetRequiredService<SpendGuard>();
        async Task<Dictionary<string, long>> BalancesAsync()
        {
            await using var check = database.CreateContext();
            return await check.LedgerAccounts.Where(a => a.OrganizationId == orgId).ToDictionaryAsync(a => a.Type, a => a.BalanceMicros);
        }

        clock.Advance(TimeSpan.FromSeconds(6)); // expired: its replica is presumed dead
        Assert.Equal(0, await guard.SweepAsync(default));
        clock.Advance(TimeSpan.FromMinutes(9));
        Assert.Equal(0, await guard.SweepAsync(default));
        var held = await BalancesAsync();
        Assert.Equal((400L, 500L), (held[AccountTypes.CustomerWallet], held[AccountTypes.CustomerHolds])); // not spendable yet

        clock.Advance(TimeSpan.FromMinutes(1)); // past expiry + Billing:UnreplayedLeaseDeadline
        var swept = await Task.WhenAll(guard.SweepAsync(default), guard.SweepAsync(default)); // two replicas sweeping at once

        Assert.Equal(1, swept.Sum());
        var balances = await BalancesAsync();
        Assert.Equal(900, balances[AccountTypes.CustomerWallet]); // 1000 funded - 100 settled; the unsettled 500 came back once
        Assert.Equal(0, balances[AccountTypes.CustomerHolds]);
        await using var db2 = database.CreateContext();
        var closed = await db2.WalletLeases.SingleAsync();
        Assert.True(closed.Released);
        Assert.Equal((100L, 500L), (closed.SettledMicros, closed.ReturnedMicros));
        Assert.Equal(0, await guard.SweepAsync(default));
        Assert.Contains("was not replayed by its replica", sluice.Logs.All, StringComparison.Ordinal);
    }

    [Fact]
    public async Task An_empty_wallet_gets_402_insufficient_quota_and_free_routes_need_no_wallet()
    {
        await using var upstream = await FakeUpstream.StartAsync();
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Sqlite);
        await using var sluice = new SluiceFactory(database);
        using var op = await OperatorAsync(sluice);
        await ProviderAsync(op, "p", upstream.BaseUrl);
        await ModelAsync(op, "priced");
        var route = await RouteAsync(op, "priced", "p", "m");
        await op.PostAsJsonAsync($"/api/v1/catalog/routes/{route}/prices", new { inputPerMillionMicros = 1_000_000, outputPerMillionMicros = 1_000_000 });
        await CatalogSeesAsync("priced", priced: true, sluice);
        var (_, _, key) = await TenantAsync(sluice);
        using var client = sluice.WithKey(key);

        var refused = await client.PostAsync("/v1/chat/completions", Chat("priced", "hi"));
        var free = await client.PostAsync("/v1/chat/completions", Chat("echo", "hi"));

        Assert.Equal(HttpStatusCode.PaymentRequired, refused.StatusCode);
        Assert.Contains("\"insufficient_quota\"", await refused.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        Assert.Equal(0, upstream.Hits);
        Assert.Equal(HttpStatusCode.OK, free.StatusCode);
        Assert.Contains(await UsageAsync(database, 2), u => u.Status == 402);
    }
}
