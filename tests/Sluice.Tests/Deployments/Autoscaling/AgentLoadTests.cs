using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.EntityFrameworkCore;
using Sluice.Compute.Protocol;
using Sluice.Storage;
using Sluice.Tests.Compute;
using Sluice.Tests.TestSupport;

namespace Sluice.Tests.Deployments.Autoscaling;

/// <summary>The agent-side load the autoscaler reads: a task's in-flight requests and engine queue depth from heartbeats, written only when they change.</summary>
public sealed class AgentLoadTests
{
    [Theory]
    [InlineData(DatabaseProvider.Sqlite)]
    [InlineData(DatabaseProvider.Postgres)]
    public async Task A_heartbeat_stores_a_tasks_in_flight_and_queue_depth_and_writes_the_row_only_when_they_change(DatabaseProvider provider)
    {
        await using var database = await TestDatabase.CreateAsync(provider);
        var clock = new ManualTimeProvider(DateTimeOffset.UtcNow);
        await using var sluice = new SluiceFactory(database, new Dictionary<string, string?> { ["Compute:HeartbeatFlushInterval"] = "00:00:30" }, clock);
        using var op = await ComputeKit.OperatorAsync(sluice);
        using var agent = sluice.Anonymous();
        var joined = await ComputeKit.JoinAsync(agent, (await ComputeKit.CreateJoinTokenAsync(op)).Token);
        var created = await op.PostAsJsonAsync($"/api/v1/machines/{joined.MachineId}/tasks", new { kind = "model_server", runtime = "process", process = new { command = "x" }, gpus = 1 });
        var taskId = (await created.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetString()!;
        var started = clock.GetUtcNow();
        TaskReport Report(int inFlight, int? queue) => new()
        {
            TaskId = taskId, Generation = 1, State = TaskStates.Ready, StartedAt = started, ReadyAt = started, InFlight = inFlight, QueueDepth = queue,
        };

        async Task<(int? InFlight, int? QueueDepth, DateTimeOffset? ReportedAt)> Row()
        {
            await using var db = database.CreateContext();
            var id = Guid.Parse(taskId);
            var task = await db.MachineTasks.AsNoTracking().SingleAsync(t => t.Id == id);
            return (task.InFlight, task.QueueDepth, task.ReportedAt);
        }

        Assert.Equal((null, null, null), await Row()); // nothing reported yet

        var sequence = 1;
        await ComputeKit.HeartbeatAsync(agent, joined.Credential, ComputeKit.Heartbeat(clock.GetUtcNow(), tasks: [Report(3, 2)], sequence: sequence++));
        var first = await Row();
        Assert.Equal((3, 2), (first.InFlight, first.QueueDepth));

        // The same figures again: no task write (its report time stays).
        clock.Advance(TimeSpan.FromSeconds(10));
        await ComputeKit.HeartbeatAsync(agent, joined.Credential, ComputeKit.Heartbeat(clock.GetUtcNow(), tasks: [Report(3, 2)], sequence: sequence++));
        Assert.Equal(first, await Row());

        // Changed: written, with the new report time; an engine that reports no queue leaves it empty.
        clock.Advance(TimeSpan.FromSeconds(10));
        await ComputeKit.HeartbeatAsync(agent, joined.Credential, ComputeKit.Heartbeat(clock.GetUtcNow(), tasks: [Report(0, null)], sequence: sequence++));
        var changed = await Row();
        Assert.Equal((0, null), (changed.InFlight, changed.QueueDepth));
        Assert.True(changed.ReportedAt > first.ReportedAt);
    }

    [Fact]
    public async Task A_negative_in_flight_or_queue_depth_is_refused_naming_the_field()
    {
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Sqlite);
        await using var sluice = new SluiceFactory(database);
        using var op = await ComputeKit.OperatorAsync(sluice);
        using var agent = sluice.Anonymous();
        var joined = await ComputeKit.JoinAsync(agent, (await ComputeKit.CreateJoinTokenAsync(op)).Token);
        var created = await op.PostAsJsonAsync($"/api/v1/machines/{joined.MachineId}/tasks", new { kind = "model_server", runtime = "process", process = new { command = "x" }, gpus = 1 });
        var taskId = (await created.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetString()!;

        foreach (var report in new[]
        {
            new TaskReport { TaskId = taskId, Generation = 1, State = TaskStates.Ready, InFlight = -1 },
            new TaskReport { TaskId = taskId, Generation = 1, State = TaskStates.Ready, QueueDepth = -3 },
        })
        {
            var response = await ComputeKit.PostHeartbeatAsync(agent, joined.Credential, ComputeKit.Heartbeat(DateTimeOffset.UtcNow, tasks: [report]));
            var problem = await ComputeKit.ProblemAsync(response, System.Net.HttpStatusCode.BadRequest);
            Assert.Contains("tasks[0]", problem.GetRawText(), StringComparison.Ordinal);
        }

        await using var db = database.CreateContext();
        var id = Guid.Parse(taskId);
        Assert.Null((await db.MachineTasks.AsNoTracking().SingleAsync(t => t.Id == id)).InFlight);
    }
}
