namespace Sluice.Agent.Tasks;

/// <summary>How the agent runs tasks. The defaults suit real engines; tests shorten them.</summary>
public sealed record TaskSupervisorOptions
{
    /// <summary>Between SIGTERM to a task's process group (or a container stop) and SIGKILL.</summary>
    public TimeSpan StopGrace { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>The first wait before restarting a model server that exited or failed its liveness probe; doubles each time.</summary>
    public TimeSpan RestartBackoffInitial { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>The longest wait between restarts.</summary>
    public TimeSpan RestartBackoffMax { get; init; } = TimeSpan.FromMinutes(2);

    /// <summary>A model server ready this long has its backoff reset to the initial wait.</summary>
    public TimeSpan BackoffResetAfter { get; init; } = TimeSpan.FromMinutes(1);

    /// <summary>
    /// How often the readiness probe is tried while a task is starting: often, since a request may be waiting for it
    /// (a cold start), and a probe is one loopback request.
    /// </summary>
    public TimeSpan ReadinessPollInterval { get; init; } = TimeSpan.FromMilliseconds(200);

    /// <summary>Called (outside any lock) when a task becomes ready or ends, so the heartbeat reports it now (<see cref="AgentWake"/>).</summary>
    public Action? StateChanged { get; init; }

    /// <summary>One probe request's limit (wall time).</summary>
    public TimeSpan ProbeTimeout { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>Per task: the most of its stdout and stderr kept in memory (the oldest lines go first).</summary>
    public int LogBufferBytes { get; init; } = 1024 * 1024;

    /// <summary>The Docker Engine API's socket; container tasks fail clearly when it is absent.</summary>
    public string DockerSocket { get; init; } = "/var/run/docker.sock";

    /// <summary>
    /// Where the agent notes the process groups it started (pids only), so that after an agent was SIGKILLed the next
    /// one ends what it left running; e.g. <c>{data dir}/tasks</c>. Null: nothing is noted.
    /// </summary>
    public string? StateDirectory { get; init; }

    /// <summary>A tmpfs where a container task's secrets are written as files (a 0700 directory per task, removed with it).</summary>
    public string SecretsRoot { get; init; } = "/dev/shm";
}
