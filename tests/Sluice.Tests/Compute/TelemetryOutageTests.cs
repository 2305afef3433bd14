using Microsoft.Data.Sqlite;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Sluice.Compute;
using Sluice.Compute.Telemetry;
using Sluice.Storage;
using Sluice.Tests.TestSupport;
using static Sluice.Tests.Compute.TelemetryTests;

namespace Sluice.Tests.Compute;

/// <summary>The telemetry writer through a database outage: samples wait, are retried, and land exactly once.</summary>
public sealed class TelemetryOutageTests
{
    [Fact]
    public async Task A_postgres_outage_loses_no_sample_and_stores_none_twice()
    {
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Postgres);
        var (proxy, proxied) = FaultProxy.For(database.ConnectionString);
        await using var proxyScope = proxy;
        await using var sluice = new SluiceFactory(database, new Dictionary<string, string?>
        {
            ["ConnectionStrings:Sluice"] = proxied,
            ["Compute:Telemetry:FlushInterval"] = "00:00:00.100",
        });
        _ = sluice.Services; // start the host
        var sink = sluice.Services.GetRequiredService<ITelemetrySink>();
        var buffer = sluice.Services.GetRequiredService<TelemetryBuffer>();
        var t0 = TelemetryBuffer.Microseconds(DateTimeOffset.UtcNow);
        void Send(int i) => sink.Record($"m-{i % 7}", Sample(t0 + TimeSpan.FromMilliseconds(i), cpu: i % 100, Gpu(0, "GPU-00000000-0000-0000-0000-000000000000", util: 1)), t0);

        for (var i = 0; i < 200; i++)
        {
            Send(i);
        }

        await Eventually.TrueAsync(() => buffer.Written == 200, "the first samples written");
        proxy.Cut();
        for (var i = 200; i < 500; i++)
        {
            Send(i);
        }

        Send(150); // a retried heartbeat of a sample already stored
        await Eventually.TrueAsync(() => buffer.FailingSince is not null, "the writer notices the outage");
        Assert.True(buffer.Queued > 0);
        await Task.Delay(TimeSpan.FromSeconds(2)); // a few retries against the cut database
        proxy.Restore();

        await Eventually.TrueAsync(() => buffer.Queued == 0 && buffer.FailingSince is null, "the backlog written after the outage", TimeSpan.FromSeconds(60));
        Assert.Equal(0, buffer.Dropped);
        Assert.Equal(0, buffer.Rejected);
        await using var db = database.CreateContext();
        Assert.Equal(500, await db.Set<MachineTelemetrySample>().CountAsync());
        Assert.Equal(500, await db.Set<GpuTelemetrySample>().CountAsync());
    }

    [Fact]
    public async Task A_sqlite_file_held_by_another_writer_delays_samples_but_loses_none()
    {
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Sqlite);
        await using var sluice = new SluiceFactory(database, new Dictionary<string, string?> { ["Compute:Telemetry:FlushInterval"] = "00:00:00.100" });
        var sink = sluice.Services.GetRequiredService<ITelemetrySink>();
        var buffer = sluice.Services.GetRequiredService<TelemetryBuffer>();
        var t0 = TelemetryBuffer.Microseconds(DateTimeOffset.UtcNow);
        for (var i = 0; i < 100; i++)
        {
            sink.Record($"m-{i % 5}", Sample(t0 + TimeSpan.FromMilliseconds(i), cpu: 1), t0);
        }

        await Eventually.TrueAsync(() => buffer.Written == 100, "the first samples written");
        await using (var holder = new SqliteConnection(database.Target.ConnectionString))
        {
            await holder.OpenAsync();
            await using var hold = holder.CreateCommand();
            hold.CommandText = "BEGIN EXCLUSIVE";
            await hold.ExecuteNonQueryAsync();
            for (var i = 100; i < 300; i++)
            {
                sink.Record($"m-{i % 5}", Sample(t0 + TimeSpan.FromMilliseconds(i), cpu: 1), t0);
            }

            await Eventually.TrueAsync(() => buffer.Queued == 200, "samples held back while the file is locked");
            await Task.Delay(TimeSpan.FromSeconds(1));
            Assert.Equal(100, buffer.Written);
            hold.CommandText = "ROLLBACK";
            await hold.ExecuteNonQueryAsync();
        }

        await Eventually.TrueAsync(() => buffer.Written == 300, "the held samples written", TimeSpan.FromSeconds(60));
        await using var db = database.CreateContext();
        Assert.Equal(300, await db.Set<MachineTelemetrySample>().CountAsync());
    }
}
