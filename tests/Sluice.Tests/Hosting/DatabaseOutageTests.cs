using System.Collections.Concurrent;
using System.Net;
using System.Text;
using Microsoft.EntityFrameworkCore;
using Sluice.Billing;
using Sluice.Cli;
using Sluice.Storage;
using Sluice.Tests.TestSupport;

namespace Sluice.Tests.Hosting;

/// <summary>
/// Two real server processes on one PostgreSQL, under a bounded load of priced requests, while the database goes away
/// (every connection reset and refused by <see cref="FaultProxy"/>) and comes back. Both replicas stay up, nothing
/// answers 500, and every request answered 200 is metered and billed exactly once once the database is back.
/// </summary>
[Collection(RealProcessLoad.Name)]
public sealed class DatabaseOutageTests
{
    [Fact]
    public Task Two_replicas_survive_a_5_second_database_outage_under_load_and_meter_and_bill_every_answer_once() =>
        OutageUnderLoadAsync(TimeSpan.FromSeconds(5));

    [Fact]
    public Task Two_replicas_survive_a_60_second_database_outage_under_load_and_meter_and_bill_every_answer_once() =>
        OutageUnderLoadAsync(TimeSpan.FromSeconds(60));

    private static async Task OutageUnderLoadAsync(TimeSpan outage)
    {
        await using var upstream = await FakeUpstream.StartAsync();
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Postgres);
        var kit = new ProcessKit(database);
        var (orgId, key) = await kit.PricedTenantAsync(upstream.BaseUrl, "1", "1", "10"); // one micro-unit per token
        const long Funded = 10_000_000;
        var (proxy, proxied) = FaultProxy.For(database.ConnectionString);
        await using var proxyScope = proxy;

        string[] Serve(int port) =>
        [
            "serve", "--urls", $"http://127.0.0.1:{port}", "--database", proxied, "--data-dir", database.Directory,
            "--set", "Billing:SettleInterval=00:00:00.500", "--set", "Identity:PasswordHashCost=10",
        ];
        var ports = new[] { SluiceProcess.FreePort(), SluiceProcess.FreePort() };
        await using var a = SluiceProcess.Start(Serve(ports[0]));
        await using var b = SluiceProcess.Start(Serve(ports[1]));
        await a.WaitForOutputAsync("Sluice is listening", TimeSpan.FromSeconds(60));
        await b.WaitForOutputAsync("Sluice is listening", TimeSpan.FromSeconds(60));

        // Bounded load: four clients, one request at a time each with a pause between, alternating replicas.
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(30) };
        http.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", key);
        var answers = new ConcurrentQueue<(int Status, string? RequestId, bool RetryAfter)>();
        using var stopLoad = new CancellationTokenSource();
        var clients = Enumerable.Range(0, 4).Select(client => Task.Run(async () =>
        {
            for (var i = 0; !stopLoad.IsCancellationRequested; i++)
            {
                var port = ports[(client + i) % 2];
                try
                {
                    using var content = new StringContent("""{"model":"m","messages":[{"role":"user","content":"hi"}],"max_tokens":10}""", Encoding.UTF8, "application/json");
                    using var response = await http.PostAsync($"http://127.0.0.1:{port}/v1/chat/completions", content);
                    answers.Enqueue(((int)response.StatusCode,
                        response.Headers.TryGetValues("x-request-id", out var ids) ? ids.First() : null, response.Headers.RetryAfter is not null));
                }
                catch (HttpRequestException)
                {
                    answers.Enqueue((0, null, false)); // a replica is gone: asserted below
                }

                await Task.Delay(40);
            }
        })).ToList();

        await WaitUntilAsync(() => answers.Count(x => x.Status == 200) >= 40, TimeSpan.FromSeconds(30), "warm-up traffic");
        proxy.Cut();
        var cutAt = answers.Count;
        await Task.Delay(outage);
        var duringOutage = answers.Skip(cutAt).ToList();
        proxy.Restore();
        var restoredAt = answers.Count;
        await WaitUntilAsync(() => answers.Skip(restoredAt).Count(x => x.Status == 200) >= 40, TimeSpan.FromSeconds(30), "traffic served again after the outage");
        await stopLoad.CancelAsync();
        await Task.WhenAll(clients);

        Assert.True(proxy.Refused > 0, "the replicas felt the outage");
        Assert.Contains(duringOutage, x => x.Status == 200); // cached keys and organizations kept being served
        var all = answers.ToList();
        Assert.DoesNotContain(all, x => x.Status == 0); // no replica went down
        var unexpected = all.Where(x => x.Status is not (200 or 503)).ToList();
        if (unexpected.Count > 0)
        {
            Assert.Fail($"only 200, or 503 while the database was away; got {string.Join(", ", unexpected.Select(x => $"{x.Status} ({x.RequestId})"))}; "
                + $"the replicas' errors:\n{Problems(a)}\n{Problems(b)}");
        }

        Assert.All(all.Where(x => x.Status == 503), x => Assert.True(x.RetryAfter, "a 503 says when to retry"));
        foreach (var port in ports)
        {
            Assert.Equal(HttpStatusCode.OK, (await http.GetAsync($"http://127.0.0.1:{port}/healthz")).StatusCode);
        }

        // Every answered request is metered once, and its spend written, after the outage and before any shutdown.
        var answered = all.Where(x => x.Status == 200).Select(x => x.RequestId!).ToList();
        await using (var db = database.CreateContext())
        {
            await WaitUntilAsync(async () => await db.UsageEvents.CountAsync(e => e.Status == 200) >= answered.Count, TimeSpan.FromSeconds(45), "usage events written");
            await WaitUntilAsync(async () => await RevenueAsync(db) == await db.UsageEvents.SumAsync(e => e.CostMicros), TimeSpan.FromSeconds(30), "spend settled");
        }

        a.SendSignal(Signals.Terminate);
        b.SendSignal(Signals.Terminate);
        Assert.Equal(ExitCodes.Success, await a.WaitForExitAsync(TimeSpan.FromSeconds(60)));
        Assert.Equal(ExitCodes.Success, await b.WaitForExitAsync(TimeSpan.FromSeconds(60)));

        await using var check = database.CreateContext();
        var events = await check.UsageEvents.AsNoTracking().ToListAsync();
        var metered = events.Where(e => e.Status == 200).GroupBy(e => e.RequestId).ToDictionary(g => g.Key, g => g.Count());
        Assert.Equal(answered.Count, metered.Count);
        Assert.All(answered, id => Assert.Equal(1, metered.GetValueOrDefault(id))); // each exactly once
        Assert.Equal(events.Count, events.Select(e => e.Id).Distinct().Count());
        Assert.All(events.Where(e => e.Status == 200), e => Assert.True(e.CostMicros > 0, "an answered request is charged"));

        var revenue = await RevenueAsync(check);
        Assert.Equal(events.Sum(e => e.CostMicros), revenue); // billed exactly once, to the micro-unit
        var balances = await check.LedgerAccounts.Where(x => x.OrganizationId == orgId).ToDictionaryAsync(x => x.Type, x => x.BalanceMicros);
        Assert.Equal(0, balances.GetValueOrDefault(AccountTypes.CustomerHolds));
        Assert.Equal(Funded, balances[AccountTypes.CustomerWallet] + revenue);
        Assert.Empty(await check.LedgerEntries.GroupBy(e => e.TransactionId).Where(g => g.Sum(e => e.AmountMicros) != 0).Select(g => g.Key).ToListAsync());
    }

    /// <summary>A replica's warning and error lines (exception types and ids only: Sluice logs no content).</summary>
    private static string Problems(SluiceProcess replica) =>
        string.Join('\n', (replica.Stdout + "\n" + replica.Stderr).Split('\n')
            .Where(l => (l.Contains("fail: Sluice", StringComparison.Ordinal) || l.Contains("crit: Sluice", StringComparison.Ordinal))
                && !l.Contains("Writing usage events failed", StringComparison.Ordinal))
            .Select(l => l.Length > 400 ? l[..400] : l)
            .Take(40));

    private static Task<long> RevenueAsync(SluiceDbContext db) =>
        db.LedgerAccounts.Where(x => x.Type == AccountTypes.Revenue).SumAsync(x => x.BalanceMicros);

    private static Task WaitUntilAsync(Func<bool> condition, TimeSpan timeout, string what) =>
        WaitUntilAsync(() => Task.FromResult(condition()), timeout, what);

    private static Task WaitUntilAsync(Func<Task<bool>> condition, TimeSpan timeout, string what) => Eventually.TrueAsync(condition, what, timeout);
}
