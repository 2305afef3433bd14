using Sluice.Compute.Protocol;

namespace Sluice.Agent;

/// <summary>
/// Where `sluice agent run` gets its task supervisor and serving endpoint: the two seams between the heartbeat loop
/// (Agent/) and the task runtimes (Agent/Tasks/) and HTTPS serving endpoint (Agent/Serving/). This build has neither:
/// the supervisor runs nothing and reports nothing, and nothing listens. Wiring the real ones is a change to this file
/// only.
/// </summary>
internal static class AgentComposition
{
    /// <summary>The supervisor the heartbeat loop hands each desired task set to and asks for reports.</summary>
    public static ITaskSupervisor CreateSupervisor(AgentIdentity identity, string dataDir, TimeProvider time, ILoggerFactory loggers) =>
        new PlaceholderTaskSupervisor(loggers.CreateLogger("Sluice.Agent.Tasks"));

    /// <summary>
    /// Starts the HTTPS endpoint the gateway calls (<see cref="AgentPaths.TaskPrefix"/>…), listening on
    /// <see cref="AgentIdentity.ServingListenUrl"/> with the certificate from <see cref="ServingCertificate.Load"/> and
    /// accepting only the token whose hash is <see cref="AgentIdentity.ServingTokenSha256"/>. Disposing it stops it.
    /// </summary>
    public static Task<IAsyncDisposable> StartServingAsync(
        AgentIdentity identity, string dataDir, ITaskSupervisor supervisor, TimeProvider time, ILoggerFactory loggers, CancellationToken cancellationToken) =>
        Task.FromResult<IAsyncDisposable>(NoServing.Instance);

    private sealed class PlaceholderTaskSupervisor(ILogger logger) : ITaskSupervisor
    {
        public void Apply(IReadOnlyList<TaskSpec> desired) => AgentLog.PlaceholderApplied(logger, desired.Count);

        public IReadOnlyList<TaskReport> Report() => [];

        public int? ReadyPort(string taskId) => null;

        public Task StopAllAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    }

    private sealed class NoServing : IAsyncDisposable
    {
        public static readonly NoServing Instance = new();

        public ValueTask DisposeAsync() => ValueTask.CompletedTask;
    }
}
