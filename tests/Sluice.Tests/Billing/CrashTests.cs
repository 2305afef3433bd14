using System.Globalization;
using System.Net;
using System.Text;
using Microsoft.EntityFrameworkCore;
using Sluice.Billing;
using Sluice.Cli;
using Sluice.Storage;
using Sluice.Tests.TestSupport;

namespace Sluice.Tests.Billing;

/// <summary>Two real server processes on one PostgreSQL; one is killed with SIGKILL in the middle of the load.</summary>
[Collection(RealProcessLoad.Name)]
public sealed class CrashTests
{
    private const string Body = """{"model":"m","messages":[{"role":"user","content":"hi"}],"max_tokens":10}""";

    /// <summary>
    /// 64 clients spend a wallet that covers exactly <c>Affordable</c> requests (each costs exactly its hold) through two
    /// replicas; one is killed with SIGKILL mid-load while it has served spend it has not settled, and restarts on its data
    /// directory; the other's sweeper runs throughout. No more than the wallet's worth is ever served, and afterwards the
    /// ledger, the leases and the usage report agree to the micro-unit.
    /// </summary>
    [Fact]
    public async Task A_replica_killed_mid_load_and_restarted_never_serves_more_than_the_wallet_and_the_usage_report_matches_the_ledger()
    {
        await using var upstream = await FakeUpstream.StartAsync();
        upstream.DelayBeforeHeaders = TimeSpan.FromMilliseconds(20);
        var worstCase = (Body.Length / 4) + 10L; // 1 micro-unit per token: the prompt estimate plus max_tokens
        upstream.Usage = ((int)worstCase - 10, 10); // every request costs exactly its hold
        const int Affordable = 1_200;
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Postgres);
        var kit = new ProcessKit(database);
        var funds = (worstCase * Affordable / 1_000_000m).ToString(CultureInfo.InvariantCulture);
        var (orgId, key) = await kit.PricedTenantAsync(upstream.BaseUrl, "1", "1", funds);

        // Each replica has its own data directory (its own spend journal), with the installation's keys.
        var dirA = Path.Combine(database.Directory, "replica-a");
        CopyKeys(database.Directory, dirA);
        string[] Serve(int port, string dataDir) =>
        [
            "serve", "--urls", $"http://127.0.0.1:{port}", "--database", database.ConnectionString, "--data-dir", dataDir,
            "--set", "Billing:LeaseTtl=00:00:03", "--set", $"Billing:LeaseSliceMicros={worstCase * 40}",
            "--set", "Billing:SettleInterval=00:00:00.500", "--set", "Identity:PasswordHashCost=10",
        ];
        var (portA, portB) = (SluiceProcess.FreePort(), SluiceProcess.FreePort());
        var a = SluiceProcess.Start(Serve(portA, dirA));
        await using var b = SluiceProcess.Start(Serve(portB, database.Directory));
        SluiceProcess? restarted = null;
        try
        {
            await a.WaitForOutputAsync("Sluice is listening", TimeSpan.FromSeconds(60));
            await b.WaitForOutputAsync("Sluice is listening", TimeSpan.FromSeconds(60));

            using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(30) };
            http.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", key);
            var served = 0;
            var refused = 0;
            var lastServed = DateTime.UtcNow;
            using var stop = new CancellationTokenSource();
            var clients = Enumerable.Range(0, 64).Select(i => Task.Run(async () =>
            {
                var port = i % 2 == 0 ? portA : portB;
                while (!stop.IsCancellationRequested)
                {
                    try
                    {
                        using var content = new StringContent(Body, Encoding.UTF8, "application/json");
                        using var response = await http.PostAsync($"http://127.0.0.1:{port}/v1/chat/completions", content);
                        if (response.StatusCode == HttpStatusCode.OK)
                        {
                            Interlocked.Increment(ref served);
                            lastServed = DateTime.UtcNow;
                        }
                        else if (response.StatusCode == HttpStatusCode.PaymentRequired)
                        {
                            Interlocked.Increment(ref refused);
                            await Task.Delay(20);
                        }
                        else
                        {
                            Assert.Fail($"unexpected {(int)response.StatusCode}: {await response.Content.ReadAsStringAsync()}");
                        }
                    }
                    catch (HttpRequestException)
                    {
                        port = port == portA ? portB : portA; // the killed replica: go to the other one meanwhile
                        await Task.Delay(20);
                    }
                }
            })).ToList();

            await WaitUntilAsync(() => Volatile.Read(ref served) >= Affordable / 3, TimeSpan.FromSeconds(60), "a third of the wallet is spent");
            var pidA = a.Id;
            a.SendSignal(9); // SIGKILL: no settle round, no lease return, no usage flush
            Assert.NotEqual(0, await a.WaitForExitAsync(TimeSpan.FromSeconds(10)));
            var servedAtKill = Volatile.Read(ref served);
            Assert.True(servedAtKill < Affordable, "the kill happened while the wallet still had money");

            // The killed replica restarts on its data directory; B keeps serving and sweeping meanwhile.
            restarted = SluiceProcess.Start(Serve(portA, dirA));
            await restarted.WaitForOutputAsync("Sluice is listening", TimeSpan.FromSeconds(60));
            await WaitUntilAsync(() => LeasesOpenAsync(database, pidA).ContinueWith(t => t.Result == 0), TimeSpan.FromSeconds(60), "the killed replica's leases are closed");

            // Spend the rest: until the wallet refuses everyone for a while.
            await WaitUntilAsync(() => Volatile.Read(ref refused) > 0 && DateTime.UtcNow - lastServed > TimeSpan.FromSeconds(2), TimeSpan.FromSeconds(90), "the wallet is spent");
            await stop.CancelAsync();
            await Task.WhenAll(clients);
            restarted.SendSignal(Signals.Terminate);
            b.SendSignal(Signals.Terminate);
            Assert.Equal(ExitCodes.Success, await restarted.WaitForExitAsync(TimeSpan.FromSeconds(30)));
            Assert.Equal(ExitCodes.Success, await b.WaitForExitAsync(TimeSpan.FromSeconds(30)));

            Assert.True(served <= Affordable, $"{served} requests were served on a wallet for {Affordable}");
            Assert.Contains("Replayed the spend journal", restarted.Stdout, StringComparison.Ordinal);
            await using var db = database.CreateContext();
            var balances = await db.LedgerAccounts.Where(x => x.OrganizationId == orgId).ToDictionaryAsync(x => x.Type, x => x.BalanceMicros);
            var revenue = await db.LedgerAccounts.Where(x => x.Type == AccountTypes.Revenue).SumAsync(x => x.BalanceMicros);
            Assert.Equal(0, balances.GetValueOrDefault(AccountTypes.CustomerHolds)); // no hold remains
            Assert.Equal(worstCase * Affordable, balances[AccountTypes.CustomerWallet] + revenue); // money is conserved
            // Every answer charged once, nothing else charged. A request A had answered (and journaled) when it was
            // killed, but whose bytes never reached the client, is charged too: at most the 32 clients that were on A.
            Assert.Equal(0, revenue % worstCase);
            var charged = revenue / worstCase;
            Assert.InRange(charged, served, Math.Min(served + 32, Affordable));
            Assert.Empty(await db.LedgerEntries.GroupBy(e => e.TransactionId).Where(g => g.Sum(e => e.AmountMicros) != 0).Select(g => g.Key).ToListAsync());
            Assert.All(await db.WalletLeases.ToListAsync(), l => Assert.True(l.Released && l.AmountMicros == l.SettledMicros + l.ReturnedMicros, $"lease {l.Id} of {l.Replica} is still open"));
            var usage = await db.UsageEvents.Where(u => u.OrganizationId == orgId).ToListAsync();
            Assert.Equal(revenue, usage.Sum(u => u.CostMicros)); // the usage report and the ledger agree to the micro-unit
            Assert.Equal(charged, usage.Count(u => u.Status == 200)); // each charged answer has its usage event
            Assert.Equal(usage.Count, usage.Select(u => u.Id).Distinct().Count());
        }
        finally
        {
            await a.DisposeAsync();
            if (restarted is not null)
            {
                await restarted.DisposeAsync();
            }
        }
    }

    private static void CopyKeys(string from, string to)
    {
        Directory.CreateDirectory(Path.Combine(to, "keys"));
        if (Directory.Exists(Path.Combine(from, "keys")))
        {
            foreach (var file in Directory.GetFiles(Path.Combine(from, "keys")))
            {
                File.Copy(file, Path.Combine(to, "keys", Path.GetFileName(file)));
            }
        }
    }

    /// <summary>Unreleased leases written by the process with this id (a replica id is machine/pid/guid).</summary>
    private static async Task<int> LeasesOpenAsync(TestDatabase database, int processId)
    {
        await using var db = database.CreateContext();
        var marker = $"/{processId}/";
        return await db.WalletLeases.CountAsync(l => !l.Released && l.Replica.Contains(marker));
    }

    private static Task WaitUntilAsync(Func<Task<bool>> condition, TimeSpan timeout, string what) => Eventually.TrueAsync(condition, what, timeout);

    private static Task WaitUntilAsync(Func<bool> condition, TimeSpan timeout, string what) => WaitUntilAsync(() => Task.FromResult(condition()), timeout, what);
}
