using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Sluice.Billing;
using Sluice.Gateway;
using Sluice.Storage;
using Sluice.Tests.TestSupport;
using static Sluice.Tests.TestSupport.GatewayKit;

namespace Sluice.Tests.Billing;

/// <summary>
/// A dead replica's spend journal is replayed by the next replica on its data directory (settling what it charged,
/// restoring its usage events, returning the rest), exactly once; and the guard's purses do not outlive their use.
/// </summary>
public sealed class SpendJournalTests
{
    private static readonly Dictionary<string, string?> SlowSettling = new() { ["Billing:SettleInterval"] = "00:01:00" };

    [Theory]
    [InlineData(DatabaseProvider.Sqlite)]
    [InlineData(DatabaseProvider.Postgres)]
    public async Task A_dead_replicas_journal_is_replayed_on_start_settling_what_it_served_restoring_its_usage_and_returning_the_rest(DatabaseProvider provider)
    {
        await using var database = await TestDatabase.CreateAsync(provider);
        await using var first = new SluiceFactory(database, SlowSettling);
        using var op = await OperatorAsync(first);
        var (_, orgId, _) = await TenantAsync(first);
        await op.PostAsJsonAsync($"/api/v1/admin/orgs/{orgId}/wallet/credits", new { amountMicros = 10_000, reason = "fund" });
        Guid keyId;
        await using (var db = database.CreateContext())
        {
            keyId = await db.ApiKeys.Where(k => k.OrganizationId == orgId).Select(k => k.Id).SingleAsync();
        }

        // What the dead replica left in the database: a wallet lease of 1000 with 200 settled, an untouched lease of 500,
        // a key-budget lease of 500, and one of its three usage events.
        var (walletLease, idleLease, keyLease) = (Guid.NewGuid(), Guid.NewGuid(), Guid.NewGuid());
        var events = new[] { Event(orgId, 200), Event(orgId, 60), Event(orgId, 120) };
        await using (var scope = first.Services.CreateAsyncScope())
        {
            var db = scope.ServiceProvider.GetRequiredService<SluiceDbContext>();
            var ledger = scope.ServiceProvider.GetRequiredService<Ledger>();
            var now = DateTimeOffset.UtcNow;
            db.WalletLeases.AddRange(
                new WalletLease { Id = walletLease, OrganizationId = orgId, Replica = "dead-replica", AmountMicros = 1_000, SettledMicros = 200, ExpiresAt = now, CreatedAt = now },
                new WalletLease { Id = idleLease, OrganizationId = orgId, Replica = "dead-replica", AmountMicros = 500, ExpiresAt = now, CreatedAt = now },
                new WalletLease { Id = keyLease, OrganizationId = orgId, KeyId = keyId, Period = "total", Replica = "dead-replica", AmountMicros = 500, ExpiresAt = now, CreatedAt = now });
            db.Set<KeyBudget>().Add(new KeyBudget { KeyId = keyId, Period = "total", LeasedMicros = 500 });
            db.UsageEvents.Add(events[0]);
            await db.SaveChangesAsync();
            await ledger.PostAsync(new LedgerPosting("dead-lease", "lease", orgId, null, [new LedgerLine(orgId, AccountTypes.CustomerWallet, -1_500), new LedgerLine(orgId, AccountTypes.CustomerHolds, 1_500)]), default);
            await ledger.PostAsync(new LedgerPosting("dead-settle", "usage", orgId, null, [new LedgerLine(orgId, AccountTypes.CustomerHolds, -200), new LedgerLine(null, AccountTypes.Revenue, 200)]), default);
        }

        // Its journal: three requests (each charged on the wallet lease and the key's lease), a duplicate event line,
        // and a last line the kill cut short.
        var journal = new StringBuilder()
            .Append(Charge(walletLease, 200, keyLease, 200)).Append(Usage(events[0]))
            .Append(Charge(walletLease, 260, keyLease, 260)).Append(Usage(events[1]));
        var second = new StringBuilder()
            .Append(Charge(walletLease, 380, keyLease, 380)).Append(Usage(events[2])).Append(Usage(events[1]))
            .Append($"C {walletLease:N} 999999 {keyLease:N}");
        var deadJournal = WriteJournal(database.Directory, "dead-replica", journal.ToString(), second.ToString());

        await using var successor = new SluiceFactory(database, SlowSettling);
        _ = successor.Services; // starts it: its settler replays the journal before its first round
        await WaitUntilAsync(() => successor.Logs.All.Contains("Replayed the spend journal of replica dead-replica", StringComparison.Ordinal), "the replay");

        async Task AssertReplayedAsync()
        {
            await using var db = database.CreateContext();
            var balances = await db.LedgerAccounts.Where(a => a.OrganizationId == orgId).ToDictionaryAsync(a => a.Type, a => a.BalanceMicros);
            var revenue = await db.LedgerAccounts.Where(a => a.Type == AccountTypes.Revenue).SumAsync(a => a.BalanceMicros);
            Assert.Equal(380, revenue); // what the journal says it charged: the 200 already settled plus 180
            Assert.Equal(10_000 - 380, balances[AccountTypes.CustomerWallet]); // the rest of both leases came back
            Assert.Equal(0, balances[AccountTypes.CustomerHolds]);
            var leases = await db.WalletLeases.ToDictionaryAsync(l => l.Id);
            Assert.Equal((true, 380L, 620L), (leases[walletLease].Released, leases[walletLease].SettledMicros, leases[walletLease].ReturnedMicros));
            Assert.Equal((true, 0L, 500L), (leases[idleLease].Released, leases[idleLease].SettledMicros, leases[idleLease].ReturnedMicros));
            Assert.Equal((true, 380L, 120L), (leases[keyLease].Released, leases[keyLease].SettledMicros, leases[keyLease].ReturnedMicros));
            var budget = await db.Set<KeyBudget>().SingleAsync();
            Assert.Equal((380L, 0L), (budget.SpentMicros, budget.LeasedMicros));
            var usage = await db.UsageEvents.Where(u => u.OrganizationId == orgId).ToListAsync();
            Assert.Equal(events.Select(e => e.Id).Order(), usage.Select(u => u.Id).Order()); // restored once each
            Assert.Equal(revenue, usage.Sum(u => u.CostMicros)); // the usage report and the ledger agree
            Assert.Empty(await db.LedgerEntries.GroupBy(e => e.TransactionId).Where(g => g.Sum(e => e.AmountMicros) != 0).Select(g => g.Key).ToListAsync());
        }

        await AssertReplayedAsync();
        Assert.False(Directory.Exists(deadJournal));
        Assert.True(Directory.Exists(first.Services.GetRequiredService<SpendJournal>().JournalDirectory)); // alive: locked, left alone

        // The same journal found again (say the replayer died before deleting it) changes nothing.
        WriteJournal(database.Directory, "dead-replica", journal.ToString(), second.ToString());
        Assert.Equal(1, await successor.Services.GetRequiredService<SpendJournal>().ReplayPredecessorsAsync(successor.Services.GetRequiredService<SpendGuard>(), default));
        await AssertReplayedAsync();
    }

    [Fact]
    public async Task A_replica_that_stops_cleanly_leaves_no_journal_behind()
    {
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Sqlite);
        var sluice = new SluiceFactory(database);
        var (_, orgId, _) = await TenantAsync(sluice);
        using var op = await OperatorAsync(sluice);
        await op.PostAsJsonAsync($"/api/v1/admin/orgs/{orgId}/wallet/credits", new { amountMicros = 10_000, reason = "fund" });
        var guard = sluice.Services.GetRequiredService<SpendGuard>();
        var (hold, _) = await guard.TryHoldAsync(orgId, null, 500, default);
        guard.Settle(hold!, 300);
        var directory = sluice.Services.GetRequiredService<SpendJournal>().JournalDirectory;
        Assert.Contains(Directory.GetFiles(directory!, "*.log"), f => new FileInfo(f).Length > 0);

        await sluice.DisposeAsync(); // settles, returns its lease, then deletes the journal it no longer needs

        Assert.False(Directory.Exists(directory));
        await using var db = database.CreateContext();
        Assert.Equal(300, await db.LedgerAccounts.Where(a => a.Type == AccountTypes.Revenue).SumAsync(a => a.BalanceMicros));
    }

    [Fact]
    public async Task Purses_left_empty_are_evicted_including_a_past_days_spend_limit_without_losing_what_they_settled()
    {
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Sqlite);
        var clock = new ManualTimeProvider(DateTimeOffset.UtcNow);
        await using var sluice = new SluiceFactory(database, new Dictionary<string, string?>(SlowSettling) { ["Identity:SessionLifetime"] = "3.00:00:00" }, clock);
        using var op = await OperatorAsync(sluice);
        var (_, orgId, _) = await TenantAsync(sluice);
        await op.PostAsJsonAsync($"/api/v1/admin/orgs/{orgId}/wallet/credits", new { amountMicros = 10_000_000, reason = "fund" });
        var keyId = await KeyIdAsync(database, orgId);
        var guard = sluice.Services.GetRequiredService<SpendGuard>();
        var limits = new SpendGuard.KeyLimits(keyId, 1_000_000, null, null);

        var (today, _) = await guard.TryHoldAsync(orgId, limits, 500, default);
        guard.Settle(today!, 300);
        Assert.Equal(2, guard.PurseCount); // the wallet and today's limit
        await guard.SettleAsync(returnUnused: false, default);
        Assert.Equal(2, guard.PurseCount); // their leases are still open

        clock.Advance(TimeSpan.FromDays(1));
        var (tomorrow, _) = await guard.TryHoldAsync(orgId, limits, 500, default);
        guard.Settle(tomorrow!, 200);
        Assert.Equal(3, guard.PurseCount); // yesterday's limit is done with, but still in memory
        await guard.SettleAsync(returnUnused: true, default);

        Assert.Equal(0, guard.PurseCount);
        await using var db = database.CreateContext();
        Assert.Equal(500, await db.LedgerAccounts.Where(a => a.Type == AccountTypes.Revenue).SumAsync(a => a.BalanceMicros));
        Assert.Equal(new[] { (300L, 0L), (200L, 0L) }, (await db.Set<KeyBudget>().OrderBy(b => b.Period).ToListAsync()).Select(b => (b.SpentMicros, b.LeasedMicros)));
        Assert.All(await db.WalletLeases.ToListAsync(), l => Assert.True(l.Released && l.AmountMicros == l.SettledMicros + l.ReturnedMicros));

        // A purse evicted and needed again is simply made anew.
        var (again, _) = await guard.TryHoldAsync(orgId, limits, 500, default);
        guard.Settle(again!, 100);
        await guard.SettleAsync(returnUnused: true, default);
        Assert.Equal(600, await db.LedgerAccounts.Where(a => a.Type == AccountTypes.Revenue).SumAsync(a => a.BalanceMicros));
    }

    [Fact]
    public async Task Evicting_purses_while_holds_are_taken_loses_no_spend_and_leaves_no_lease_open()
    {
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Sqlite);
        await using var sluice = new SluiceFactory(database, new Dictionary<string, string?>(SlowSettling) { ["Billing:LeaseSliceMicros"] = "300" });
        using var op = await OperatorAsync(sluice);
        var (_, orgId, _) = await TenantAsync(sluice);
        await op.PostAsJsonAsync($"/api/v1/admin/orgs/{orgId}/wallet/credits", new { amountMicros = 10_000_000, reason = "fund" });
        var keyId = await KeyIdAsync(database, orgId);
        var guard = sluice.Services.GetRequiredService<SpendGuard>();
        var limits = new SpendGuard.KeyLimits(keyId, null, null, 10_000_000);

        var charged = 0L;
        var holders = Enumerable.Range(0, 8).Select(i => Task.Run(async () =>
        {
            for (var n = 0; n < 40; n++)
            {
                var (hold, refusal) = await guard.TryHoldAsync(orgId, limits, 100, default);
                Assert.True(hold is not null, refusal);
                await Task.Yield();
                guard.Settle(hold, 60);
                Interlocked.Add(ref charged, 60);
                if (n % 5 == i % 5)
                {
                    await Task.Delay(1);
                }
            }
        })).ToList();
        while (!holders.All(h => h.IsCompleted))
        {
            await guard.SettleAsync(returnUnused: true, default); // closes idle leases and evicts emptied purses meanwhile
        }

        await Task.WhenAll(holders);
        await guard.SettleAsync(returnUnused: true, default);

        Assert.Equal(0, guard.PurseCount);
        await using var db = database.CreateContext();
        var balances = await db.LedgerAccounts.Where(a => a.OrganizationId == orgId).ToDictionaryAsync(a => a.Type, a => a.BalanceMicros);
        Assert.Equal(8 * 40 * 60, charged);
        Assert.Equal(charged, await db.LedgerAccounts.Where(a => a.Type == AccountTypes.Revenue).SumAsync(a => a.BalanceMicros));
        Assert.Equal((10_000_000 - charged, 0L), (balances[AccountTypes.CustomerWallet], balances.GetValueOrDefault(AccountTypes.CustomerHolds)));
        var budget = await db.Set<KeyBudget>().SingleAsync();
        Assert.Equal((charged, 0L), (budget.SpentMicros, budget.LeasedMicros));
        Assert.All(await db.WalletLeases.ToListAsync(), l => Assert.True(l.Released && l.AmountMicros == l.SettledMicros + l.ReturnedMicros));
    }

    private static async Task<Guid> KeyIdAsync(TestDatabase database, Guid orgId)
    {
        await using var db = database.CreateContext();
        return await db.ApiKeys.Where(k => k.OrganizationId == orgId).Select(k => k.Id).SingleAsync();
    }

    private static UsageEvent Event(Guid orgId, long cost) => new()
    {
        Id = Guid.CreateVersion7(), RequestId = Guid.NewGuid().ToString("N"), OrganizationId = orgId, Endpoint = "chat.completions", Model = "m",
        Status = 200, PromptTokens = cost / 2, CompletionTokens = cost / 2, CostMicros = cost, StartedAt = DateTimeOffset.UtcNow,
    };

    private static string Charge(Guid wallet, long walletTotal, Guid key, long keyTotal) => $"C {wallet:N} {walletTotal} {key:N} {keyTotal}\n";

    private static string Usage(UsageEvent usage) => $"U {JsonSerializer.Serialize(usage, SpendJournalJson.Default.UsageEvent)}\n";

    private static string WriteJournal(string dataDir, string replica, params string[] segments)
    {
        var directory = Path.Combine(dataDir, "spend-journal", Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(directory);
        File.WriteAllText(Path.Combine(directory, "lock"), "");
        File.WriteAllText(Path.Combine(directory, "replica"), replica);
        for (var i = 0; i < segments.Length; i++)
        {
            File.WriteAllText(Path.Combine(directory, $"{i + 1:D8}.log"), segments[i]);
        }

        return directory;
    }

    private static Task WaitUntilAsync(Func<bool> condition, string what) => Eventually.TrueAsync(condition, what, TimeSpan.FromSeconds(30));
}
