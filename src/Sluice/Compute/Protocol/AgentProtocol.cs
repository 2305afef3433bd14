using System.Text.Json;
using System.Text.Json.Serialization;

namespace Sluice.Compute.Protocol;

// The wire contract between `sluice agent` and the server. Control traffic is outbound from the agent only:
// it joins once (POST AgentPaths.Join with a join token) and then heartbeats (POST AgentPaths.Heartbeat with its
// machine credential as a bearer token). Each heartbeat carries telemetry and the state of every task on the machine;
// the reply carries the machine's whole desired state, which the agent reconciles. Nothing here ever carries a
// command line, an environment or anything a task printed upward; the only content going down is a task's spec.
// JSON is snake_case (ComputeJson). Adding a field is compatible both ways; removing or renaming one is not.

/// <summary>Paths on the server that the agent calls, and on the agent that the gateway calls.</summary>
public static class AgentPaths
{
    public const string Join = "/api/v1/agent/join";
    public const string Heartbeat = "/api/v1/agent/heartbeat";

    /// <summary>On the agent's HTTPS serving endpoint: <c>/tasks/{task_id}/…</c> is proxied to the task's loopback port.</summary>
    public const string TaskPrefix = "/tasks/";

    /// <summary>
    /// On the agent's serving endpoint: <c>POST</c> with the serving token asks the agent to heartbeat now, because its
    /// desired set changed (the server nudges it so a placed replica starts without waiting up to an interval).
    /// </summary>
    public const string Wake = "/agent/wake";

    /// <summary>The header the gateway presents to an agent: <c>Authorization: Bearer {serving token}</c>.</summary>
    public const string ServingScheme = "Bearer";

    /// <summary>
    /// A process task's command that means "this agent's own executable" (<c>sluice</c>, or <c>dotnet sluice.dll</c>
    /// when the agent runs that way): how deployments start the built-in engines without knowing where Sluice is installed.
    /// </summary>
    public const string SluiceCommand = "{sluice}";
}

/// <summary>POST /api/v1/agent/join: a one-time join token exchanged for a machine identity.</summary>
public sealed record JoinRequest
{
    public required string Token { get; init; }
    public required string Hostname { get; init; }
    public required string AgentVersion { get; init; }
    public required MachineInventory Inventory { get; init; }

    /// <summary>Where the gateway reaches the agent's serving endpoint, e.g. <c>https://10.0.0.7:8443</c>.</summary>
    public required string ServingUrl { get; init; }

    /// <summary>Lower-case hex SHA-256 of the serving certificate's DER bytes; the server pins it.</summary>
    public required string CertificateSha256 { get; init; }

    public IReadOnlyDictionary<string, string>? Labels { get; init; }
}

public sealed record JoinResponse
{
    public required string MachineId { get; init; }

    /// <summary>The machine's credential for heartbeats (agent → server). Shown once; the server keeps a hash.</summary>
    public required string Credential { get; init; }

    /// <summary>The token the gateway presents to this agent (gateway → agent). The agent keeps only its hash.</summary>
    public required string ServingToken { get; init; }

    /// <summary>The organization whose private fleet the machine joined; null for the platform pool.</summary>
    public string? OrganizationId { get; init; }

    public required int HeartbeatIntervalSeconds { get; init; }
}

/// <summary>Hardware and software of a machine. Sent at join and whenever it changes.</summary>
public sealed record MachineInventory
{
    public IReadOnlyList<GpuDevice> Gpus { get; init; } = [];
    public string? DriverVersion { get; init; }
    public string? CudaVersion { get; init; }
    public int CpuCores { get; init; }
    public long MemoryBytes { get; init; }
    public long DiskBytes { get; init; }
    public string? OperatingSystem { get; init; }
    public bool DockerAvailable { get; init; }

    /// <summary>
    /// Model files the agent offers (under its models directory): what a deployment's <c>path</c> artifact may name.
    /// Paths and sizes only, never file contents.
    /// </summary>
    public IReadOnlyList<ModelFile>? Models { get; init; }
}

/// <summary>A model file or directory on the machine: its absolute path and size.</summary>
public sealed record ModelFile
{
    public required string Path { get; init; }
    public long Bytes { get; init; }
}

public sealed record GpuDevice
{
    public required int Index { get; init; }
    public required string Uuid { get; init; }
    public required string Name { get; init; }
    public long MemoryMib { get; init; }
}

/// <summary>POST /api/v1/agent/heartbeat, every HeartbeatIntervalSeconds.</summary>
public sealed record HeartbeatRequest
{
    /// <summary>Increases by one per heartbeat of one agent process; restarts at 1 when the agent restarts.</summary>
    public required long Sequence { get; init; }
    public required string AgentVersion { get; init; }

    /// <summary>Set when the inventory changed since the last heartbeat (and on the first one after a start).</summary>
    public MachineInventory? Inventory { get; init; }

    public required TelemetrySample Telemetry { get; init; }

    /// <summary>Every task the agent knows about, terminated ones included until the server stops asking for them.</summary>
    public IReadOnlyList<TaskReport> Tasks { get; init; } = [];
}

/// <summary>Metadata only: figures about the machine, never anything a task processed or printed.</summary>
public sealed record TelemetrySample
{
    public required DateTimeOffset At { get; init; }

    /// <summary>0–100, all cores.</summary>
    public double CpuPercent { get; init; }
    public double Load1 { get; init; }
    public long MemoryUsedBytes { get; init; }
    public long MemoryTotalBytes { get; init; }
    public long DiskUsedBytes { get; init; }
    public long DiskTotalBytes { get; init; }
    public IReadOnlyList<GpuSample> Gpus { get; init; } = [];
}

public sealed record GpuSample
{
    public required int Index { get; init; }
    public required string Uuid { get; init; }
    public long MemoryUsedMib { get; init; }
    public long MemoryTotalMib { get; init; }

    /// <summary>Figures the driver does not report (nvidia-smi prints <c>[N/A]</c>) are null.</summary>
    public double? UtilizationPercent { get; init; }
    public double? TemperatureC { get; init; }
    public double? PowerDrawW { get; init; }
    public long? XidErrors { get; init; }
    public long? EccErrors { get; init; }
}

public sealed record HeartbeatResponse
{
    /// <summary><see cref="MachineStates"/>: ready, cordoned, draining, decommissioned.</summary>
    public required string MachineState { get; init; }

    /// <summary>The whole desired set: the agent starts what is missing and stops what is not listed.</summary>
    public IReadOnlyList<TaskSpec> Tasks { get; init; } = [];

    public required int HeartbeatIntervalSeconds { get; init; }
}

public static class MachineStates
{
    public const string Ready = "ready";
    public const string Cordoned = "cordoned";
    public const string Draining = "draining";
    public const string Decommissioned = "decommissioned";
}

public static class MachineLiveness
{
    public const string Starting = "starting";
    public const string Alive = "alive";
    public const string Suspect = "suspect";
    public const string Offline = "offline";
    public const string Lost = "lost";
}

/// <summary>What the server wants running on a machine.</summary>
public sealed record TaskSpec
{
    public required string TaskId { get; init; }

    /// <summary>Bumped by the server when the spec changes; the agent restarts a task whose generation changed.</summary>
    public required int Generation { get; init; }

    /// <summary><see cref="TaskKinds"/>: model_server or job.</summary>
    public required string Kind { get; init; }

    /// <summary><see cref="TaskRuntimes"/>: process or container.</summary>
    public required string Runtime { get; init; }

    public ProcessRuntimeSpec? Process { get; init; }
    public ContainerRuntimeSpec? Container { get; init; }

    /// <summary>GPU indices on the machine assigned by the server; exposed to the task as CUDA_VISIBLE_DEVICES.</summary>
    public IReadOnlyList<int> GpuIndices { get; init; } = [];

    /// <summary>For model servers: how the agent decides the task is ready and alive.</summary>
    public ProbeSpec? Probe { get; init; }

    /// <summary>
    /// Environment variables with secret values (an upstream token, a registry password). They reach the machine only
    /// in heartbeat replies over TLS, live in the agent's memory and the task's environment, and are stored on the
    /// server encrypted, never in plain text.
    /// </summary>
    public IReadOnlyDictionary<string, string>? Secrets { get; init; }
}

public static class TaskKinds
{
    public const string ModelServer = "model_server";
    public const string Job = "job";
}

public static class TaskRuntimes
{
    public const string Process = "process";
    public const string Container = "container";
}

/// <summary>
/// A process the agent starts. <c>{port}</c> in an argument or environment value is replaced by the loopback port the
/// agent picked for the task (also given as <c>PORT</c>); model servers must listen on 127.0.0.1 only.
/// </summary>
public sealed record ProcessRuntimeSpec
{
    public required string Command { get; init; }
    public IReadOnlyList<string> Args { get; init; } = [];
    public IReadOnlyDictionary<string, string>? Environment { get; init; }
    public string? WorkingDirectory { get; init; }
}

/// <summary>A container run through the Docker Engine API; <see cref="ContainerPort"/> is published on 127.0.0.1 only.</summary>
public sealed record ContainerRuntimeSpec
{
    public required string Image { get; init; }
    public IReadOnlyList<string>? Command { get; init; }
    public IReadOnlyDictionary<string, string>? Environment { get; init; }
    public int? ContainerPort { get; init; }
}

public sealed record ProbeSpec
{
    /// <summary><c>/health</c> (200 when ready, llama.cpp and Sluice's engines) or <c>/v1/models</c>.</summary>
    public string Path { get; init; } = "/health";
    public int StartupTimeoutSeconds { get; init; } = 1200;
    public int IntervalSeconds { get; init; } = 10;
    public int FailureThreshold { get; init; } = 3;
}

/// <summary>A task's state as the agent sees it. Never a command line, an environment or output.</summary>
public sealed record TaskReport
{
    public required string TaskId { get; init; }
    public required int Generation { get; init; }

    /// <summary><see cref="TaskStates"/>.</summary>
    public required string State { get; init; }

    /// <summary><see cref="TaskReasons"/>, set once terminating or terminated (and for a restart, the last one's reason).</summary>
    public string? Reason { get; init; }

    public int Restarts { get; init; }
    public int? ExitCode { get; init; }
    public DateTimeOffset? StartedAt { get; init; }
    public DateTimeOffset? ReadyAt { get; init; }

    /// <summary>Requests the agent's serving endpoint has in flight to this task now.</summary>
    public int InFlight { get; init; }

    /// <summary>The engine's own queue (vllm:num_requests_waiting, llamacpp:requests_deferred), when it reports one.</summary>
    public int? QueueDepth { get; init; }

    /// <summary>
    /// Why a task failed, in the agent's words, when the reason alone does not say (e.g. "Docker is not available on this
    /// machine"). A fixed, content-free sentence: never a command, an image reference, an environment value or output.
    /// </summary>
    public string? Detail { get; init; }
}

public static class TaskStates
{
    public const string Pending = "pending";
    public const string Preparing = "preparing";
    public const string Starting = "starting";
    public const string Ready = "ready";
    public const string Terminating = "terminating";
    public const string Terminated = "terminated";
}

public static class TaskReasons
{
    public const string Completed = "completed";
    public const string Failed = "failed";
    public const string HealthCheckFailed = "health_check_failed";
    public const string MachineLost = "machine_lost";
    public const string Stopped = "stopped";
}

[JsonSourceGenerationOptions(JsonSerializerDefaults.Web,
    PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower,
    DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(JoinRequest))]
[JsonSerializable(typeof(JoinResponse))]
[JsonSerializable(typeof(HeartbeatRequest))]
[JsonSerializable(typeof(HeartbeatResponse))]
public sealed partial class ComputeJson : JsonSerializerContext;
