using System.Text.Json;
using Sluice.Deployments;
using Sluice.Storage;
using static Sluice.Tests.Deployments.Scheduling.SchedulerHarness;

namespace Sluice.Tests.Deployments.Scheduling;

/// <summary>Where the scheduler puts replicas: packed GPUs, spread replicas, the GPU type, private fleets, the artifact; and what it says when nothing fits.</summary>
public sealed class PlacementTests
{
    [Theory]
    [InlineData(DatabaseProvider.Sqlite)]
    [InlineData(DatabaseProvider.Postgres)]
    public async Task Replicas_pack_onto_the_fullest_machine_that_fits_but_spread_across_machines(DatabaseProvider provider)
    {
        await using var harness = await StartAsync(provider);
        var org = Guid.NewGuid();
        var roomy = await harness.MachineAsync(H100, 8);
        var full = await harness.MachineAsync(H100, 8, busy: 6); // 2 free
        var tight = await harness.MachineAsync(H100, 8, busy: 7); // 1 free: too few for 2 GPUs
        var single = await harness.DeploymentAsync(org, desired: 1, gpuType: H100, gpus: 2);

        await harness.PassAsync();

        // Pack: the machine left with the fewest free GPUs after placing (0 on "full") wins over the empty one.
        var placed = Assert.Single(await harness.ReplicasAsync(single));
        Assert.Equal(full, placed.MachineId);
        Assert.Equal(2, placed.GpuCount);
        Assert.Equal(H100, placed.GpuType);
        Assert.Equal("6,7", (await harness.TaskAsync(placed.TaskId)).GpuIndices);

        // Spread: a second replica of one deployment goes to another machine even though packing would double up.
        var wide = await harness.MachineAsync(L4, 4);
        var half = await harness.MachineAsync(L4, 4, busy: 2);
        var spread = await harness.DeploymentAsync(org, desired: 2, gpuType: L4, gpus: 1, name: "spread");
        await harness.PassAsync();
        var machines = (await harness.ReplicasAsync(spread)).Select(r => r.MachineId).ToHashSet();
        Assert.Equal(new[] { half, wide }.Order(), machines.Order());

        // A third replica, every fitting machine already holding one: packed again, onto the fuller machine.
        harness.Clock.Advance(TimeSpan.FromSeconds(1));
        await harness.UpdateDeploymentAsync(spread, d => d.DesiredReplicas = 3);
        await harness.PassAsync();
        Assert.Equal(half, (await harness.ReplicasAsync(spread)).Last().MachineId);
        await harness.AssertNoGpuAssignedTwiceAsync();
    }

    [Fact]
    public async Task A_command_the_organization_chose_runs_as_a_process_only_on_its_own_machines_and_as_a_container_on_the_shared_pool()
    {
        await using var harness = await StartAsync(DatabaseProvider.Sqlite);
        var org = Guid.NewGuid();
        var pool = await harness.MachineAsync([(L4, 2)], docker: true);
        var custom = await harness.DeploymentAsync(org, desired: 1, gpus: 1, name: "custom");
        await harness.UpdateDeploymentAsync(custom, d =>
        {
            d.Engine = DeploymentEngines.CustomCommand;
            d.ArtifactKind = ArtifactKinds.None;
            d.Artifact = null;
            d.LaunchJson = """{"command":"/opt/engine/serve","args":["--port","{port}"]}""";
        });

        // On the platform pool a process would run as the agent's user, beside other organizations' work: refused.
        await harness.PassAsync();
        Assert.Empty(await harness.ReplicasAsync(custom));
        Assert.StartsWith("a process engine other than the built-in ones runs only on the organization's own machines", (await harness.GetDeploymentAsync(custom)).StatusReason);

        // The same command as a container may use the pool; the built-in engine stays a process anywhere.
        await harness.UpdateDeploymentAsync(custom, d => d.LaunchJson = """{"image":"registry.example.com/engine:1","containerPort":8000}""");
        await harness.UpdateDeploymentAsync(custom, d => d.Engine = DeploymentEngines.CustomContainer);
        var builtIn = await harness.DeploymentAsync(org, desired: 1, gpus: 1, name: "builtin");
        harness.Clock.Advance(TimeSpan.FromSeconds(1));
        await harness.PassAsync();
        Assert.Equal(pool, Assert.Single(await harness.ReplicasAsync(custom)).MachineId);
        Assert.Equal(pool, Assert.Single(await harness.ReplicasAsync(builtIn)).MachineId);

        // On the organization's own machine the command runs as a process.
        var own = await harness.MachineAsync(L4, 1, organizationId: org);
        var mine = await harness.DeploymentAsync(org, desired: 1, gpus: 1, name: "mine");
        await harness.UpdateDeploymentAsync(mine, d =>
        {
            d.Engine = DeploymentEngines.CustomCommand;
            d.ArtifactKind = ArtifactKinds.None;
            d.Artifact = null;
            d.LaunchJson = """{"command":"/opt/engine/serve","args":["--port","{port}"]}""";
        });
        harness.Clock.Advance(TimeSpan.FromSeconds(1));
        await harness.PassAsync();
        Assert.Equal(own, Assert.Single(await harness.ReplicasAsync(mine)).MachineId);
    }

    [Fact]
    public async Task Only_gpus_of_the_requested_type_are_used_even_on_a_machine_with_mixed_gpus()
    {
        await using var harness = await StartAsync(DatabaseProvider.Sqlite);
        var org = Guid.NewGuid();
        await harness.MachineAsync(L4, 8);
        var mixed = await harness.MachineAsync([(L4, 2), (H100, 2)]);
        var deployment = await harness.DeploymentAsync(org, desired: 1, gpuType: H100, gpus: 2);

        await harness.PassAsync();

        var replica = Assert.Single(await harness.ReplicasAsync(deployment));
        Assert.Equal(mixed, replica.MachineId);
        Assert.Equal("2,3", (await harness.TaskAsync(replica.TaskId)).GpuIndices); // the H100s, not the free L4s at 0 and 1
        Assert.Equal(H100, replica.GpuType);

        // A type no machine has: nothing placed, and the reason says which.
        var missing = await harness.DeploymentAsync(org, desired: 1, gpuType: "NVIDIA B200", gpus: 1, name: "b200");
        await harness.PassAsync();
        Assert.Empty(await harness.ReplicasAsync(missing));
        var row = await harness.GetDeploymentAsync(missing);
        Assert.Equal(DeploymentStatuses.Pending, row.Status);
        Assert.Equal("no ready machine open to the organization has 1 NVIDIA B200 GPU(s)", row.StatusReason);
    }

    [Fact]
    public async Task An_organizations_private_machines_run_only_its_work_and_are_preferred_for_it()
    {
        await using var harness = await StartAsync(DatabaseProvider.Sqlite);
        var owner = Guid.NewGuid();
        var privateMachine = await harness.MachineAsync(L4, 4, organizationId: owner);

        // Another organization's deployment never lands on the private fleet, and the reason says so.
        var other = await harness.DeploymentAsync(Guid.NewGuid(), desired: 1, name: "other");
        await harness.PassAsync();
        Assert.Empty(await harness.ReplicasAsync(other));
        Assert.Equal("no ready machine is in the platform pool or the organization's private fleet", (await harness.GetDeploymentAsync(other)).StatusReason);

        // A pool machine joins (fuller, so packing alone would pick it): the owner's work still goes to its own machine,
        // the other organization's to the pool.
        var pool = await harness.MachineAsync(L4, 2, busy: 1);
        var own = await harness.DeploymentAsync(owner, desired: 1, name: "own");
        await harness.PassAsync();
        Assert.Equal(privateMachine, Assert.Single(await harness.ReplicasAsync(own)).MachineId);
        Assert.Equal(pool, Assert.Single(await harness.ReplicasAsync(other)).MachineId);

        // More of the other organization's replicas than the pool holds: the private machine's 3 free GPUs stay unused.
        await harness.UpdateDeploymentAsync(other, d => d.DesiredReplicas = 2);
        await harness.PassAsync();
        Assert.Equal(pool, Assert.Single(await harness.ReplicasAsync(other)).MachineId);
        Assert.Equal("no ready machine has 1 NVIDIA L4 GPU(s) free", (await harness.GetDeploymentAsync(other)).StatusReason);
    }

    [Fact]
    public async Task A_replica_goes_only_where_the_model_file_is_and_unschedulable_is_said_at_most_once_a_minute()
    {
        await using var harness = await StartAsync(DatabaseProvider.Sqlite);
        var org = Guid.NewGuid();
        var without = await harness.MachineAsync(L4, 1, hasModel: false);
        var deployment = await harness.DeploymentAsync(org, desired: 2);

        await harness.PassAsync();
        Assert.Empty(await harness.ReplicasAsync(deployment));
        var row = await harness.GetDeploymentAsync(deployment);
        Assert.Equal(DeploymentStatuses.Pending, row.Status);
        Assert.Equal("no ready machine with free GPUs has the model file", row.StatusReason);
        var events = await harness.EventsAsync(deployment, DeploymentEventKinds.Unschedulable);
        var reason = JsonDocument.Parse(Assert.Single(events).Detail!).RootElement;
        Assert.Equal("no ready machine with free GPUs has the model file", reason.GetProperty("reason").GetString());
        Assert.Equal(2, reason.GetProperty("missing").GetInt32());

        // Still nowhere: no second event within the minute, one more after it.
        harness.Clock.Advance(TimeSpan.FromSeconds(30));
        await harness.PassAsync();
        Assert.Single(await harness.EventsAsync(deployment, DeploymentEventKinds.Unschedulable));
        harness.Clock.Advance(TimeSpan.FromSeconds(31));
        await harness.PassAsync();
        Assert.Equal(2, (await harness.EventsAsync(deployment, DeploymentEventKinds.Unschedulable)).Count);

        // A machine with the file joins: one replica placed there (the other still waits, and says why).
        var with = await harness.MachineAsync(L4, 1);
        await harness.PassAsync();
        var replica = Assert.Single(await harness.ReplicasAsync(deployment));
        Assert.Equal(with, replica.MachineId);
        Assert.NotEqual(without, replica.MachineId);
        await harness.ReadyAsync(deployment);
        await harness.PassAsync();
        row = await harness.GetDeploymentAsync(deployment);
        Assert.Equal(DeploymentStatuses.Ready, row.Status);
        Assert.Equal("not every replica is placed: no ready machine with free GPUs has the model file", row.StatusReason);
    }

    [Fact]
    public async Task Machines_that_are_cordoned_or_not_alive_get_no_replica()
    {
        await using var harness = await StartAsync(DatabaseProvider.Sqlite);
        var cordoned = await harness.MachineAsync(L4, 1);
        var suspect = await harness.MachineAsync(L4, 1);
        await harness.UpdateMachineAsync(cordoned, m => m.State = Sluice.Compute.Protocol.MachineStates.Cordoned);
        await harness.UpdateMachineAsync(suspect, m => m.Liveness = Sluice.Compute.Protocol.MachineLiveness.Suspect);
        var deployment = await harness.DeploymentAsync(Guid.NewGuid(), desired: 1);

        await harness.PassAsync();

        Assert.Empty(await harness.ReplicasAsync(deployment));
        Assert.Equal("no machine is ready and alive", (await harness.GetDeploymentAsync(deployment)).StatusReason);
    }
}
