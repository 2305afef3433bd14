using Sluice.Compute.Protocol;

namespace Sluice.Agent;

/// <summary>
/// Runs a machine's tasks. The heartbeat loop hands it every desired set the server sends and reports what it returns;
/// the serving endpoint asks it where a task listens. Implementations reconcile: start what is missing, stop what is
/// no longer wanted, restart what changed generation; they never block the heartbeat on a slow start.
/// </summary>
public interface ITaskSupervisor
{
    void Apply(IReadOnlyList<TaskSpec> desired);

    IReadOnlyList<TaskReport> Report();

    /// <summary>The loopback port of a task that is ready, or null.</summary>
    int? ReadyPort(string taskId);

    /// <summary>Stops every task (the agent is shutting down, or the machine was decommissioned).</summary>
    Task StopAllAsync(CancellationToken cancellationToken);
}
