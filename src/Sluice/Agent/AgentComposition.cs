using Sluice.Agent.Serving;
using Sluice.Agent.Tasks;

namespace Sluice.Agent;

/// <summary>
/// Where `sluice agent run` gets its task supervisor and serving endpoint: the seams between the heartbeat loop
/// (Agent/), the task runtimes (Agent/Tasks/) and the HTTPS serving endpoint (Agent/Serving/). The two share one
/// <see cref="TaskLoad"/>: the endpoint counts requests in flight and reads engines' queues into it, and the
/// supervisor's reports carry both to the server for the autoscaler.
/// </summary>
internal static class AgentComposition
{
    /// <summary>The supervisor the heartbeat loop hands each desired task set to and asks for reports.</summary>
    public static ITaskSupervisor CreateSupervisor(AgentIdentity identity, string dataDir, TimeProvider time, ILoggerFactory loggers, AgentWake? wake = null) =>
        new ProcessTaskSupervisor(time, loggers, new TaskSupervisorOptions
        {
            // Task process groups are noted here, so the next agent ends those a SIGKILLed one left running.
            StateDirectory = Path.Combine(dataDir, "tasks"),
            StateChanged = wake is null ? null : wake.Signal,
        });

    /// <summary>
    /// Starts the HTTPS endpoint the gateway calls (<see cref="Compute.Protocol.AgentPaths.TaskPrefix"/>…), listening on
    /// <see cref="AgentIdentity.ServingListenUrl"/> with the certificate pinned at join and accepting only the token whose
    /// hash is <see cref="AgentIdentity.ServingTokenSha256"/>. Disposing it stops it.
    /// </summary>
    public static async Task<IAsyncDisposable> StartServingAsync(
        AgentIdentity identity, string dataDir, ITaskSupervisor supervisor, TimeProvider time, ILoggerFactory loggers, CancellationToken cancellationToken,
        AgentWake? wake = null) =>
        await AgentServingEndpoint.StartAsync(
            identity, dataDir, supervisor, (supervisor as ProcessTaskSupervisor)?.Load ?? new TaskLoad(), loggers, cancellationToken,
            new AgentServingOptions { Wake = wake is null ? null : wake.Signal });
}
