using Sluice.Compute.Protocol;

namespace Sluice.Deployments.Scheduling;

/// <summary>
/// One pass's view of a machine that takes new work (ready, alive): its owner, inventory and the GPUs its unterminated
/// tasks hold. Placement itself re-checks the GPUs under the machine's row lock; this view only chooses where to try.
/// </summary>
internal sealed class MachineSlot(Guid id, Guid? organizationId, MachineInventory inventory, HashSet<int> taken)
{
    public Guid Id => id;

    public Guid? OrganizationId => organizationId;

    public MachineInventory Inventory => inventory;

    public HashSet<int> Taken => taken;

    public int Total(string? gpuType) => inventory.Gpus.Count(g => gpuType is null || g.Name == gpuType);

    public int Free(string? gpuType) => inventory.Gpus.Count(g => (gpuType is null || g.Name == gpuType) && !taken.Contains(g.Index));
}

/// <summary>Where a replica may go and, when nowhere, what is missing: pure functions over a pass's fleet view.</summary>
internal static class Placement
{
    /// <summary>
    /// The machines that fit one replica of <paramref name="deployment"/>, best first: the organization's own machines
    /// before the platform pool, then machines that hold no replica of it (spread), then the one left with the fewest
    /// free GPUs (pack), then by id. When none fits, the reason names the first thing missing.
    /// <paramref name="ownMachinesOnly"/>: the replica runs as a process with a command the organization chose, so it
    /// would run as the agent's user, able to read what the agent can (its credential, other tasks' environments); such
    /// work goes only to the organization's own machines, and on the shared pool it must be a container.
    /// </summary>
    public static (List<MachineSlot> Candidates, string? Unschedulable) Candidates(
        IReadOnlyCollection<MachineSlot> fleet, Deployment deployment, bool needsDocker, IReadOnlySet<Guid> holding, IReadOnlySet<Guid> excluded,
        bool ownMachinesOnly = false)
    {
        var gpus = deployment.GpusPerReplica;
        var type = deployment.GpuType;
        var machines = fleet.Where(m => !excluded.Contains(m.Id)).ToList();
        if (machines.Count == 0)
        {
            return ([], "no machine is ready and alive");
        }

        machines = machines.Where(m => m.OrganizationId is null || m.OrganizationId == deployment.OrganizationId).ToList();
        if (machines.Count == 0)
        {
            return ([], "no ready machine is in the platform pool or the organization's private fleet");
        }

        if (ownMachinesOnly)
        {
            machines = machines.Where(m => m.OrganizationId == deployment.OrganizationId).ToList();
            if (machines.Count == 0)
            {
                return ([], "a process engine other than the built-in ones runs only on the organization's own machines; on the platform pool use runtime container");
            }
        }

        var what = type is null ? $"{gpus} GPU(s)" : $"{gpus} {type} GPU(s)";
        if (gpus > 0)
        {
            machines = machines.Where(m => m.Total(type) >= gpus).ToList();
            if (machines.Count == 0)
            {
                return ([], $"no ready machine open to the organization has {what}");
            }

            machines = machines.Where(m => m.Free(type) >= gpus).ToList();
            if (machines.Count == 0)
            {
                return ([], $"no ready machine has {what} free");
            }
        }

        if (needsDocker)
        {
            machines = machines.Where(m => m.Inventory.DockerAvailable).ToList();
            if (machines.Count == 0)
            {
                return ([], "no ready machine with free GPUs has Docker for a container engine");
            }
        }

        machines = machines.Where(m => DeploymentArtifacts.MachineHas(m.Inventory, deployment)).ToList();
        if (machines.Count == 0)
        {
            return ([], "no ready machine with free GPUs has the model file");
        }

        return (machines
            .OrderBy(m => m.OrganizationId == deployment.OrganizationId ? 0 : 1)
            .ThenBy(m => holding.Contains(m.Id) ? 1 : 0)
            .ThenBy(m => m.Free(null) - gpus)
            .ThenBy(m => m.Id)
            .ToList(), null);
    }
}
