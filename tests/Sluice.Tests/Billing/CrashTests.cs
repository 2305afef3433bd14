using System.Net;
using System.Text;
using Microsoft.EntityFrameworkCore;
using Sluice.Billing;
using Sluice.Cli;
using Sluice.Storage;
using Sluice.Tests.TestSupport;

namespace Sluice.Tests.Billing;

/// <summary>Two real server processes on one PostgreSQL; one is killed with SIGKILL in the middle of the load.</summary>
public sealed class CrashTests
{
    [Fact]
    public async Task A_replica_killed_mid_load_leaves_no_hold_behind_after_the_ttl_and_charges_nothing_twice()
    {
        await using var upstream = await FakeUpstream.StartAsync();
        upstream.DelayBeforeHeaders = TimeSpan.FromMilliseconds(200);
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Postgres);
        var kit = new ProcessKit(database);
        var (orgId, key) = await kit.PricedTenantAsync(upstream.BaseUrl, "1", "1", "0.1"); // one micro-unit per token
        const long Funded = 100_000;

        string[] Serve(int port) => kit.OnDatabase("serve", "--urls", $"http://127.0.0.1:{port}", "--set", "Billing:LeaseTtl=00:00:03",
            "--set", "Billing:LeaseSliceMicros=200", "--set", "Billing:SettleInterval=00:00:00.200", "--set", "Identity:PasswordHashCost=10");
        var (portA, portB) = (SluiceProcess.FreePort(), SluiceProcess.FreePort());
        await using var a = SluiceProcess.Start(Serve(portA));
        await using var b = SluiceProcess.Start(Serve(portB));
        await a.WaitForOutputAsync("Sluice is listening", TimeSpan.FromSeconds(60));
        await b.WaitForOutputAsync("Sluice is listening", TimeSpan.FromSeconds(60));

        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(30) };
        http.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", key);
        async Task<HttpStatusCode?> Call(int port)
        {
            try
            {
                using var content = new StringContent("""{"model":"m","messages":[{"role":"user","content":"hi"}],"max_tokens":10}""", Encoding.UTF8, "application/json");
                return (await http.PostAsync($"http://127.0.0.1:{port}/v1/chat/completions", content)).StatusCode;
            }
            catch (HttpRequestException)
            {
                return null; // the killed replica
            }
        }

        var load = Enumerable.Range(0, 60).Select(async i =>
        {
            await Task.Delay(i * 15);
            return await Call(i % 2 == 0 ? portA : portB);
        }).ToList();
        await Task.Delay(450);
        a.SendSignal(9); // SIGKILL: no settle, no lease return
        var statuses = await Task.WhenAll(load);
        await Task.Delay(TimeSpan.FromSeconds(5)); // past the 3 s TTL; B's sweeper returns A's holds
        b.SendSignal(Signals.Terminate);
        Assert.Equal(ExitCodes.Success, await b.WaitForExitAsync(TimeSpan.FromSeconds(30)));

        Assert.Contains(statuses, s => s == HttpStatusCode.OK);
        Assert.Contains(statuses, s => s is null); // the kill happened mid-load
        await using var db = database.CreateContext();
        var balances = await db.LedgerAccounts.Where(x => x.OrganizationId == orgId).ToDictionaryAsync(x => x.Type, x => x.BalanceMicros);
        var revenue = await db.LedgerAccounts.Where(x => x.Type == AccountTypes.Revenue).SumAsync(x => x.BalanceMicros);
        Assert.Equal(0, balances.GetValueOrDefault(AccountTypes.CustomerHolds)); // no hold remains
        Assert.Equal(Funded, balances[AccountTypes.CustomerWallet] + revenue); // money is conserved
        Assert.True(revenue <= statuses.Count(s => s == HttpStatusCode.OK) * 18L, "nothing is charged twice (18 micro-units a request)");
        Assert.Empty(await db.LedgerEntries.GroupBy(e => e.TransactionId).Where(g => g.Sum(e => e.AmountMicros) != 0).Select(g => g.Key).ToListAsync());
        Assert.All(await db.WalletLeases.ToListAsync(), l => Assert.True(l.Released, $"lease {l.Id} of {l.Replica} is still open"));
    }
}
