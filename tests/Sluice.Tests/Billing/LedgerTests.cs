using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Sluice.Billing;
using Sluice.Gateway;
using Sluice.Storage;
using Sluice.Tests.TestSupport;
using static Sluice.Tests.TestSupport.GatewayKit;

namespace Sluice.Tests.Billing;

public abstract class LedgerTests(DatabaseProvider provider)
{
    [Fact]
    public async Task Every_transaction_balances_cached_balances_equal_their_entries_and_customers_never_go_negative_under_concurrency()
    {
        await using var database = await TestDatabase.CreateAsync(provider);
        await using var sluice = new SluiceFactory(database);
        var (_, orgId, _) = await TenantAsync(sluice);
        await PostAsync(sluice, new LedgerPosting("fund", "manual_credit", orgId, "fund",
            [new LedgerLine(null, AccountTypes.ManualAdjustments, -1_000_000), new LedgerLine(orgId, AccountTypes.CustomerWallet, 1_000_000)]));

        // 40 concurrent debits of 0.03 against 1.00: exactly 33 can be afforded.
        var results = await Task.WhenAll(Enumerable.Range(0, 40).Select(async i =>
        {
            try
            {
                await PostAsync(sluice, new LedgerPosting($"spend-{i}", "usage", orgId, null,
                    [new LedgerLine(orgId, AccountTypes.CustomerWallet, -30_000), new LedgerLine(null, AccountTypes.Revenue, 30_000)]));
                return true;
            }
            catch (InsufficientFundsException)
            {
                return false;
            }
        }));

        Assert.Equal(33, results.Count(ok => ok));
        await using var db = database.CreateContext();
        var sums = await db.LedgerEntries.GroupBy(e => e.TransactionId).Select(g => g.Sum(e => e.AmountMicros)).ToListAsync();
        Assert.All(sums, sum => Assert.Equal(0, sum));
        foreach (var account in await db.LedgerAccounts.ToListAsync())
        {
            Assert.Equal(await db.LedgerEntries.Where(e => e.AccountId == account.Id).SumAsync(e => e.AmountMicros), account.BalanceMicros);
            if (AccountTypes.IsCustomer(account.Type))
            {
                Assert.True(account.BalanceMicros >= 0);
            }
        }

        Assert.Equal(10_000, await db.LedgerAccounts.Where(a => a.OrganizationId == orgId && a.Type == AccountTypes.CustomerWallet).Select(a => a.BalanceMicros).SingleAsync());
        await Assert.ThrowsAnyAsync<System.Data.Common.DbException>(() => database.ExecuteAsync("UPDATE ledger_entries SET amount_micros = 0"));
        await Assert.ThrowsAnyAsync<System.Data.Common.DbException>(() => database.ExecuteAsync("DELETE FROM ledger_transactions"));
    }

    [Fact]
    public async Task An_idempotency_key_posts_once_and_refuses_a_different_request()
    {
        await using var database = await TestDatabase.CreateAsync(provider);
        await using var sluice = new SluiceFactory(database);
        var (_, orgId, _) = await TenantAsync(sluice);
        var posting = new LedgerPosting("same-key", "manual_credit", orgId, "r",
            [new LedgerLine(null, AccountTypes.ManualAdjustments, -500), new LedgerLine(orgId, AccountTypes.CustomerWallet, 500)]);

        var concurrent = await Task.WhenAll(Enumerable.Range(0, 5).Select(_ => PostAsync(sluice, posting)));
        var different = posting with { Lines = [new LedgerLine(null, AccountTypes.ManualAdjustments, -600), new LedgerLine(orgId, AccountTypes.CustomerWallet, 600)] };

        Assert.Single(concurrent.Select(r => r.Transaction.Id).Distinct());
        Assert.Single(concurrent, r => !r.Replayed);
        var conflict = await Assert.ThrowsAsync<Sluice.Hosting.ApiProblemException>(() => PostAsync(sluice, different));
        Assert.Equal(409, conflict.Status);
        await using var db = database.CreateContext();
        Assert.Equal(500, await db.LedgerAccounts.Where(a => a.OrganizationId == orgId).Select(a => a.BalanceMicros).SingleAsync());
    }

    private static async Task<(LedgerTransaction Transaction, bool Replayed)> PostAsync(SluiceFactory sluice, LedgerPosting posting)
    {
        await using var scope = sluice.Services.CreateAsyncScope();
        return await scope.ServiceProvider.GetRequiredService<Ledger>().PostAsync(posting, default);
    }
}

public sealed class SqliteLedgerTests() : LedgerTests(DatabaseProvider.Sqlite);

public sealed class PostgresLedgerTests() : LedgerTests(DatabaseProvider.Postgres);

public sealed class WalletApiTests
{
    [Fact]
    public async Task Operators_credit_wallets_members_with_billing_access_see_them_and_bad_amounts_change_nothing()
    {
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Sqlite);
        await using var sluice = new SluiceFactory(database);
        using var op = await OperatorAsync(sluice);
        var (owner, orgId, _) = await TenantAsync(sluice);
        var (viewer, _) = await Identity.OrganizationTests.JoinAsync(sluice, owner, orgId, "viewer@example.com", "viewer");
        var (billing, _) = await Identity.OrganizationTests.JoinAsync(sluice, owner, orgId, "billing@example.com", "billing");

        var credited = await op.PostAsJsonAsync($"/api/v1/admin/orgs/{orgId}/wallet/credits", new { amountMicros = 25_500_000, currency = "USD", reason = "launch", idempotencyKey = "k1" });
        var replay = await op.PostAsJsonAsync($"/api/v1/admin/orgs/{orgId}/wallet/credits", new { amountMicros = 25_500_000, currency = "USD", reason = "launch", idempotencyKey = "k1" });
        var promo = await op.PostAsJsonAsync($"/api/v1/admin/orgs/{orgId}/wallet/credits", new { amountMicros = 1_000_000, reason = "welcome", promotional = true });
        var bad = new[]
        {
            await op.PostAsJsonAsync($"/api/v1/admin/orgs/{orgId}/wallet/credits", new { amountMicros = -5, reason = "x" }),
            await op.PostAsJsonAsync($"/api/v1/admin/orgs/{orgId}/wallet/credits", new { amountMicros = 10.5, reason = "x" }),
            await op.PostAsJsonAsync($"/api/v1/admin/orgs/{orgId}/wallet/credits", new { amountMicros = 10, currency = "EUR", reason = "x" }),
            await op.PostAsJsonAsync($"/api/v1/admin/orgs/{orgId}/wallet/credits", new { amountMicros = 10 }),
            await op.PostAsJsonAsync($"/api/v1/admin/orgs/{orgId}/wallet/credits", new { amountMicros = 26_000_000, reason = "launch", idempotencyKey = "k1" }),
        };
        var wallet = await billing.GetFromJsonAsync<JsonElement>($"/api/v1/orgs/{orgId}/wallet");

        Assert.Equal(HttpStatusCode.Created, credited.StatusCode);
        Assert.Equal((await credited.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetGuid(), (await replay.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetGuid());
        Assert.Equal(HttpStatusCode.Created, promo.StatusCode);
        Assert.Equal([HttpStatusCode.BadRequest, HttpStatusCode.BadRequest, HttpStatusCode.BadRequest, HttpStatusCode.BadRequest, HttpStatusCode.Conflict], bad.Select(r => r.StatusCode));
        Assert.Equal(26_500_000, wallet.GetProperty("balanceMicros").GetInt64()); // paid and promotional credit are both spendable
        Assert.Equal(0, wallet.GetProperty("heldMicros").GetInt64());
        Assert.Contains(wallet.GetProperty("transactions").EnumerateArray(), t => t.GetProperty("type").GetString() == "promotional_credit");
        Assert.Equal(2, wallet.GetProperty("transactions").GetArrayLength());
        Assert.Equal(HttpStatusCode.Forbidden, (await viewer.GetAsync($"/api/v1/orgs/{orgId}/wallet")).StatusCode);
        Assert.Equal(HttpStatusCode.Forbidden, (await owner.PostAsJsonAsync($"/api/v1/admin/orgs/{orgId}/wallet/credits", new { amountMicros = 5, reason = "self-service" })).StatusCode);
        await using var db = database.CreateContext();
        Assert.Equal(2, await db.LedgerTransactions.CountAsync());
    }

    [Fact]
    public async Task Prices_are_versioned_by_effective_time_and_costs_round_up_to_the_micro_unit()
    {
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Sqlite);
        await using var sluice = new SluiceFactory(database);
        using var op = await OperatorAsync(sluice);
        await ProviderAsync(op, "p", new Uri("http://127.0.0.1:9/v1/"));
        await ModelAsync(op, "m");
        var route = await RouteAsync(op, "m", "p", "m");

        var now = await op.PostAsJsonAsync($"/api/v1/catalog/routes/{route}/prices", new { inputPerMillionMicros = 150_000, outputPerMillionMicros = 600_000, cachedInputPerMillionMicros = 75_000 });
        var later = await op.PostAsJsonAsync($"/api/v1/catalog/routes/{route}/prices", new { inputPerMillionMicros = 200_000, outputPerMillionMicros = 800_000, effectiveFrom = DateTimeOffset.UtcNow.AddDays(1) });
        var past = await op.PostAsJsonAsync($"/api/v1/catalog/routes/{route}/prices", new { inputPerMillionMicros = 1, outputPerMillionMicros = 1, effectiveFrom = DateTimeOffset.UtcNow.AddDays(-1) });
        var negative = await op.PostAsJsonAsync($"/api/v1/catalog/routes/{route}/prices", new { inputPerMillionMicros = -1, outputPerMillionMicros = 1 });
        var prices = await op.GetFromJsonAsync<JsonElement>($"/api/v1/catalog/prices?routeId={route}");

        Assert.Equal(HttpStatusCode.Created, now.StatusCode);
        Assert.Equal(HttpStatusCode.Created, later.StatusCode);
        Assert.Equal(HttpStatusCode.BadRequest, past.StatusCode);
        Assert.Equal(HttpStatusCode.BadRequest, negative.StatusCode);
        var current = Assert.Single(prices.EnumerateArray(), p => p.GetProperty("current").GetBoolean());
        Assert.Equal(150_000, current.GetProperty("inputPerMillionMicros").GetInt64());
        Assert.Equal(2, prices.GetArrayLength());

        await using var scope = sluice.Services.CreateAsyncScope();
        var book = scope.ServiceProvider.GetRequiredService<PriceBook>();
        var price = (await book.ListAsync(route, default)).Single(p => p.Current);
        // 1000 prompt (200 cached) + 500 completion: 800*0.15 + 200*0.075 + 500*0.6 = 120 + 15 + 300 = 435 micro-units.
        Assert.Equal(435, book.Cost(price, new TokenUsage(1000, 500, 200), batch: false));
        Assert.Equal(218, book.Cost(price, new TokenUsage(1000, 500, 200), batch: true)); // 50% off, rounded up
        Assert.Equal(1, book.Cost(price, new TokenUsage(1, 0, 0), batch: false)); // 0.15 rounds up to 1
    }
}
