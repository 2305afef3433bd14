using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Sluice.Compute;
using Sluice.Compute.Protocol;
using Sluice.Storage;
using Sluice.Tests.TestSupport;

namespace Sluice.Tests.Compute;

/// <summary>The heartbeat: who may send one, what it may carry, and what it changes.</summary>
public sealed class HeartbeatTests
{
    [Theory]
    [InlineData(DatabaseProvider.Sqlite)]
    [InlineData(DatabaseProvider.Postgres)]
    public async Task A_revoked_credential_is_refused_at_the_next_call_and_a_decommissioned_machine_gets_410(DatabaseProvider provider)
    {
        await using var database = await TestDatabase.CreateAsync(provider);
        await using var sluice = new SluiceFactory(database);
        using var op = await ComputeKit.OperatorAsync(sluice);
        using var agent = sluice.Anonymous();
        var first = await ComputeKit.JoinAsync(agent, (await ComputeKit.CreateJoinTokenAsync(op)).Token);
        var second = await ComputeKit.JoinAsync(agent, (await ComputeKit.CreateJoinTokenAsync(op)).Token);
        await ComputeKit.HeartbeatAsync(agent, first.Credential, ComputeKit.Heartbeat(DateTimeOffset.UtcNow));
        await ComputeKit.HeartbeatAsync(agent, second.Credential, ComputeKit.Heartbeat(DateTimeOffset.UtcNow));

        Assert.Equal(HttpStatusCode.OK, (await op.PostAsync($"/api/v1/machines/{first.MachineId}/revoke-credential", null)).StatusCode);
        var revoked = await ComputeKit.ProblemAsync(await ComputeKit.PostHeartbeatAsync(agent, first.Credential, ComputeKit.Heartbeat(DateTimeOffset.UtcNow, sequence: 2)), HttpStatusCode.Unauthorized);
        Assert.Contains("revoked", revoked.GetProperty("detail").GetString(), StringComparison.Ordinal);

        Assert.Equal(HttpStatusCode.OK, (await op.PostAsync($"/api/v1/machines/{second.MachineId}/decommission", null)).StatusCode);
        var gone = await ComputeKit.ProblemAsync(await ComputeKit.PostHeartbeatAsync(agent, second.Credential, ComputeKit.Heartbeat(DateTimeOffset.UtcNow, sequence: 2)), HttpStatusCode.Gone);
        Assert.Contains("decommissioned", gone.GetProperty("detail").GetString(), StringComparison.Ordinal);
        await ComputeKit.ProblemAsync(await op.PostAsync($"/api/v1/machines/{second.MachineId}/uncordon", null), HttpStatusCode.Conflict);

        // A forged credential for a real machine id, a malformed one and none at all: 401, nothing else.
        var forged = $"smc_{Guid.Parse(first.MachineId):N}_{new string('x', 43)}";
        await ComputeKit.ProblemAsync(await ComputeKit.PostHeartbeatAsync(agent, forged, ComputeKit.Heartbeat(DateTimeOffset.UtcNow)), HttpStatusCode.Unauthorized);
        await ComputeKit.ProblemAsync(await ComputeKit.PostHeartbeatAsync(agent, "sk-sluice-nope", ComputeKit.Heartbeat(DateTimeOffset.UtcNow)), HttpStatusCode.Unauthorized);
        await ComputeKit.ProblemAsync(await agent.PostAsync(AgentPaths.Heartbeat, ComputeKit.Json(ComputeKit.Heartbeat(DateTimeOffset.UtcNow), ComputeJson.Default.HeartbeatRequest)), HttpStatusCode.Unauthorized);

        var audit = await ComputeKit.AuditAsync(database, "machine.");
        Assert.Contains(audit, a => a.Action == "machine.credential_revoke" && a.Target == $"machine:{first.MachineId}" && a.Outcome == "success");
        Assert.Contains(audit, a => a.Action == "machine.decommission" && a.Target == $"machine:{second.MachineId}" && a.Outcome == "success");
        Assert.Contains(audit, a => a.Action == "machine.heartbeat" && a.Target == $"machine:{first.MachineId}" && a.Outcome == "refused");
        Assert.Contains(audit, a => a.Action == "machine.heartbeat" && a.Target == $"machine:{second.MachineId}" && a.Outcome == "refused");
        Assert.Contains(audit, a => a.Action == "machine.heartbeat" && a.Target == "machine:unknown" && a.Outcome == "refused");
        Assert.Contains(audit, a => a.Action == "machine.uncordon" && a.Outcome == "refused");
    }

    public static TheoryData<string, string> AbsurdTelemetry => new()
    {
        { "cpu", "telemetry.cpu_percent" },
        { "load", "telemetry.load1" },
        { "memory", "telemetry.memory_used_bytes" },
        { "utilization", "telemetry.gpus[0].utilization_percent" },
        { "temperature", "telemetry.gpus[0].temperature_c" },
        { "power", "telemetry.gpus[0].power_draw_w" },
        { "gpu-memory", "telemetry.gpus[0].memory_used_mib" },
        { "xid", "telemetry.gpus[0].xid_errors" },
        { "unknown-gpu", "telemetry.gpus[0].uuid" },
        { "missing-gpu", "telemetry.gpus" },
        { "clock", "telemetry.at" },
        { "sequence", "sequence" },
        { "foreign-task", "tasks[0].task_id" },
        { "bad-inventory", "inventory.cpu_cores" },
    };

    [Theory]
    [MemberData(nameof(AbsurdTelemetry))]
    public async Task Absurd_telemetry_missing_gpus_and_foreign_tasks_are_refused_naming_the_field(string change, string field)
    {
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Sqlite);
        await using var sluice = new SluiceFactory(database);
        using var op = await ComputeKit.OperatorAsync(sluice);
        using var agent = sluice.Anonymous();
        var joined = await ComputeKit.JoinAsync(agent, (await ComputeKit.CreateJoinTokenAsync(op)).Token);
        var good = ComputeKit.Heartbeat(DateTimeOffset.UtcNow);
        var t = good.Telemetry;
        var gpu = t.Gpus[0];
        HeartbeatRequest WithGpu(GpuSample sample) => good with { Telemetry = t with { Gpus = [sample, t.Gpus[1]] } };
        var bad = change switch
        {
            "cpu" => good with { Telemetry = t with { CpuPercent = 150 } },
            "load" => good with { Telemetry = t with { Load1 = -1 } },
            "memory" => good with { Telemetry = t with { MemoryUsedBytes = -5 } },
            "utilization" => WithGpu(gpu with { UtilizationPercent = 101 }),
            "temperature" => WithGpu(gpu with { TemperatureC = 400 }),
            "power" => WithGpu(gpu with { PowerDrawW = -3 }),
            "gpu-memory" => WithGpu(gpu with { MemoryUsedMib = gpu.MemoryTotalMib + 1 }),
            "xid" => WithGpu(gpu with { XidErrors = -1 }),
            "unknown-gpu" => WithGpu(gpu with { Uuid = "GPU-not-in-the-inventory" }),
            "missing-gpu" => good with { Telemetry = t with { Gpus = [gpu] } },
            "clock" => good with { Telemetry = t with { At = DateTimeOffset.UtcNow.AddYears(-3) } },
            "sequence" => good with { Sequence = 0 },
            "foreign-task" => good with { Tasks = [new TaskReport { TaskId = Guid.NewGuid().ToString(), Generation = 1, State = TaskStates.Ready }] },
            "bad-inventory" => good with { Inventory = ComputeKit.Inventory() with { CpuCores = -2 } },
            _ => throw new ArgumentOutOfRangeException(nameof(change)),
        };

        var problem = await ComputeKit.ProblemAsync(await ComputeKit.PostHeartbeatAsync(agent, joined.Credential, bad), HttpStatusCode.BadRequest);

        Assert.True(problem.GetProperty("errors").TryGetProperty(field, out _), $"{field} not named: {problem}");
        var machine = await op.GetFromJsonAsync<JsonElement>($"/api/v1/machines/{joined.MachineId}");
        Assert.Equal("starting", machine.GetProperty("liveness").GetString()); // a refused heartbeat changes nothing
        Assert.Single(await ComputeKit.AuditAsync(database, "machine.heartbeat"), a => a.Outcome == "refused" && a.Target == $"machine:{joined.MachineId}");
    }

    [Fact]
    public async Task A_broken_agent_repeating_a_bad_heartbeat_is_audited_once_per_interval_not_once_per_call()
    {
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Sqlite);
        await using var sluice = new SluiceFactory(database);
        using var op = await ComputeKit.OperatorAsync(sluice);
        using var agent = sluice.Anonymous();
        var joined = await ComputeKit.JoinAsync(agent, (await ComputeKit.CreateJoinTokenAsync(op)).Token);
        var bad = ComputeKit.Heartbeat(DateTimeOffset.UtcNow) with { Telemetry = ComputeKit.Heartbeat(DateTimeOffset.UtcNow).Telemetry with { CpuPercent = -1 } };

        for (var i = 0; i < 20; i++)
        {
            await ComputeKit.ProblemAsync(await ComputeKit.PostHeartbeatAsync(agent, joined.Credential, bad), HttpStatusCode.BadRequest);
            await ComputeKit.ProblemAsync(await ComputeKit.PostHeartbeatAsync(agent, "smc_garbage", bad), HttpStatusCode.Unauthorized);
        }

        var refused = (await ComputeKit.AuditAsync(database, "machine.heartbeat")).Where(a => a.Outcome == "refused").ToList();
        Assert.Single(refused, a => a.Target == $"machine:{joined.MachineId}");
        Assert.Single(refused, a => a.Target == "machine:unknown");
    }

    [Fact]
    public async Task A_heartbeat_records_task_states_and_a_new_inventory_and_batches_its_time()
    {
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Sqlite);
        var clock = new ManualTimeProvider(DateTimeOffset.UtcNow);
        await using var sluice = new SluiceFactory(database, new Dictionary<string, string?> { ["Compute:HeartbeatFlushInterval"] = "00:00:30" }, clock);
        using var op = await ComputeKit.OperatorAsync(sluice);
        using var agent = sluice.Anonymous();
        var joined = await ComputeKit.JoinAsync(agent, (await ComputeKit.CreateJoinTokenAsync(op)).Token);
        var created = await op.PostAsJsonAsync($"/api/v1/machines/{joined.MachineId}/tasks", new { kind = "job", runtime = "process", process = new { command = "/bin/true" }, gpus = 1 });
        var taskId = (await created.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetString()!;
        await ComputeKit.HeartbeatAsync(agent, joined.Credential, ComputeKit.Heartbeat(DateTimeOffset.UtcNow));

        var bigger = ComputeKit.Inventory(gpus: 3);
        var started = DateTimeOffset.UtcNow;
        var reply = await ComputeKit.HeartbeatAsync(agent, joined.Credential, ComputeKit.Heartbeat(DateTimeOffset.UtcNow, bigger,
            [new TaskReport { TaskId = taskId, Generation = 1, State = TaskStates.Ready, StartedAt = started, ReadyAt = started, Restarts = 1 }], sequence: 2));

        Assert.Equal(taskId, Assert.Single(reply.Tasks).TaskId);
        var task = await op.GetFromJsonAsync<JsonElement>($"/api/v1/machines/{joined.MachineId}/tasks/{taskId}");
        Assert.Equal("ready", task.GetProperty("state").GetString());
        Assert.Equal(1, task.GetProperty("restarts").GetInt32());
        var machine = await op.GetFromJsonAsync<JsonElement>($"/api/v1/machines/{joined.MachineId}");
        Assert.Equal(3, machine.GetProperty("inventory").GetProperty("gpus").GetArrayLength());

        // The second heartbeat's time waits in memory for the batched flush (every 30 s here), then is written.
        var recorder = sluice.Services.GetRequiredService<HeartbeatRecorder>();
        Assert.Equal(1, recorder.Pending);
        var before = machine.GetProperty("lastHeartbeatAt").GetDateTimeOffset();
        clock.Advance(TimeSpan.FromSeconds(2)); // the flush truncates to whole seconds
        await ComputeKit.HeartbeatAsync(agent, joined.Credential, ComputeKit.Heartbeat(clock.GetUtcNow(), bigger, sequence: 3) with { Inventory = null });
        await recorder.FlushAsync(CancellationToken.None);
        Assert.Equal(0, recorder.Pending);
        var after = (await op.GetFromJsonAsync<JsonElement>($"/api/v1/machines/{joined.MachineId}")).GetProperty("lastHeartbeatAt").GetDateTimeOffset();
        Assert.True(after > before, $"{after:O} should be after {before:O}");
    }

    [Fact]
    public async Task An_unreadable_heartbeat_is_refused_naming_the_field_and_audited_and_a_full_machine_fits_the_body_limit()
    {
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Sqlite);
        await using var sluice = new SluiceFactory(database);
        using var op = await ComputeKit.OperatorAsync(sluice);
        using var agent = sluice.Anonymous();
        var full = ComputeKit.Inventory(gpus: 64);
        var joined = await ComputeKit.JoinAsync(agent, (await ComputeKit.CreateJoinTokenAsync(op)).Token, full);
        var json = JsonSerializer.Serialize(ComputeKit.Heartbeat(DateTimeOffset.UtcNow, full), ComputeJson.Default.HeartbeatRequest);
        Assert.Contains("\"cpu_percent\":12.5", json, StringComparison.Ordinal);

        foreach (var (body, field) in new[] { (json.Replace("\"cpu_percent\":12.5", "\"cpu_percent\":\"NaN\"", StringComparison.Ordinal), "telemetry.cpu_percent"), ("{", "body") })
        {
            using var message = new HttpRequestMessage(HttpMethod.Post, AgentPaths.Heartbeat) { Content = new StringContent(body, System.Text.Encoding.UTF8, "application/json") };
            message.Headers.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", joined.Credential);
            var problem = await ComputeKit.ProblemAsync(await agent.SendAsync(message), HttpStatusCode.BadRequest);
            Assert.True(problem.GetProperty("errors").TryGetProperty(field, out _), $"{field} not named: {problem}");
            Assert.DoesNotContain("NaN", problem.GetRawText(), StringComparison.Ordinal); // the value is never quoted back
        }

        Assert.Single(await ComputeKit.AuditAsync(database, "machine.heartbeat"), a => a.Outcome == "refused" && a.Target == $"machine:{joined.MachineId}");
        var reply = await ComputeKit.HeartbeatAsync(agent, joined.Credential, ComputeKit.Heartbeat(DateTimeOffset.UtcNow, full));
        Assert.Equal(MachineStates.Ready, reply.MachineState);

        // 64 GPUs and 256 task reports run past the API's default 64 KiB body limit: the heartbeat is still read
        // (and these reports refused for naming tasks that are not this machine's), not cut off with a 413.
        var now = DateTimeOffset.UtcNow;
        var crowded = ComputeKit.Heartbeat(now, full, sequence: 2) with
        {
            Tasks = Enumerable.Range(0, 256).Select(_ => new TaskReport
            {
                TaskId = Guid.NewGuid().ToString(), Generation = 1, State = TaskStates.Terminated, Reason = TaskReasons.Completed, ExitCode = 0, StartedAt = now, ReadyAt = now,
            }).ToList(),
        };
        Assert.True(JsonSerializer.Serialize(crowded, ComputeJson.Default.HeartbeatRequest).Length > 64 * 1024);
        var refused = await ComputeKit.ProblemAsync(await ComputeKit.PostHeartbeatAsync(agent, joined.Credential, crowded), HttpStatusCode.BadRequest);
        Assert.True(refused.GetProperty("errors").TryGetProperty("tasks[0].task_id", out _), refused.GetRawText());
    }
}
