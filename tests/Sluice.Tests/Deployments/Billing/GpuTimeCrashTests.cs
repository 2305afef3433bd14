using Microsoft.EntityFrameworkCore;
using Sluice.Cli;
using Sluice.Deployments;
using Sluice.Deployments.Billing;
using Sluice.Storage;
using Sluice.Tests.TestSupport;

namespace Sluice.Tests.Deployments.Billing;

/// <summary>A real server metering GPU time is killed with SIGKILL mid-run and restarted on its data directory.</summary>
[Collection(RealProcessLoad.Name)]
public sealed class GpuTimeCrashTests
{
    /// <summary>
    /// The meter charges every 100 ms; the server is killed at an arbitrary point of a round (holds in memory, a charge
    /// maybe half-written) and restarted. Afterwards the replica's charges run from its placement to its stop without a
    /// gap or an overlap, their sum is the exact price of its seconds, the ledger's GPU-time revenue equals it to the
    /// micro-unit, and the wallet holds the rest with nothing left held.
    /// </summary>
    [Theory]
    [InlineData(DatabaseProvider.Sqlite)]
    [InlineData(DatabaseProvider.Postgres)]
    public async Task A_server_killed_while_metering_GPU_time_and_restarted_loses_no_charge_and_charges_nothing_twice(DatabaseProvider provider)
    {
        await using var database = await TestDatabase.CreateAsync(provider);
        var kit = new ProcessKit(database);
        await kit.RunAsync("migrate");
        var orgId = Guid.Parse((await kit.RunAsync("orgs", "create", "--name", "Tenant")).Split(' ')[2]);
        await kit.RunAsync("wallet", "credit", "--org", orgId.ToString(), "--amount", "100", "--reason", "test funds");
        await kit.RunAsync("gpu-prices", "set", "--gpu", GpuKit.L4, "--per-hour", "3.6"); // 1,000 micro-units per GPU-second
        var placed = DateTimeOffset.UtcNow;
        placed = placed.AddTicks(-(placed.Ticks % 10)); // what the database keeps: microseconds
        var (_, replica) = await GpuKit.ReplicaAsync(database, orgId, GpuKit.L4, gpus: 2, placed);

        string[] Serve(int port) =>
        [
            "serve", "--urls", $"http://127.0.0.1:{port}", "--database", database.ConnectionString, "--data-dir", database.Directory,
            "--set", "Deployments:Billing:MeterInterval=00:00:00.100", "--set", "Billing:SettleInterval=00:00:00.200",
            "--set", "Billing:LeaseTtl=00:00:03", "--set", "Identity:PasswordHashCost=10",
            // The replica is inserted by hand (no machine task behind it): the scheduler stays off so it is not stopped.
            "--set", "Deployments:Scheduler:Interval=00:10:00", "--set", "Deployments:Scheduler:LeaseDuration=00:30:00",
        ];
        async Task<long> BilledSecondsAsync()
        {
            await using var db = database.CreateContext();
            var through = (await db.DeploymentReplicas.AsNoTracking().SingleAsync(r => r.Id == replica)).BilledThrough;
            return through is { } t ? (long)Math.Round((t - placed).TotalSeconds) : 0;
        }

        var first = SluiceProcess.Start(Serve(SluiceProcess.FreePort()));
        SluiceProcess? second = null;
        try
        {
            await first.WaitForOutputAsync("Sluice is listening", TimeSpan.FromSeconds(60));
            await Eventually.TrueAsync(async () => await BilledSecondsAsync() >= 2, "the first server charges GPU time", TimeSpan.FromSeconds(30));
            first.SendSignal(Signals.Kill); // no settle round, no hold released, a charge perhaps in flight
            Assert.NotEqual(0, await first.WaitForExitAsync(TimeSpan.FromSeconds(10)));
            var atKill = await BilledSecondsAsync();

            second = SluiceProcess.Start(Serve(SluiceProcess.FreePort()));
            await second.WaitForOutputAsync("Sluice is listening", TimeSpan.FromSeconds(60));
            await Eventually.TrueAsync(async () => await BilledSecondsAsync() >= atKill + 2, "the restarted server charges on", TimeSpan.FromSeconds(30));
            var stopped = DateTimeOffset.UtcNow;
            stopped = stopped.AddTicks(-(stopped.Ticks % 10));
            await GpuKit.StopAsync(database, replica, stopped);
            var seconds = (long)Math.Ceiling((stopped - placed).TotalSeconds);
            await Eventually.TrueAsync(async () => await BilledSecondsAsync() >= seconds, "the replica is billed through its stop", TimeSpan.FromSeconds(30));
            second.SendSignal(Signals.Terminate);
            Assert.Equal(ExitCodes.Success, await second.WaitForExitAsync(TimeSpan.FromSeconds(30)));

            var books = await GpuKit.BooksAsync(database, orgId); // also: each ledger transaction carries exactly its charges
            Assert.Equal(seconds * 2 * 1_000, books.Charged);
            Assert.Equal(books.Charged, books.GpuRevenue);
            Assert.Equal(books.Charged, books.Revenue);
            Assert.Equal((100_000_000 - books.Charged, 0L), (books.Wallet, books.Holds)); // the killed server's lease was replayed and closed
            await GpuKit.ContiguousChargesAsync(database, replica, placed, placed.AddSeconds(seconds));
            await using var db = database.CreateContext();
            Assert.All(await db.WalletLeases.ToListAsync(), l => Assert.True(l.Released && l.AmountMicros == l.SettledMicros + l.ReturnedMicros, $"lease {l.Id} of {l.Replica} is still open"));
            Assert.Equal(2, (await db.Set<DeploymentCharge>().Select(c => c.Meter).Distinct().ToListAsync()).Count); // both servers charged
            Assert.Equal(DeploymentStatuses.Ready, (await db.Deployments.SingleAsync()).Status);
        }
        finally
        {
            await first.DisposeAsync();
            if (second is not null)
            {
                await second.DisposeAsync();
            }
        }
    }
}
