using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Sluice.Compute;
using Sluice.Compute.Protocol;
using Sluice.Deployments;
using Sluice.Storage;
using static Sluice.Tests.Deployments.Scheduling.SchedulerHarness;

namespace Sluice.Tests.Deployments.Scheduling;

/// <summary>Replicas following their tasks: ready, lost with their machine and placed again, rolled out, failing, drained, deleted, scaled to zero.</summary>
public sealed class LifecycleTests
{
    [Theory]
    [InlineData(DatabaseProvider.Sqlite)]
    [InlineData(DatabaseProvider.Postgres)]
    public async Task A_replica_on_a_lost_machine_is_stopped_and_placed_again_elsewhere(DatabaseProvider provider)
    {
        await using var harness = await StartAsync(provider);
        var first = await harness.MachineAsync(L4, 1);
        var second = await harness.MachineAsync(L4, 1);
        var deployment = await harness.DeploymentAsync(Guid.NewGuid(), desired: 2);
        await harness.PassAsync();
        Assert.Equal(DeploymentStatuses.Pending, (await harness.GetDeploymentAsync(deployment)).Status);
        await harness.ReadyAsync(deployment);
        await harness.PassAsync();
        Assert.Equal(2, (await harness.ReplicasAsync(deployment, ReplicaStates.Ready)).Count);
        var status = await harness.GetDeploymentAsync(deployment);
        Assert.Equal(DeploymentStatuses.Ready, status.Status);
        Assert.Null(status.StatusReason);

        // The first machine goes silent; a spare joins. Liveness declares the machine lost and terminates its tasks.
        var spare = await harness.MachineAsync(L4, 1);
        harness.Clock.Advance(TimeSpan.FromMinutes(6));
        foreach (var alive in new[] { second, spare })
        {
            await harness.UpdateMachineAsync(alive, m => m.ContactAt = harness.Clock.GetUtcNow());
        }

        Assert.Equal(1, await harness.Sluice.Services.GetRequiredService<LivenessMonitor>().CheckAsync(CancellationToken.None));
        await harness.PassAsync();

        var replicas = await harness.ReplicasAsync(deployment);
        var lost = Assert.Single(replicas, r => r.MachineId == first);
        Assert.Equal(ReplicaStates.Stopped, lost.State);
        Assert.Equal(TaskReasons.MachineLost, lost.Reason);
        Assert.Equal(harness.Clock.GetUtcNow(), lost.StoppedAt);
        var replacement = Assert.Single(replicas, r => r.State == ReplicaStates.Starting);
        Assert.Equal(spare, replacement.MachineId);
        Assert.Contains(DeploymentEventKinds.ReplicaLost, await harness.EventsAsync(deployment));
        Assert.Equal(DeploymentStatuses.Ready, (await harness.GetDeploymentAsync(deployment)).Status); // the other replica still serves

        await harness.ReadyAsync(deployment);
        await harness.PassAsync();
        Assert.Equal(new[] { second, spare }.Order(), (await harness.ReplicasAsync(deployment, ReplicaStates.Ready)).Select(r => r.MachineId).Order());
        await harness.AssertNoGpuAssignedTwiceAsync();
    }

    [Theory]
    [InlineData(DatabaseProvider.Sqlite)]
    [InlineData(DatabaseProvider.Postgres)]
    public async Task A_new_generation_rolls_out_one_replica_at_a_time_each_ready_before_an_old_one_drains(DatabaseProvider provider)
    {
        await using var harness = await StartAsync(provider);
        for (var i = 0; i < 3; i++)
        {
            await harness.MachineAsync(L4, 1);
        }

        var deployment = await harness.DeploymentAsync(Guid.NewGuid(), desired: 2);
        await harness.PassAsync();
        await harness.ReadyAsync(deployment);
        await harness.PassAsync();
        var originals = (await harness.ReplicasAsync(deployment, ReplicaStates.Ready)).Select(r => r.Id).ToHashSet();
        Assert.Equal(2, originals.Count);

        await harness.UpdateDeploymentAsync(deployment, d => d.Generation = 2);

        // Surge 1: one new replica; nothing old drains while it starts, however many passes run.
        for (var pass = 0; pass < 3; pass++)
        {
            await harness.PassAsync();
            var replicas = await harness.ReplicasAsync(deployment);
            Assert.Equal(2, replicas.Count(r => originals.Contains(r.Id) && r.State == ReplicaStates.Ready));
            Assert.Single(replicas, r => r.Generation == 2);
        }

        Assert.Contains(DeploymentEventKinds.RolloutStarted, await harness.EventsAsync(deployment));

        // Ready: one old replica drains. (Three GPUs in all: the second new replica waits for the drained one's GPU.)
        await harness.ReadyAsync(deployment);
        await harness.PassAsync();
        var now = await harness.ReplicasAsync(deployment);
        Assert.Single(now, r => originals.Contains(r.Id) && r.State == ReplicaStates.Draining);
        Assert.Single(now, r => originals.Contains(r.Id) && r.State == ReplicaStates.Ready);
        Assert.Single(now, r => r.Generation == 2 && r.State == ReplicaStates.Ready);
        Assert.Equal(DeploymentStatuses.Ready, (await harness.GetDeploymentAsync(deployment)).Status);

        // The drain grace passes: its task is stopped; once the agent stops it, its GPU takes the next new replica.
        var draining = Assert.Single(now, r => r.State == ReplicaStates.Draining);
        await harness.PassAsync();
        Assert.Equal(TaskDesired.Running, (await harness.TaskAsync(draining.TaskId)).Desired); // requests in flight may finish
        harness.Clock.Advance(TimeSpan.FromSeconds(30));
        await harness.PassAsync();
        Assert.Equal(TaskDesired.Stopped, (await harness.TaskAsync(draining.TaskId)).Desired);
        await harness.AgentsStopAsync();
        await harness.PassAsync();
        Assert.Equal(ReplicaStates.Stopped, (await harness.ReplicasAsync(deployment)).Single(r => r.Id == draining.Id).State);
        Assert.Equal(2, (await harness.ReplicasAsync(deployment)).Count(r => r.Generation == 2));

        await harness.ReadyAsync(deployment);
        await harness.PassAsync();
        var done = await harness.ReplicasAsync(deployment);
        Assert.Equal(2, done.Count(r => r.Generation == 2 && r.State == ReplicaStates.Ready));
        Assert.DoesNotContain(done, r => r.Generation == 1 && r.State is ReplicaStates.Ready or ReplicaStates.Starting);
        Assert.Contains(DeploymentEventKinds.RolloutCompleted, await harness.EventsAsync(deployment));

        // The order, from the events: every old replica drained only after one more new one was ready.
        var events = await harness.EventsAsync(deployment);
        var readyNew = 0;
        var drainedOld = 0;
        var replicaGeneration = done.ToDictionary(r => r.Id, r => r.Generation);
        foreach (var e in (await harness.EventsAsync(deployment, DeploymentEventKinds.ReplicaReady)).Concat(await harness.EventsAsync(deployment, DeploymentEventKinds.ReplicaDraining)).OrderBy(e => e.At).ThenBy(e => e.Id))
        {
            var replica = JsonDocument.Parse(e.Detail!).RootElement.GetProperty("replica").GetGuid();
            if (e.Kind == DeploymentEventKinds.ReplicaReady && replicaGeneration[replica] == 2)
            {
                readyNew++;
            }
            else if (e.Kind == DeploymentEventKinds.ReplicaDraining)
            {
                drainedOld++;
                Assert.True(readyNew >= drainedOld, "an old replica drained before a new one was ready to take its place");
            }
        }

        Assert.Equal(2, drainedOld);
        Assert.NotEmpty(events);
    }

    [Theory]
    [InlineData(DatabaseProvider.Sqlite)]
    [InlineData(DatabaseProvider.Postgres)]
    public async Task After_three_replicas_fail_in_a_row_the_deployment_is_failed_until_it_is_updated(DatabaseProvider provider)
    {
        await using var harness = await StartAsync(provider);
        await harness.MachineAsync(L4, 2);
        var deployment = await harness.DeploymentAsync(Guid.NewGuid(), desired: 1);

        for (var attempt = 1; attempt <= 3; attempt++)
        {
            await harness.PassAsync();
            var starting = Assert.Single(await harness.ReplicasAsync(deployment, ReplicaStates.Starting));
            await harness.ReportAsync(starting.TaskId, TaskStates.Terminated, TaskReasons.Failed, exitCode: 1);
        }

        await harness.PassAsync();
        var replicas = await harness.ReplicasAsync(deployment);
        Assert.Equal(3, replicas.Count);
        Assert.All(replicas, r => Assert.Equal(ReplicaStates.Failed, r.State));
        var failed = await harness.GetDeploymentAsync(deployment);
        Assert.Equal(DeploymentStatuses.Failed, failed.Status);
        Assert.Equal("the engine exited during start-up (exit code 1)", failed.StatusReason);
        Assert.Single(await harness.EventsAsync(deployment, DeploymentEventKinds.Failed));
        Assert.Equal(3, (await harness.EventsAsync(deployment, DeploymentEventKinds.ReplicaFailed)).Count);

        // No more tries, however long it waits.
        harness.Clock.Advance(TimeSpan.FromMinutes(5));
        await harness.PassAsync();
        Assert.Equal(3, (await harness.ReplicasAsync(deployment)).Count);

        // Updated (a new generation): placed again.
        await harness.UpdateDeploymentAsync(deployment, d => d.Generation = 2);
        await harness.PassAsync();
        var retry = Assert.Single(await harness.ReplicasAsync(deployment, ReplicaStates.Starting));
        Assert.Equal(2, retry.Generation);
        Assert.Equal(DeploymentStatuses.Pending, (await harness.GetDeploymentAsync(deployment)).Status);
    }

    [Fact]
    public async Task Scaling_down_drains_not_ready_then_newest_replicas_and_stops_them_after_the_grace()
    {
        await using var harness = await StartAsync(DatabaseProvider.Sqlite);
        for (var i = 0; i < 4; i++)
        {
            await harness.MachineAsync(L4, 1);
        }

        // Three replicas placed a second apart (oldest first), the first two ready, the newest still starting.
        var deployment = await harness.DeploymentAsync(Guid.NewGuid(), desired: 1);
        for (var desired = 1; desired <= 3; desired++)
        {
            await harness.UpdateDeploymentAsync(deployment, d => d.DesiredReplicas = desired);
            await harness.PassAsync();
            if (desired < 3)
            {
                await harness.ReadyAsync(deployment);
            }

            harness.Clock.Advance(TimeSpan.FromSeconds(1));
        }

        await harness.PassAsync();
        Assert.Equal([ReplicaStates.Ready, ReplicaStates.Ready, ReplicaStates.Starting], (await harness.ReplicasAsync(deployment)).Select(r => r.State));
        await harness.UpdateDeploymentAsync(deployment, d => d.DesiredReplicas = 1);

        await harness.PassAsync();
        var after = await harness.ReplicasAsync(deployment);
        Assert.Equal(ReplicaStates.Ready, after[0].State);
        Assert.Equal(ReplicaStates.Draining, after[1].State);
        Assert.Equal(ReplicaStates.Draining, after[2].State);
        Assert.Equal(TaskDesired.Stopped, (await harness.TaskAsync(after[2].TaskId)).Desired); // never served: stopped at once
        Assert.Equal(TaskDesired.Running, (await harness.TaskAsync(after[1].TaskId)).Desired); // served: keeps its grace
        Assert.Equal(2, (await harness.EventsAsync(deployment, DeploymentEventKinds.ReplicaDraining)).Count);

        harness.Clock.Advance(TimeSpan.FromSeconds(30));
        await harness.PassAsync();
        Assert.Equal(TaskDesired.Stopped, (await harness.TaskAsync(after[1].TaskId)).Desired);
        await harness.AgentsStopAsync();
        await harness.PassAsync();
        var final = await harness.ReplicasAsync(deployment);
        Assert.Equal([ReplicaStates.Ready, ReplicaStates.Stopped, ReplicaStates.Stopped], final.Select(r => r.State));
        Assert.All(final.Skip(1), r => Assert.Equal(harness.Clock.GetUtcNow(), r.StoppedAt));
        Assert.Equal(DeploymentStatuses.Ready, (await harness.GetDeploymentAsync(deployment)).Status);
    }

    [Fact]
    public async Task A_serverless_deployment_scales_to_zero_and_its_wake_is_a_cold_start()
    {
        await using var harness = await StartAsync(DatabaseProvider.Sqlite);
        await harness.MachineAsync(L4, 1);
        var deployment = await harness.DeploymentAsync(Guid.NewGuid(), desired: 1, minReplicas: 0);
        await harness.PassAsync();
        await harness.ReadyAsync(deployment);
        await harness.PassAsync();
        Assert.True(Assert.Single(await harness.ReplicasAsync(deployment)).ColdStart);

        await harness.UpdateDeploymentAsync(deployment, d => d.DesiredReplicas = 0);
        await harness.PassAsync();
        harness.Clock.Advance(TimeSpan.FromSeconds(30));
        await harness.PassAsync();
        await harness.AgentsStopAsync();
        await harness.PassAsync();
        var row = await harness.GetDeploymentAsync(deployment);
        Assert.Equal(DeploymentStatuses.ScaledToZero, row.Status);
        Assert.Null(row.StatusReason);

        // Routing's wake (desired 0 → 1): placed again, as a cold start.
        await harness.UpdateDeploymentAsync(deployment, d => d.DesiredReplicas = 1);
        await harness.PassAsync();
        var woken = Assert.Single(await harness.ReplicasAsync(deployment, ReplicaStates.Starting));
        Assert.True(woken.ColdStart);
        Assert.Equal(DeploymentStatuses.Pending, (await harness.GetDeploymentAsync(deployment)).Status);
    }

    [Theory]
    [InlineData(DatabaseProvider.Sqlite)]
    [InlineData(DatabaseProvider.Postgres)]
    public async Task A_deleted_deployment_drains_and_stops_every_replica_then_is_left_alone(DatabaseProvider provider)
    {
        await using var harness = await StartAsync(provider);
        await harness.MachineAsync(L4, 2);
        await harness.MachineAsync(L4, 2);
        var deployment = await harness.DeploymentAsync(Guid.NewGuid(), desired: 3);
        await harness.PassAsync();
        await harness.ReadyAsync(deployment);
        await harness.PassAsync();

        await harness.UpdateDeploymentAsync(deployment, d => d.DeletedAt = harness.Clock.GetUtcNow());
        await harness.PassAsync();
        Assert.All(await harness.ReplicasAsync(deployment), r => Assert.Equal(ReplicaStates.Draining, r.State));
        var deleting = await harness.GetDeploymentAsync(deployment);
        Assert.Equal(DeploymentStatuses.Deleting, deleting.Status);
        Assert.Equal("deleted: stopping 3 replica(s)", deleting.StatusReason);

        harness.Clock.Advance(TimeSpan.FromSeconds(30));
        await harness.PassAsync();
        await harness.AgentsStopAsync();
        var last = await harness.PassAsync();
        Assert.All(await harness.ReplicasAsync(deployment), r => Assert.Equal(ReplicaStates.Stopped, r.State));
        Assert.Equal("deleted: every replica stopped", (await harness.GetDeploymentAsync(deployment)).StatusReason);
        Assert.Equal(1, last.Deployments);
        Assert.Equal(0, (await harness.PassAsync()).Deployments); // nothing left to do for it
        await using var db = harness.Database.CreateContext();
        Assert.Equal(0, db.MachineTasks.Count(t => t.State != TaskStates.Terminated));
    }

    [Fact]
    public async Task A_suspended_deployment_gets_no_new_replica_and_keeps_its_status()
    {
        await using var harness = await StartAsync(DatabaseProvider.Sqlite);
        await harness.MachineAsync(L4, 2);
        var deployment = await harness.DeploymentAsync(Guid.NewGuid(), desired: 1);
        await harness.UpdateDeploymentAsync(deployment, d =>
        {
            d.Status = DeploymentStatuses.Suspended;
            d.StatusReason = "the wallet cannot cover its GPU time";
        });

        await harness.PassAsync();

        Assert.Empty(await harness.ReplicasAsync(deployment));
        var row = await harness.GetDeploymentAsync(deployment);
        Assert.Equal(DeploymentStatuses.Suspended, row.Status);
        Assert.Equal("the wallet cannot cover its GPU time", row.StatusReason);
    }

    [Fact]
    public async Task A_replica_on_a_draining_machine_is_replaced_elsewhere_before_it_drains()
    {
        await using var harness = await StartAsync(DatabaseProvider.Sqlite);
        var leaving = await harness.MachineAsync(L4, 1);
        var deployment = await harness.DeploymentAsync(Guid.NewGuid(), desired: 1);
        await harness.PassAsync();
        await harness.ReadyAsync(deployment);
        await harness.PassAsync();
        var original = Assert.Single(await harness.ReplicasAsync(deployment));

        // The operator drains the machine; another joins. The replacement starts while the original keeps serving.
        await harness.UpdateMachineAsync(leaving, m => m.State = MachineStates.Draining);
        var next = await harness.MachineAsync(L4, 1);
        await harness.PassAsync();
        var replicas = await harness.ReplicasAsync(deployment);
        Assert.Equal(ReplicaStates.Ready, replicas.Single(r => r.Id == original.Id).State);
        Assert.Equal(next, replicas.Single(r => r.Id != original.Id).MachineId);

        await harness.ReadyAsync(deployment);
        await harness.PassAsync();
        replicas = await harness.ReplicasAsync(deployment);
        Assert.Equal(ReplicaStates.Draining, replicas.Single(r => r.Id == original.Id).State);
        Assert.Equal(ReplicaStates.Ready, replicas.Single(r => r.Id != original.Id).State);
        var drained = await harness.EventsAsync(deployment, DeploymentEventKinds.ReplicaDraining);
        Assert.Equal("machine_draining", JsonDocument.Parse(Assert.Single(drained).Detail!).RootElement.GetProperty("reason").GetString());
        Assert.DoesNotContain(DeploymentEventKinds.RolloutStarted, await harness.EventsAsync(deployment)); // the same generation: not a rollout
    }

    [Fact]
    public async Task A_deployment_that_cannot_be_launched_stays_pending_with_a_reason_and_places_nothing()
    {
        await using var harness = await StartAsync(DatabaseProvider.Sqlite);
        await harness.MachineAsync(L4, 2);
        var unknown = await harness.DeploymentAsync(Guid.NewGuid(), desired: 1, name: "unknown");
        await harness.UpdateDeploymentAsync(unknown, d => d.Engine = "no-such-engine");
        var unsealable = await harness.DeploymentAsync(Guid.NewGuid(), desired: 1, name: "unsealable", secretsJson: """{"HF_TOKEN":"x"}""");
        await harness.UpdateDeploymentAsync(unsealable, d => d.SecretsSealed = "not a sealed value");

        await harness.PassAsync();

        Assert.Empty(await harness.ReplicasAsync(unknown));
        Assert.Empty(await harness.ReplicasAsync(unsealable));
        Assert.Equal("the engine no-such-engine cannot be launched by this server yet", (await harness.GetDeploymentAsync(unknown)).StatusReason);
        Assert.Equal("the deployment's secrets cannot be opened with this server's data key", (await harness.GetDeploymentAsync(unsealable)).StatusReason);
        Assert.Single(await harness.EventsAsync(unknown, DeploymentEventKinds.Unschedulable));
        await harness.AssertNoGpuAssignedTwiceAsync();
        await using var db = harness.Database.CreateContext();
        Assert.Equal(0, db.MachineTasks.Count());
    }
}
