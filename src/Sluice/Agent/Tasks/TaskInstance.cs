using Sluice.Compute.Protocol;

namespace Sluice.Agent.Tasks;

/// <summary>One run of a task (a process group or a container): started by an <see cref="ITaskRuntime"/>, watched by its runner.</summary>
internal interface ITaskInstance : IAsyncDisposable
{
    /// <summary>Completes with the exit code when the task's main process (or container) exits on its own or is stopped.</summary>
    Task<int> Exited { get; }

    /// <summary>SIGTERM to the whole group (or a container stop), <paramref name="grace"/> to exit, then SIGKILL; idempotent.</summary>
    Task StopAsync(TimeSpan grace);

    /// <summary>SIGKILL now, without waiting: the agent itself is exiting.</summary>
    void KillNow();
}

/// <summary>How a runtime (process, container) prepares and starts a task on this machine.</summary>
internal interface ITaskRuntime
{
    /// <summary>Null when the runtime can run tasks here; otherwise why not (a clear, content-free sentence).</summary>
    string? Unavailable { get; }

    /// <summary>Work before the first start (pulling an image); nothing for a process.</summary>
    Task PrepareAsync(TaskSpec spec, CancellationToken cancellationToken);

    Task<ITaskInstance> StartAsync(TaskSpec spec, int port, TaskLog log, CancellationToken cancellationToken);
}

/// <summary>A task spec the agent cannot run, with a content-free reason (never the command or an environment value).</summary>
internal sealed class TaskSpecException(string message) : Exception(message);
