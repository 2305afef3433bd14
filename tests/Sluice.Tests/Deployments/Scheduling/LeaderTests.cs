using Microsoft.Extensions.DependencyInjection;
using Sluice.Deployments;
using Sluice.Deployments.Scheduling;
using Sluice.Storage;
using static Sluice.Tests.Deployments.Scheduling.SchedulerHarness;

namespace Sluice.Tests.Deployments.Scheduling;

/// <summary>Two server replicas scheduling at once: one leader by lease, taken over when it expires, and never a replica or a GPU placed twice.</summary>
public sealed class LeaderTests
{
    [Fact]
    public async Task A_lone_scheduler_whose_own_lease_expired_takes_it_back_and_goes_on_scheduling()
    {
        await using var harness = await StartAsync(DatabaseProvider.Sqlite);
        var machine = await harness.MachineAsync(L4, 4);
        var deployment = await harness.DeploymentAsync(Guid.NewGuid(), desired: 1);
        Assert.True((await harness.PassAsync()).Leader);
        Assert.Single(await harness.ReplicasAsync(deployment));

        // Longer than the lease between two passes (a slow pass, a database outage): nobody else holds it, so it is still
        // this replica's to take, and the next pass schedules.
        harness.Clock.Advance(TimeSpan.FromHours(1));
        await harness.UpdateMachineAsync(machine, m => m.ContactAt = harness.Clock.GetUtcNow());
        await harness.UpdateDeploymentAsync(deployment, d => d.DesiredReplicas = 2);
        Assert.True((await harness.PassAsync()).Leader);
        Assert.Equal(2, (await harness.ReplicasAsync(deployment)).Count);
    }

    [Theory]
    [InlineData(DatabaseProvider.Sqlite)]
    [InlineData(DatabaseProvider.Postgres)]
    public async Task Two_server_replicas_scheduling_at_once_place_each_replica_once_and_no_gpu_twice(DatabaseProvider provider)
    {
        await using var first = await StartAsync(provider);
        await using var second = first.Replica();
        for (var i = 0; i < 10; i++)
        {
            await first.MachineAsync(L4, 4, organizationId: i % 5 == 0 ? Guid.NewGuid() : null);
        }

        var orgs = new[] { Guid.NewGuid(), Guid.NewGuid(), Guid.NewGuid() };
        var deployments = new List<(Guid Id, int Desired)>();
        for (var i = 0; i < 16; i++)
        {
            var desired = 1 + (i % 3);
            deployments.Add((await first.DeploymentAsync(orgs[i % 3], desired, name: $"model-{i}"), desired));
        }

        var leaders = new List<string>();
        for (var round = 0; round < 8; round++)
        {
            if (round % 2 == 1)
            {
                first.Clock.Advance(TimeSpan.FromMinutes(31)); // the lease expires: whoever asks first takes it over
                foreach (var machine in await MachinesAsync(first))
                {
                    await first.UpdateMachineAsync(machine, m => m.ContactAt = first.Clock.GetUtcNow());
                }
            }

            var passes = await Task.WhenAll(first.PassAsync(), second.PassAsync());
            Assert.Single(passes, p => p.Leader);
            leaders.Add(passes[0].Leader ? "first" : "second");
            foreach (var (id, _) in deployments)
            {
                await first.ReadyAsync(id);
            }

            // After every round: no deployment has more replicas than it wants, and no GPU is held twice.
            foreach (var (id, desired) in deployments)
            {
                var live = (await first.ReplicasAsync(id)).Count(r => r.State is ReplicaStates.Starting or ReplicaStates.Ready);
                Assert.True(live <= desired, $"round {round}: {live} replicas for a deployment that wants {desired}");
            }

            await first.AssertNoGpuAssignedTwiceAsync();
        }

        // 32 of the 40 GPUs wanted fit (8 of them are two private fleets' of organizations with no deployment).
        foreach (var (id, desired) in deployments)
        {
            Assert.Equal(desired, (await first.ReplicasAsync(id, ReplicaStates.Ready)).Count);
            Assert.Equal(DeploymentStatuses.Ready, (await first.GetDeploymentAsync(id)).Status);
        }

        await using var db = first.Database.CreateContext();
        Assert.Equal(deployments.Sum(d => d.Desired), db.DeploymentReplicas.Count());
        Assert.Equal(deployments.Sum(d => d.Desired), db.MachineTasks.Count());
    }

    [Fact]
    public async Task A_replica_that_lost_the_lease_writes_nothing_and_the_lease_is_handed_over_on_shutdown()
    {
        await using var first = await StartAsync(DatabaseProvider.Sqlite);
        await using var second = first.Replica();
        await first.MachineAsync(L4, 4);
        Assert.True((await first.PassAsync()).Leader);
        Assert.False((await second.PassAsync()).Leader);

        // The leader's lease ends while it is between passes; the other replica takes over and places the replica.
        first.Clock.Advance(TimeSpan.FromMinutes(31));
        await first.UpdateMachineAsync((await MachinesAsync(first)).Single(), m => m.ContactAt = first.Clock.GetUtcNow());
        var deployment = await first.DeploymentAsync(Guid.NewGuid(), desired: 2);
        Assert.True((await second.PassAsync()).Leader);
        Assert.Equal(2, (await first.ReplicasAsync(deployment)).Count);

        // The old leader's fenced write fails: it renews nothing and places nothing.
        await using (var scope = first.Sluice.Services.CreateAsyncScope())
        {
            var db = scope.ServiceProvider.GetRequiredService<SluiceDbContext>();
            Assert.False(await SchedulerLeases.RenewAsync(db, first.Scheduler.Holder, first.Clock.GetUtcNow(), TimeSpan.FromMinutes(30), CancellationToken.None));
        }

        await first.UpdateDeploymentAsync(deployment, d => d.DesiredReplicas = 3);
        var stale = await first.PassAsync();
        Assert.False(stale.Leader);
        Assert.Equal(2, (await first.ReplicasAsync(deployment)).Count);

        // The leader stops: it gives the lease up, and the other replica schedules at once.
        await second.Scheduler.StopAsync(CancellationToken.None);
        Assert.True((await first.PassAsync()).Leader);
        Assert.Equal(3, (await first.ReplicasAsync(deployment)).Count);
        Assert.Contains(first.Sluice.Logs.Lines, l => l.Contains("Scheduler lease taken", StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_leader_stopping_after_the_shutdown_grace_is_spent_stops_quietly_and_leaves_the_lease_to_expire()
    {
        await using var harness = await StartAsync(DatabaseProvider.Sqlite);
        Assert.True((await harness.PassAsync()).Leader);

        // The host's shutdown grace ran out on the services stopped before this one: handing the lease over is best
        // effort, and throwing here would fail the whole host's stop.
        await harness.Scheduler.StopAsync(new CancellationToken(canceled: true));

        await using var db = harness.Database.CreateContext();
        Assert.Equal(harness.Scheduler.Holder, db.Set<SchedulerLease>().Single().Holder);
    }

    private static async Task<List<Guid>> MachinesAsync(SchedulerHarness harness)
    {
        await using var db = harness.Database.CreateContext();
        return db.Machines.Select(m => m.Id).ToList();
    }
}
