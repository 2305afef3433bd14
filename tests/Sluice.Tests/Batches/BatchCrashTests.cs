using System.Text.Json;
using Microsoft.EntityFrameworkCore;
using Sluice.Billing;
using Sluice.Cli;
using Sluice.Storage;
using Sluice.Tests.TestSupport;
using static Sluice.Tests.TestSupport.BatchKit;

namespace Sluice.Tests.Batches;

/// <summary>A real server process killed with SIGKILL in the middle of a batch; another one finishes it.</summary>
[Collection(RealProcessLoad.Name)]
public sealed class BatchCrashTests
{
    [Fact]
    public async Task A_batch_whose_server_was_killed_is_finished_by_another_without_losing_or_repeating_a_recorded_line()
    {
        await using var upstream = await FakeUpstream.StartAsync();
        upstream.DelayBeforeHeaders = TimeSpan.FromMilliseconds(100);
        upstream.Usage = (5, 10);
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Postgres);
        var kit = new ProcessKit(database);
        var (orgId, key) = await kit.PricedTenantAsync(upstream.BaseUrl, "2", "2", "0.1"); // 1 micro-unit a token at the batch discount
        const long Funded = 100_000;

        string[] Serve(int port) => kit.OnDatabase("serve", "--urls", $"http://127.0.0.1:{port}", "--set", "Batches:LeaseDuration=00:00:02",
            "--set", "Batches:PollInterval=00:00:00.100", "--set", "Batches:MaxConcurrency=4", "--set", "Billing:LeaseTtl=00:00:03",
            "--set", "Billing:SettleInterval=00:00:00.200");
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(30) };
        http.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", key);

        var portA = SluiceProcess.FreePort();
        string batchId;
        await using (var a = SluiceProcess.Start(Serve(portA)))
        {
            await a.WaitForOutputAsync("Sluice is listening", TimeSpan.FromSeconds(60));
            http.BaseAddress = new Uri($"http://127.0.0.1:{portA}");
            batchId = (await CreateAsync(http, await UploadIdAsync(http, ChatLines(80, model: "m")))).GetProperty("id").GetString()!;
            await WaitUntilCompletedAsync(http, batchId, 12);

            a.SendSignal(9); // SIGKILL: lines in flight die unrecorded, the lease is left to expire
            await a.WaitForExitAsync(TimeSpan.FromSeconds(10));
        }

        var hitsAtKill = upstream.Hits;
        Assert.InRange(hitsAtKill, 12, 79);
        var portB = SluiceProcess.FreePort();
        await using var b = SluiceProcess.Start(Serve(portB));
        await b.WaitForOutputAsync("Sluice is listening", TimeSpan.FromSeconds(60));
        using var onB = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{portB}"), Timeout = TimeSpan.FromSeconds(30) };
        onB.DefaultRequestHeaders.Authorization = http.DefaultRequestHeaders.Authorization;
        var batch = await WaitAsync(onB, batchId, TimeSpan.FromSeconds(60));

        Assert.Equal("completed", batch.GetProperty("status").GetString());
        var output = await LinesAsync(onB, batch.GetProperty("output_file_id").GetString()!);
        Assert.Equal(80, output.Select(l => l.GetProperty("custom_id").GetString()).Distinct().Count());
        Assert.Equal(80, output.Count);

        // Only the lines in flight at the kill (at most the runner's concurrency) ran twice; recorded ones never did.
        var asked = upstream.Requests.Select(r => JsonDocument.Parse(r.Body).RootElement.GetProperty("messages")[0].GetProperty("content").GetString()).ToList();
        Assert.InRange(asked.Count, 80, 84);
        Assert.InRange(asked.GroupBy(q => q).Count(g => g.Count() > 1), 0, 4);

        await Task.Delay(TimeSpan.FromSeconds(4)); // past the 3 s wallet lease TTL: the dead replica's holds return
        b.SendSignal(Signals.Terminate);
        Assert.Equal(ExitCodes.Success, await b.WaitForExitAsync(TimeSpan.FromSeconds(30)));
        await using var db = database.CreateContext();
        var balances = await db.LedgerAccounts.Where(x => x.OrganizationId == orgId).ToDictionaryAsync(x => x.Type, x => x.BalanceMicros);
        var revenue = await db.LedgerAccounts.Where(x => x.Type == AccountTypes.Revenue).SumAsync(x => x.BalanceMicros);
        Assert.Equal(0, balances.GetValueOrDefault(AccountTypes.CustomerHolds));
        Assert.Equal(Funded, balances[AccountTypes.CustomerWallet] + revenue);
        Assert.InRange(revenue, 1, 80 * 15L); // 15 micro-units a line: nothing charged twice; what A had not yet written goes unbilled
        Assert.Empty(Directory.EnumerateFiles(Path.Combine(database.Directory, "files", "journals")));
    }
}
