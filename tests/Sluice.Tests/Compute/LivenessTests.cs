using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Sluice.Compute;
using Sluice.Storage;
using Sluice.Tests.TestSupport;

namespace Sluice.Tests.Compute;

/// <summary>suspect → offline → lost on a manual clock, the starting grace, and tasks declared lost.</summary>
public sealed class LivenessTests
{
    private static readonly Dictionary<string, string?> Settings = new()
    {
        // The background loop runs on real time here; the test drives rounds itself.
        ["Compute:LivenessCheckInterval"] = "00:10:00",
    };

    [Theory]
    [InlineData(DatabaseProvider.Sqlite)]
    [InlineData(DatabaseProvider.Postgres)]
    public async Task A_silent_machine_goes_suspect_offline_then_lost_and_its_tasks_are_terminated_as_machine_lost(DatabaseProvider provider)
    {
        var clock = new ManualTimeProvider(DateTimeOffset.UtcNow);
        await using var database = await TestDatabase.CreateAsync(provider);
        await using var sluice = new SluiceFactory(database, Settings, clock);
        using var op = await ComputeKit.OperatorAsync(sluice);
        using var agent = sluice.Anonymous();
        var joined = await ComputeKit.JoinAsync(agent, (await ComputeKit.CreateJoinTokenAsync(op)).Token);
        var monitor = sluice.Services.GetRequiredService<LivenessMonitor>();
        var created = await op.PostAsJsonAsync($"/api/v1/machines/{joined.MachineId}/tasks", new { kind = "model_server", runtime = "process", process = new { command = "x" }, gpus = 1 });
        var taskId = (await created.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetString();

        // Starting: tolerated for the grace (5 min) before the 30 s of silence even begin to count.
        clock.Advance(TimeSpan.FromMinutes(5));
        Assert.Equal(0, await monitor.CheckAsync(CancellationToken.None));
        Assert.Equal("starting", await LivenessAsync(op, joined.MachineId));
        await ComputeKit.HeartbeatAsync(agent, joined.Credential, ComputeKit.Heartbeat(clock.GetUtcNow()));
        Assert.Equal("alive", await LivenessAsync(op, joined.MachineId));

        clock.Advance(TimeSpan.FromSeconds(29));
        await ComputeKit.HeartbeatAsync(agent, joined.Credential, ComputeKit.Heartbeat(clock.GetUtcNow(), sequence: 2)); // batched, then flushed by the round
        clock.Advance(TimeSpan.FromSeconds(29));
        Assert.Equal(0, await monitor.CheckAsync(CancellationToken.None));
        Assert.Equal("alive", await LivenessAsync(op, joined.MachineId));

        clock.Advance(TimeSpan.FromSeconds(3));
        Assert.Equal(1, await monitor.CheckAsync(CancellationToken.None));
        Assert.Equal("suspect", await LivenessAsync(op, joined.MachineId));
        clock.Advance(TimeSpan.FromSeconds(30));
        Assert.Equal(1, await monitor.CheckAsync(CancellationToken.None));
        Assert.Equal("offline", await LivenessAsync(op, joined.MachineId));
        Assert.Equal(0, await monitor.CheckAsync(CancellationToken.None)); // nothing more is due
        clock.Advance(TimeSpan.FromMinutes(4));
        Assert.Equal(1, await monitor.CheckAsync(CancellationToken.None));
        Assert.Equal("lost", await LivenessAsync(op, joined.MachineId));

        var task = await op.GetFromJsonAsync<JsonElement>($"/api/v1/machines/{joined.MachineId}/tasks/{taskId}");
        Assert.Equal("terminated", task.GetProperty("state").GetString());
        Assert.Equal("machine_lost", task.GetProperty("reason").GetString());
        Assert.Equal("stopped", task.GetProperty("desired").GetString());
        var events = (await op.GetFromJsonAsync<JsonElement>($"/api/v1/machines/{joined.MachineId}/events")).EnumerateArray()
            .Select(e => $"{e.GetProperty("kind").GetString()}: {e.GetProperty("detail").GetString()}").ToList();
        Assert.Contains("liveness_changed: alive -> suspect", events);
        Assert.Contains("liveness_changed: suspect -> offline", events);
        Assert.Contains("liveness_changed: offline -> lost", events);
        Assert.Contains("tasks_lost: 1 task(s) terminated with machine_lost", events);

        // Back: alive again at once, and told to run nothing (its lost task was replaced elsewhere, or is gone).
        var reply = await ComputeKit.HeartbeatAsync(agent, joined.Credential, ComputeKit.Heartbeat(clock.GetUtcNow(), sequence: 1));
        Assert.Empty(reply.Tasks);
        Assert.Equal("alive", await LivenessAsync(op, joined.MachineId));
    }

    [Fact]
    public async Task Two_replicas_checking_at_once_make_each_change_once()
    {
        var clock = new ManualTimeProvider(DateTimeOffset.UtcNow);
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Sqlite);
        await using var first = new SluiceFactory(database, Settings, clock);
        await using var second = new SluiceFactory(database, Settings, clock);
        using var op = await ComputeKit.OperatorAsync(first);
        using var agent = first.Anonymous();
        _ = second.Services;
        for (var i = 0; i < 3; i++)
        {
            var joined = await ComputeKit.JoinAsync(agent, (await ComputeKit.CreateJoinTokenAsync(op)).Token);
            await ComputeKit.HeartbeatAsync(agent, joined.Credential, ComputeKit.Heartbeat(clock.GetUtcNow()));
        }

        clock.Advance(TimeSpan.FromMinutes(6));
        var changes = await Task.WhenAll(
            first.Services.GetRequiredService<LivenessMonitor>().CheckAsync(CancellationToken.None),
            second.Services.GetRequiredService<LivenessMonitor>().CheckAsync(CancellationToken.None));

        Assert.Equal(3, changes.Sum());
        await using var db = database.CreateContext();
        Assert.All(db.Machines.ToList(), m => Assert.Equal("lost", m.Liveness));
        Assert.Equal(3, db.MachineEvents.Count(e => e.Kind == MachineEventKinds.TasksLost));
    }

    private static async Task<string?> LivenessAsync(HttpClient op, string machineId) =>
        (await op.GetFromJsonAsync<JsonElement>($"/api/v1/machines/{machineId}")).GetProperty("liveness").GetString();
}
