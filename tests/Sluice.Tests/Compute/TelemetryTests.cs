using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Sluice.Compute;
using Sluice.Compute.Protocol;
using Sluice.Compute.Telemetry;
using Sluice.Privacy;
using Sluice.Storage;
using Sluice.Tests.TestSupport;
using static Sluice.Tests.TestSupport.GatewayKit;

namespace Sluice.Tests.Compute;

/// <summary>Telemetry storage: the buffered sink and its writer, rollups, retention, the read API and its bad input.</summary>
public abstract class TelemetryTests(DatabaseProvider provider)
{
    private const string GpuUuid0 = "GPU-1b2c3d4e-0000-1111-2222-333344445555";
    private const string GpuUuid1 = "GPU-1b2c3d4e-0000-1111-2222-333344445556";

    [Fact]
    public async Task Samples_are_written_in_batches_with_their_gpus_and_read_back_by_time_range()
    {
        var clock = new ManualTimeProvider(DateTimeOffset.UtcNow);
        await using var database = await TestDatabase.CreateAsync(provider);
        await using var sluice = new SluiceFactory(database, time: clock);
        using var op = await OperatorAsync(sluice);
        var sink = sluice.Services.GetRequiredService<ITelemetrySink>();
        var t0 = TelemetryBuffer.Microseconds(clock.GetUtcNow() - TimeSpan.FromMinutes(3));
        for (var i = 0; i < 3; i++)
        {
            var at = t0 + TimeSpan.FromSeconds(10 * i);
            sink.Record("m-1", Sample(at, cpu: 10 * (i + 1), gpus: [Gpu(0, GpuUuid0, util: 50 + i), Gpu(1, GpuUuid1, util: 60 + i)]), at);
        }

        sink.Record("m-2", Sample(t0, cpu: 99), t0);
        var buffer = sluice.Services.GetRequiredService<TelemetryBuffer>();
        await Eventually.TrueAsync(() => buffer.Written == 4, "four samples written");

        await using (var db = database.CreateContext())
        {
            Assert.Equal(4, await db.Set<MachineTelemetrySample>().CountAsync());
            Assert.Equal(6, await db.Set<GpuTelemetrySample>().CountAsync());
        }

        var all = await ReadAsync(op, $"/api/v1/machines/m-1/telemetry?from={Iso(t0)}&to={Iso(t0 + TimeSpan.FromMinutes(1))}");
        var samples = all.GetProperty("samples").EnumerateArray().ToList();
        Assert.Equal([10.0, 20.0, 30.0], samples.Select(s => s.GetProperty("cpuPercent").GetDouble()));
        Assert.Equal(t0, samples[0].GetProperty("at").GetDateTimeOffset());
        Assert.Equal([50.0, 60.0], samples[0].GetProperty("gpus").EnumerateArray().Select(g => g.GetProperty("utilizationPercent").GetDouble()));
        Assert.Equal(GpuUuid1, samples[2].GetProperty("gpus")[1].GetProperty("uuid").GetString());
        Assert.False(all.GetProperty("truncated").GetBoolean());

        // The range is [from, to): the first sample is out, the second in; another machine's samples never show.
        var later = await ReadAsync(op, $"/api/v1/machines/m-1/telemetry?from={Iso(t0 + TimeSpan.FromSeconds(5))}&to={Iso(t0 + TimeSpan.FromSeconds(20))}");
        Assert.Equal([20.0], later.GetProperty("samples").EnumerateArray().Select(s => s.GetProperty("cpuPercent").GetDouble()));
        var other = await ReadAsync(op, $"/api/v1/machines/m-2/telemetry?from={Iso(t0)}&to={Iso(t0 + TimeSpan.FromMinutes(1))}");
        Assert.Equal([99.0], other.GetProperty("samples").EnumerateArray().Select(s => s.GetProperty("cpuPercent").GetDouble()));

        // Defaults: the last hour, raw.
        var recent = await ReadAsync(op, "/api/v1/machines/m-1/telemetry");
        Assert.Equal(3, recent.GetProperty("samples").GetArrayLength());
        Assert.Equal("raw", recent.GetProperty("resolution").GetString());
    }

    [Fact]
    public async Task A_sample_sent_twice_is_stored_once_absurd_figures_are_stored_as_null_and_a_wrong_agent_clock_is_replaced()
    {
        await using var database = await TestDatabase.CreateAsync(provider);
        await using var sluice = new SluiceFactory(database);
        var sink = sluice.Services.GetRequiredService<ITelemetrySink>();
        var buffer = sluice.Services.GetRequiredService<TelemetryBuffer>();
        var now = TelemetryBuffer.Microseconds(DateTimeOffset.UtcNow);

        var sample = Sample(now, cpu: 42, gpus: [Gpu(0, GpuUuid0, util: 10)]);
        sink.Record("m-dup", sample, now);
        sink.Record("m-dup", sample, now); // a heartbeat the agent retried, in the same batch
        await Eventually.TrueAsync(() => buffer.Written + buffer.Rejected >= 2, "both copies handled");
        sink.Record("m-dup", sample, now); // and once more, in a later batch
        await Eventually.TrueAsync(() => buffer.Written + buffer.Rejected >= 3, "the third copy handled");

        var absurd = new TelemetrySample
        {
            At = now - TimeSpan.FromDays(3), // the agent's clock is days off: stored at the time it was received
            CpuPercent = 250,
            Load1 = double.NaN,
            MemoryUsedBytes = -5,
            MemoryTotalBytes = 64L << 30,
            Gpus =
            [
                Gpu(0, "not-a-uuid", util: 101) with { TemperatureC = 5000, PowerDrawW = -1, XidErrors = -3, EccErrors = 2 },
                Gpu(0, GpuUuid1, util: 5), // the same index twice: the first is kept
                Gpu(300, GpuUuid1, util: 5), // no such index
            ],
        };
        sink.Record("m-absurd", absurd, now + TimeSpan.FromSeconds(1));
        sink.Record("not a machine id!", Sample(now, cpu: 1), now);
        await Eventually.TrueAsync(() => buffer.Written + buffer.Rejected >= 5, "every sample handled");
        Assert.Equal(1, buffer.Rejected); // the malformed machine id

        await using var db = database.CreateContext();
        Assert.Equal(1, await db.Set<MachineTelemetrySample>().CountAsync(s => s.MachineId == "m-dup"));
        Assert.Equal(1, await db.Set<GpuTelemetrySample>().CountAsync(s => s.MachineId == "m-dup"));
        var stored = await db.Set<MachineTelemetrySample>().SingleAsync(s => s.MachineId == "m-absurd");
        Assert.Equal(now + TimeSpan.FromSeconds(1), stored.At);
        Assert.Null(stored.CpuPercent);
        Assert.Null(stored.Load1);
        Assert.Null(stored.MemoryUsedBytes);
        Assert.Equal(64L << 30, stored.MemoryTotalBytes);
        Assert.Equal(1, stored.GpuCount);
        var gpu = await db.Set<GpuTelemetrySample>().SingleAsync(s => s.MachineId == "m-absurd");
        Assert.Equal((0, null, null, null, null, null, 2L), (gpu.GpuIndex, gpu.GpuUuid, gpu.UtilizationPercent, gpu.TemperatureC, gpu.PowerDrawW, gpu.XidErrors, gpu.EccErrors));
        Assert.Equal(0, await db.Set<MachineTelemetrySample>().CountAsync(s => s.MachineId == "not a machine id!"));
    }

    [Fact]
    public async Task A_full_buffer_drops_samples_without_blocking_and_counts_them_where_operators_look()
    {
        await using var database = await TestDatabase.CreateAsync(provider);
        await using var sluice = new SluiceFactory(database, new Dictionary<string, string?>
        {
            ["Compute:Telemetry:QueueCapacity"] = "100",
            ["Compute:Telemetry:FlushInterval"] = "00:00:30", // nothing drains while the test fills it
        });
        using var op = await OperatorAsync(sluice);
        var sink = sluice.Services.GetRequiredService<ITelemetrySink>();
        var now = DateTimeOffset.UtcNow;
        for (var i = 0; i < 150; i++)
        {
            sink.Record($"m-{i}", Sample(now, cpu: 1), now);
        }

        var pipeline = await ReadAsync(op, "/api/v1/admin/telemetry-pipeline");
        Assert.Equal(50, pipeline.GetProperty("dropped").GetInt64());
        Assert.Equal(100, pipeline.GetProperty("queued").GetInt32());
        Assert.Equal(150, pipeline.GetProperty("received").GetInt64());
        var ready = await sluice.Anonymous().GetFromJsonAsync<JsonElement>("/readyz");
        Assert.Equal("degraded", ready.GetProperty("checks").GetProperty("telemetry").GetProperty("status").GetString());
        Assert.Contains("50 dropped", ready.GetProperty("checks").GetProperty("telemetry").GetProperty("detail").GetString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Hourly_rollups_hold_min_avg_max_per_machine_and_gpu_and_computing_them_again_changes_nothing()
    {
        var clock = new ManualTimeProvider(DateTimeOffset.UtcNow);
        await using var database = await TestDatabase.CreateAsync(provider);
        await using var sluice = new SluiceFactory(database, time: clock);
        var sink = sluice.Services.GetRequiredService<ITelemetrySink>();
        var buffer = sluice.Services.GetRequiredService<TelemetryBuffer>();
        var hour = TelemetryRollup.Floor(clock.GetUtcNow()) - TimeSpan.FromHours(3);
        (double Cpu, long Mem, double Util, double Temp)[] figures = [(10.0, 100L, 20.0, 40.0), (30.0, 300L, 40.0, 60.0), (20.0, 200L, 90.0, 50.0)];
        for (var i = 0; i < figures.Length; i++)
        {
            var at = hour + TimeSpan.FromMinutes(5 + (20 * i));
            var sample = Sample(at, cpu: figures[i].Cpu, gpus: [Gpu(0, GpuUuid0, util: figures[i].Util) with { TemperatureC = figures[i].Temp, XidErrors = i }]) with { MemoryUsedBytes = figures[i].Mem };
            sink.Record("m-roll", sample, at);
        }

        sink.Record("m-roll", Sample(hour + TimeSpan.FromMinutes(70), cpu: 77), hour + TimeSpan.FromMinutes(70)); // the next hour
        sink.Record("m-other", Sample(hour + TimeSpan.FromMinutes(10), cpu: 5), hour + TimeSpan.FromMinutes(10));
        await Eventually.TrueAsync(() => buffer.Written == 5, "samples written");

        var rollup = sluice.Services.GetRequiredService<TelemetryRollup>();
        var first = await rollup.RollUpAsync(CancellationToken.None);
        Assert.True(first >= 2, $"rolled {first} hours");
        var (machines, gpus) = await HoursAsync(database);

        var row = machines.Single(h => h.MachineId == "m-roll" && h.Hour == hour);
        Assert.Equal((3, 10.0, 20.0, 30.0), (row.Samples, row.CpuPercentMin, row.CpuPercentAvg, row.CpuPercentMax));
        Assert.Equal((100L, 200L, 300L), (row.MemoryUsedBytesMin, row.MemoryUsedBytesAvg, row.MemoryUsedBytesMax));
        Assert.Equal(1, row.GpuCountMax);
        var gpu = gpus.Single(g => g.MachineId == "m-roll" && g.Hour == hour);
        Assert.Equal((3, 0, 20.0, 50.0, 90.0), (gpu.Samples, gpu.GpuIndex, gpu.UtilizationPercentMin, gpu.UtilizationPercentAvg, gpu.UtilizationPercentMax));
        Assert.Equal((40.0, 50.0, 60.0, 2L), (gpu.TemperatureCMin, gpu.TemperatureCAvg, gpu.TemperatureCMax, gpu.XidErrorsMax));
        Assert.Equal((1, 77.0), machines.Where(h => h.MachineId == "m-roll" && h.Hour == hour + TimeSpan.FromHours(1)).Select(h => (h.Samples, h.CpuPercentMax)).Single());
        Assert.Equal(5.0, machines.Single(h => h.MachineId == "m-other").CpuPercentAvg);

        // Again, and from a second replica at the same time: the same rows, no hour counted twice.
        var again = await Task.WhenAll(rollup.RollUpAsync(CancellationToken.None), rollup.RollUpAsync(CancellationToken.None));
        Assert.Contains(again, r => r is not null);
        var (machines2, gpus2) = await HoursAsync(database);
        Assert.Equal(machines.Select(Describe), machines2.Select(Describe));
        Assert.Equal(gpus.Count, gpus2.Count);

        // The read API serves the rollups.
        using var op = await OperatorAsync(sluice);
        var read = await ReadAsync(op, $"/api/v1/machines/m-roll/telemetry?resolution=hour&from={Iso(hour)}&to={Iso(hour + TimeSpan.FromHours(2))}");
        var hours = read.GetProperty("hours").EnumerateArray().ToList();
        Assert.Equal(2, hours.Count);
        Assert.Equal(20.0, hours[0].GetProperty("cpuPercent").GetProperty("avg").GetDouble());
        Assert.Equal(90.0, hours[0].GetProperty("gpus")[0].GetProperty("utilizationPercent").GetProperty("max").GetDouble());
    }

    [Fact]
    public async Task Rollups_carry_on_after_days_without_any_samples()
    {
        var clock = new ManualTimeProvider(DateTimeOffset.UtcNow);
        await using var database = await TestDatabase.CreateAsync(provider);
        await using var sluice = new SluiceFactory(database, time: clock);
        var sink = sluice.Services.GetRequiredService<ITelemetrySink>();
        var buffer = sluice.Services.GetRequiredService<TelemetryBuffer>();
        var rollup = sluice.Services.GetRequiredService<TelemetryRollup>();
        var before = TelemetryRollup.Floor(clock.GetUtcNow()) - TimeSpan.FromDays(3);
        sink.Record("m-gap", Sample(before + TimeSpan.FromMinutes(5), cpu: 10), before + TimeSpan.FromMinutes(5));
        await Eventually.TrueAsync(() => buffer.Written == 1, "the first sample written");
        await rollup.RollUpAsync(CancellationToken.None);

        // Three days of silence (more than one run's worth of hours), then samples again: their hour is rolled up.
        var after = TelemetryRollup.Floor(clock.GetUtcNow()) - TimeSpan.FromHours(2);
        sink.Record("m-gap", Sample(after + TimeSpan.FromMinutes(5), cpu: 20), after + TimeSpan.FromMinutes(5));
        await Eventually.TrueAsync(() => buffer.Written == 2, "the second sample written");
        await rollup.RollUpAsync(CancellationToken.None);

        var (machines, _) = await HoursAsync(database);
        Assert.Equal([before, after], machines.Where(h => h.MachineId == "m-gap").Select(h => h.Hour).Order());
    }

    [Fact]
    public async Task Retention_deletes_raw_samples_after_their_period_and_rollups_after_theirs_and_a_class_hold_keeps_them()
    {
        var clock = new ManualTimeProvider(DateTimeOffset.UtcNow);
        await using var database = await TestDatabase.CreateAsync(provider);
        await using var sluice = new SluiceFactory(database, time: clock);
        using var op = await OperatorAsync(sluice);
        var sink = sluice.Services.GetRequiredService<ITelemetrySink>();
        var buffer = sluice.Services.GetRequiredService<TelemetryBuffer>();
        var now = TelemetryBuffer.Microseconds(clock.GetUtcNow());
        var minute = TimeSpan.FromMinutes(1);
        var raw = new[] { now - TimeSpan.FromDays(9), now - TimeSpan.FromDays(7) - minute, now - TimeSpan.FromDays(7) + minute };
        foreach (var at in raw)
        {
            sink.Record("m-old", Sample(at, cpu: 1, gpus: [Gpu(0, GpuUuid0, util: 1)]), at);
        }

        await Eventually.TrueAsync(() => buffer.Written == 3, "samples written");
        await using (var seed = database.CreateContext())
        {
            foreach (var hour in new[] { now - TimeSpan.FromDays(90) - TimeSpan.FromHours(1), now - TimeSpan.FromDays(90) + TimeSpan.FromHours(1) })
            {
                seed.Add(new MachineTelemetryHour { MachineId = "m-old", Hour = TelemetryRollup.Floor(hour), Samples = 360 });
                seed.Add(new GpuTelemetryHour { MachineId = "m-old", Hour = TelemetryRollup.Floor(hour), GpuIndex = 0, Samples = 360 });
            }

            await seed.SaveChangesAsync();
        }

        var first = await SweepAsync(op);
        Assert.Equal((2, 0), Result(first, RetentionClass.MachineTelemetry));
        Assert.Equal((1, 0), Result(first, RetentionClass.MachineTelemetryRollups));
        await using (var db = database.CreateContext())
        {
            Assert.Equal([raw[2]], (await db.Set<MachineTelemetrySample>().ToListAsync()).Select(s => s.At));
            Assert.Equal([raw[2]], (await db.Set<GpuTelemetrySample>().ToListAsync()).Select(s => s.At));
            Assert.Equal(1, await db.Set<MachineTelemetryHour>().CountAsync());
            Assert.Equal(1, await db.Set<GpuTelemetryHour>().CountAsync());
            if (provider == DatabaseProvider.Postgres)
            {
                // The oldest sample's whole day went as a partition; the current days' partitions are still there.
                var days = await TelemetryPartitions.DaysAsync(db, CancellationToken.None);
                Assert.DoesNotContain(TelemetryPartitions.Day(raw[0]), days);
                Assert.Contains(TelemetryPartitions.Day(raw[2]), days);
            }
        }

        // Two minutes later the last sample is outside too, but a hold on the class keeps it.
        clock.Advance(2 * minute);
        var hold = await op.PostAsJsonAsync("/api/v1/admin/legal-holds", new { scope = "class", retentionClass = RetentionClass.MachineTelemetry, reason = "fleet incident review" });
        Assert.Equal(HttpStatusCode.Created, hold.StatusCode);
        Assert.Equal((0, 1), Result(await SweepAsync(op), RetentionClass.MachineTelemetry));
        await using (var db = database.CreateContext())
        {
            Assert.Equal(1, await db.Set<MachineTelemetrySample>().CountAsync());
        }
    }

    [Fact]
    public async Task The_generated_policy_names_machine_telemetry_and_its_rollups_with_their_configured_periods()
    {
        await using var database = await TestDatabase.CreateAsync(provider);
        await using var sluice = new SluiceFactory(database, new Dictionary<string, string?>
        {
            ["Retention:MachineTelemetry"] = "3.00:00:00",
            ["Retention:MachineTelemetryRollups"] = "60.00:00:00",
        });
        var policy = await sluice.Anonymous().GetFromJsonAsync<JsonElement>("/privacy.json");
        var retention = policy.GetProperty("retention").EnumerateArray().ToList();
        var rawClass = retention.Single(r => r.GetProperty("class").GetString() == RetentionClass.MachineTelemetry);
        var rollupClass = retention.Single(r => r.GetProperty("class").GetString() == RetentionClass.MachineTelemetryRollups);
        Assert.Equal(3, rawClass.GetProperty("days").GetInt32());
        Assert.Equal(60, rollupClass.GetProperty("days").GetInt32());
        Assert.Contains("machine telemetry", rawClass.GetProperty("records").GetString(), StringComparison.Ordinal);
        Assert.Contains("rollups", rollupClass.GetProperty("records").GetString(), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("/api/v1/machines/m-1/telemetry?resolution=minute", "resolution")]
    [InlineData("/api/v1/machines/m-1/telemetry?from=yesterday", "from")]
    [InlineData("/api/v1/machines/m-1/telemetry?to=2026-13-45T00:00:00Z", "to")]
    [InlineData("/api/v1/machines/m-1/telemetry?from=2026-11-29T10:00:00Z&to=2026-11-29T10:00:00Z", "from")]
    [InlineData("/api/v1/machines/m-1/telemetry?from=2026-11-29T11:00:00Z&to=2026-11-29T10:00:00Z", "from")]
    [InlineData("/api/v1/machines/m-1/telemetry?from=2020-01-01T00:00:00Z&to=2026-01-01T00:00:00Z", "to")]
    [InlineData("/api/v1/machines/m%20;drop/telemetry", "machineId")]
    public async Task A_bad_read_is_a_400_problem_naming_the_field(string url, string field)
    {
        await using var database = await TestDatabase.CreateAsync(provider);
        await using var sluice = new SluiceFactory(database);
        using var op = await OperatorAsync(sluice);
        var response = await op.GetAsync(url);
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        var problem = await response.Content.ReadFromJsonAsync<JsonElement>();
        Assert.True(problem.GetProperty("errors").TryGetProperty(field, out _), problem.ToString());
    }

    [Fact]
    public async Task Reads_of_machines_outside_the_callers_fleet_are_refused_and_bounded_in_size()
    {
        await using var database = await TestDatabase.CreateAsync(provider);
        await using var sluice = new SluiceFactory(database, new Dictionary<string, string?> { ["Compute:Telemetry:MaxReadRows"] = "2" });
        using var op = await OperatorAsync(sluice);
        var (tenant, _, key) = await TenantAsync(sluice);
        Assert.Equal(HttpStatusCode.Unauthorized, (await sluice.Anonymous().GetAsync("/api/v1/machines/m-1/telemetry")).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await tenant.GetAsync("/api/v1/machines/m-1/telemetry")).StatusCode);
        Assert.Equal(HttpStatusCode.Forbidden, (await sluice.WithKey(key).GetAsync("/api/v1/machines/m-1/telemetry")).StatusCode);

        var sink = sluice.Services.GetRequiredService<ITelemetrySink>();
        var buffer = sluice.Services.GetRequiredService<TelemetryBuffer>();
        var t0 = TelemetryBuffer.Microseconds(DateTimeOffset.UtcNow - TimeSpan.FromMinutes(1));
        for (var i = 0; i < 3; i++)
        {
            sink.Record("m-1", Sample(t0 + TimeSpan.FromSeconds(10 * i), cpu: i), t0 + TimeSpan.FromSeconds(10 * i));
        }

        await Eventually.TrueAsync(() => buffer.Written == 3, "samples written");
        var page = await ReadAsync(op, $"/api/v1/machines/m-1/telemetry?from={Iso(t0)}");
        Assert.Equal(2, page.GetProperty("samples").GetArrayLength());
        Assert.True(page.GetProperty("truncated").GetBoolean());
        var next = page.GetProperty("nextFrom").GetDateTimeOffset();
        Assert.Equal(t0 + TimeSpan.FromSeconds(20), next);
        var rest = await ReadAsync(op, $"/api/v1/machines/m-1/telemetry?from={Iso(next)}");
        Assert.Equal(1, rest.GetProperty("samples").GetArrayLength());
        Assert.False(rest.GetProperty("truncated").GetBoolean());

        // An unknown machine has no telemetry (the machines table decides whether it exists).
        Assert.Equal(0, (await ReadAsync(op, "/api/v1/machines/m-unknown/telemetry")).GetProperty("samples").GetArrayLength());
    }


    [Fact]
    public async Task An_org_admin_reads_the_telemetry_of_the_orgs_private_machines_and_no_other_org_can()
    {
        await using var database = await TestDatabase.CreateAsync(provider);
        await using var sluice = new SluiceFactory(database);
        using var op = await OperatorAsync(sluice);
        var (owner, orgId, _) = await GatewayKit.TenantAsync(sluice);
        var (stranger, _, _) = await GatewayKit.TenantAsync(sluice, "stranger@example.com");
        var (_, token) = await ComputeKit.CreateJoinTokenAsync(owner, orgId);
        var joined = await ComputeKit.JoinAsync(sluice.Anonymous(), token);
        var (_, platformToken) = await ComputeKit.CreateJoinTokenAsync(op);
        var platform = await ComputeKit.JoinAsync(sluice.Anonymous(), platformToken);
        var at = DateTimeOffset.UtcNow - TimeSpan.FromSeconds(30);
        await ComputeKit.HeartbeatAsync(sluice.Anonymous(), joined.Credential, ComputeKit.Heartbeat(at, ComputeKit.Inventory()));
        var buffer = sluice.Services.GetRequiredService<TelemetryBuffer>();
        await Eventually.TrueAsync(() => buffer.Written >= 1, "the sample written");

        var own = await ReadAsync(owner, $"/api/v1/machines/{joined.MachineId}/telemetry");
        Assert.Equal(1, own.GetProperty("samples").GetArrayLength());
        Assert.Equal(HttpStatusCode.NotFound, (await stranger.GetAsync($"/api/v1/machines/{joined.MachineId}/telemetry")).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await owner.GetAsync($"/api/v1/machines/{platform.MachineId}/telemetry")).StatusCode);
        Assert.Equal(1, (await ReadAsync(op, $"/api/v1/machines/{joined.MachineId}/telemetry")).GetProperty("samples").GetArrayLength());
    }
    [Fact]
    public async Task A_canary_anywhere_an_agent_can_put_text_never_reaches_the_telemetry_tables_or_the_log()
    {
        await using var database = await TestDatabase.CreateAsync(provider);
        await using var sluice = new SluiceFactory(database);
        var sink = sluice.Services.GetRequiredService<ITelemetrySink>();
        var buffer = sluice.Services.GetRequiredService<TelemetryBuffer>();
        var canary = $"canary{Guid.NewGuid():N}";
        var now = DateTimeOffset.UtcNow;

        // The only text a sample carries is each GPU's uuid: a canary in it, bare or in a uuid's clothes.
        sink.Record("m-canary", Sample(now, cpu: 1, gpus:
        [
            Gpu(0, canary, util: 1),
            Gpu(1, "GPU-" + canary, util: 1),
            Gpu(2, $"GPU-{canary[..8]}-{canary[8..12]}-{canary[12..16]}-{canary[16..20]}-{canary[20..32]}", util: 1),
        ]), now);
        sink.Record(canary + " machine", Sample(now, cpu: 1), now); // a machine id that is not one
        await Eventually.TrueAsync(() => buffer.Written + buffer.Rejected == 2, "both samples handled");

        await using (var db = database.CreateContext())
        {
            Assert.Equal(3, await db.Set<GpuTelemetrySample>().CountAsync(g => g.MachineId == "m-canary" && g.GpuUuid == null));
        }

        Canary.AssertAbsent(await Canary.DumpDatabaseAsync(database), canary, "the database");
        Canary.AssertAbsent(sluice.Logs.All, canary, "the log");
    }

    [Fact]
    public async Task A_heartbeat_through_the_agent_endpoint_is_stored_and_no_text_the_agent_sent_reaches_the_telemetry_tables()
    {
        await using var database = await TestDatabase.CreateAsync(provider);
        await using var sluice = new SluiceFactory(database);
        using var op = await OperatorAsync(sluice);
        var canary = $"canary{Guid.NewGuid():N}";
        var (_, token) = await ComputeKit.CreateJoinTokenAsync(op);
        var inventory = ComputeKit.Inventory(gpus: 2) with { OperatingSystem = canary, DriverVersion = canary };
        var join = ComputeKit.Join(token, inventory) with { Hostname = canary, AgentVersion = canary, Labels = new Dictionary<string, string> { ["note"] = canary } };
        var response = await ComputeKit.PostJoinAsync(sluice.Anonymous(), join);
        Assert.True(response.StatusCode == HttpStatusCode.Created, await response.Content.ReadAsStringAsync());
        var joined = (await response.Content.ReadFromJsonAsync(ComputeJson.Default.JoinResponse))!;

        var at = TelemetryBuffer.Microseconds(DateTimeOffset.UtcNow);
        var agent = sluice.Anonymous();
        await ComputeKit.HeartbeatAsync(agent, joined.Credential, ComputeKit.Heartbeat(at, inventory) with { AgentVersion = canary });
        await ComputeKit.HeartbeatAsync(agent, joined.Credential, ComputeKit.Heartbeat(at + TimeSpan.FromSeconds(10), sequence: 2));
        var buffer = sluice.Services.GetRequiredService<TelemetryBuffer>();
        await Eventually.TrueAsync(() => buffer.Written == 2, "both heartbeats' telemetry written");

        var read = await ReadAsync(op, $"/api/v1/machines/{joined.MachineId}/telemetry?from={Iso(at)}&to={Iso(at + TimeSpan.FromMinutes(1))}");
        var samples = read.GetProperty("samples").EnumerateArray().ToList();
        Assert.Equal([at, at + TimeSpan.FromSeconds(10)], samples.Select(s => s.GetProperty("at").GetDateTimeOffset()));
        Assert.Equal(2, samples[0].GetProperty("gpus").GetArrayLength());
        Assert.Equal(12.5, samples[1].GetProperty("cpuPercent").GetDouble());

        await using var db = database.CreateContext();
        var stored = new System.Text.StringBuilder();
        foreach (var row in await db.Set<MachineTelemetrySample>().AsNoTracking().ToListAsync())
        {
            stored.Append(JsonSerializer.Serialize(row)).Append('\n');
        }

        foreach (var row in await db.Set<GpuTelemetrySample>().AsNoTracking().ToListAsync())
        {
            stored.Append(JsonSerializer.Serialize(row)).Append('\n');
        }

        Assert.Contains(joined.MachineId, stored.ToString(), StringComparison.Ordinal);
        Canary.AssertAbsent(stored.ToString(), canary, "the telemetry tables");
    }

    internal static TelemetrySample Sample(DateTimeOffset at, double cpu, params GpuSample[] gpus) => new()
    {
        At = at,
        CpuPercent = cpu,
        Load1 = cpu / 10,
        MemoryUsedBytes = 8L << 30,
        MemoryTotalBytes = 64L << 30,
        DiskUsedBytes = 100L << 30,
        DiskTotalBytes = 1L << 40,
        Gpus = gpus,
    };

    internal static GpuSample Gpu(int index, string uuid, double util) => new()
    {
        Index = index,
        Uuid = uuid,
        MemoryUsedMib = 1000,
        MemoryTotalMib = 81559,
        UtilizationPercent = util,
        TemperatureC = 45,
        PowerDrawW = 300,
    };

    private static string Iso(DateTimeOffset at) => Uri.EscapeDataString(at.UtcDateTime.ToString("yyyy-MM-ddTHH:mm:ss.ffffffZ", System.Globalization.CultureInfo.InvariantCulture));

    private static async Task<JsonElement> ReadAsync(HttpClient client, string url)
    {
        var response = await client.GetAsync(url);
        Assert.True(response.StatusCode == HttpStatusCode.OK, $"{response.StatusCode}: {await response.Content.ReadAsStringAsync()}");
        return await response.Content.ReadFromJsonAsync<JsonElement>();
    }

    private static async Task<(List<MachineTelemetryHour> Machines, List<GpuTelemetryHour> Gpus)> HoursAsync(TestDatabase database)
    {
        await using var db = database.CreateContext();
        return (await db.Set<MachineTelemetryHour>().AsNoTracking().OrderBy(h => h.MachineId).ThenBy(h => h.Hour).ToListAsync(),
            await db.Set<GpuTelemetryHour>().AsNoTracking().OrderBy(h => h.MachineId).ThenBy(h => h.Hour).ToListAsync());
    }

    private static string Describe(MachineTelemetryHour h) => $"{h.MachineId} {h.Hour:O} {h.Samples} {h.CpuPercentMin} {h.CpuPercentAvg} {h.CpuPercentMax} {h.MemoryUsedBytesAvg}";

    private static async Task<JsonElement> SweepAsync(HttpClient op)
    {
        var response = await op.PostAsync("/api/v1/admin/retention/sweep", null);
        Assert.True(response.StatusCode == HttpStatusCode.OK, await response.Content.ReadAsStringAsync());
        return await response.Content.ReadFromJsonAsync<JsonElement>();
    }

    private static (int Deleted, int Held) Result(JsonElement results, string retentionClass)
    {
        var result = results.EnumerateArray().Single(r => r.GetProperty("class").GetString() == retentionClass);
        return (result.GetProperty("deleted").GetInt32(), result.GetProperty("held").GetInt32());
    }
}

public sealed class SqliteTelemetryTests() : TelemetryTests(DatabaseProvider.Sqlite);

public sealed class PostgresTelemetryTests() : TelemetryTests(DatabaseProvider.Postgres);
