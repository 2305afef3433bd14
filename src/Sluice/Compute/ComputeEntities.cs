using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Metadata.Builders;

namespace Sluice.Compute;

/// <summary>
/// A machine that joined with <c>sluice agent join</c>: its identity, owner, inventory and where the gateway reaches it.
/// Secrets are never stored in the clear: the credential as a SHA-256 hash, the serving token sealed under the data key.
/// </summary>
public sealed class Machine
{
    public Guid Id { get; init; }

    /// <summary>The organization whose private fleet this is; null for the platform pool.</summary>
    public Guid? OrganizationId { get; init; }

    public required string Hostname { get; set; }

    public required string ServingUrl { get; set; }

    /// <summary>Lower-case hex SHA-256 of the serving certificate, pinned at join.</summary>
    public required string CertificateSha256 { get; set; }

    /// <summary>Lower-case hex SHA-256 of the credential's 256-bit secret.</summary>
    public required string CredentialHash { get; set; }

    public DateTimeOffset? CredentialRevokedAt { get; set; }

    /// <summary>The serving token (gateway → agent), sealed with <see cref="Crypto.SecretBox"/> bound to the machine id.</summary>
    public required string ServingTokenSealed { get; set; }

    /// <summary><see cref="Protocol.MachineStates"/>.</summary>
    public required string State { get; set; }

    /// <summary><see cref="Protocol.MachineLiveness"/>.</summary>
    public required string Liveness { get; set; }

    /// <summary>The last inventory the agent sent, as JSON (hardware metadata only).</summary>
    public required string Inventory { get; set; }

    public required string AgentVersion { get; set; }

    /// <summary>Labels as a JSON object of strings.</summary>
    public required string Labels { get; set; }

    public Guid JoinTokenId { get; init; }

    public DateTimeOffset JoinedAt { get; init; }

    public DateTimeOffset? LastHeartbeatAt { get; set; }

    /// <summary>
    /// What liveness is measured from: the last heartbeat, or, before the first one, the join time plus the starting
    /// grace. Only ever moves forward.
    /// </summary>
    public DateTimeOffset ContactAt { get; set; }

    public DateTimeOffset StateChangedAt { get; set; }

    public DateTimeOffset LivenessChangedAt { get; set; }

    /// <summary>Bumped by every placement on the machine, so two placements at once take turns (the row lock).</summary>
    public long TaskVersion { get; set; }
}

/// <summary>A one-time token that lets one machine join the platform pool or one organization's private fleet.</summary>
public sealed class MachineJoinToken
{
    public Guid Id { get; init; }

    public Guid? OrganizationId { get; init; }

    /// <summary>Lower-case hex SHA-256 of the token's 256-bit secret: enough for a random secret, no salt or stretching needed.</summary>
    public required string TokenHash { get; init; }

    public string? Description { get; init; }

    public required string CreatedBy { get; init; }

    public DateTimeOffset CreatedAt { get; init; }

    public DateTimeOffset ExpiresAt { get; init; }

    public DateTimeOffset? UsedAt { get; set; }

    public Guid? MachineId { get; set; }

    public DateTimeOffset? RevokedAt { get; set; }

    public string? RevokedBy { get; set; }
}

/// <summary>
/// Work the server wants on a machine. The spec (command, arguments, environment, image, secrets) is stored sealed under
/// the data key, bound to the task id; only what placement and listings need is in plain columns.
/// </summary>
public sealed class MachineTask
{
    public Guid Id { get; init; }

    public Guid MachineId { get; init; }

    /// <summary>Whose work this is; null for the platform's own. Never another organization's private machine.</summary>
    public Guid? OrganizationId { get; init; }

    public required string Kind { get; init; }

    public required string Runtime { get; init; }

    /// <summary>Comma-separated GPU indices assigned on the machine ("" for none).</summary>
    public required string GpuIndices { get; init; }

    public int Generation { get; set; }

    /// <summary><c>running</c> or <c>stopped</c>: whether the task is in the machine's desired set.</summary>
    public required string Desired { get; set; }

    public required string SpecSealed { get; set; }

    /// <summary>The last state the agent reported (<see cref="Protocol.TaskStates"/>); pending until it reports.</summary>
    public required string State { get; set; }

    public string? Reason { get; set; }

    public int ReportedGeneration { get; set; }

    public int Restarts { get; set; }

    public int? ExitCode { get; set; }

    public DateTimeOffset? StartedAt { get; set; }

    public DateTimeOffset? ReadyAt { get; set; }

    public DateTimeOffset? ReportedAt { get; set; }

    /// <summary>Requests the agent's serving endpoint had in flight to this task at its last report; null before one.</summary>
    public int? InFlight { get; set; }

    /// <summary>The engine's own queue at the last report, when it reports one.</summary>
    public int? QueueDepth { get; set; }

    public required string CreatedBy { get; init; }

    public DateTimeOffset CreatedAt { get; init; }

    public DateTimeOffset UpdatedAt { get; set; }

    public IReadOnlyList<int> Gpus() =>
        GpuIndices.Length == 0 ? [] : GpuIndices.Split(',').Select(s => int.Parse(s, System.Globalization.CultureInfo.InvariantCulture)).ToList();
}

public static class TaskDesired
{
    public const string Running = "running";
    public const string Stopped = "stopped";
}

/// <summary>What happened to a machine: joined, state and liveness changes, tasks lost, credential revoked. Metadata only.</summary>
public sealed class MachineEvent
{
    public Guid Id { get; init; }

    public Guid MachineId { get; init; }

    public DateTimeOffset At { get; init; }

    public required string Kind { get; init; }

    public string? Detail { get; init; }
}

public static class MachineEventKinds
{
    public const string Joined = "joined";
    public const string StateChanged = "state_changed";
    public const string LivenessChanged = "liveness_changed";
    public const string TasksLost = "tasks_lost";
    public const string CredentialRevoked = "credential_revoked";
    public const string LabelsChanged = "labels_changed";
}

internal sealed class ComputeEntityConfiguration :
    IEntityTypeConfiguration<Machine>, IEntityTypeConfiguration<MachineJoinToken>, IEntityTypeConfiguration<MachineTask>, IEntityTypeConfiguration<MachineEvent>
{
    public void Configure(EntityTypeBuilder<Machine> builder)
    {
        builder.ToTable("machines");
        builder.HasKey(m => m.Id);
        builder.Property(m => m.Id).ValueGeneratedNever();
        builder.Property(m => m.Hostname).HasMaxLength(253);
        builder.Property(m => m.ServingUrl).HasMaxLength(500);
        builder.Property(m => m.CertificateSha256).HasMaxLength(64);
        builder.Property(m => m.CredentialHash).HasMaxLength(64);
        builder.Property(m => m.ServingTokenSealed).HasMaxLength(200);
        builder.Property(m => m.State).HasMaxLength(16);
        builder.Property(m => m.Liveness).HasMaxLength(16);
        builder.Property(m => m.AgentVersion).HasMaxLength(64);
        builder.HasIndex(m => m.OrganizationId);
        builder.HasIndex(m => new { m.Liveness, m.ContactAt });
    }

    public void Configure(EntityTypeBuilder<MachineJoinToken> builder)
    {
        builder.ToTable("machine_join_tokens");
        builder.HasKey(t => t.Id);
        builder.Property(t => t.Id).ValueGeneratedNever();
        builder.Property(t => t.TokenHash).HasMaxLength(64);
        builder.HasIndex(t => t.TokenHash).IsUnique();
        builder.Property(t => t.Description).HasMaxLength(200);
        builder.Property(t => t.CreatedBy).HasMaxLength(64);
        builder.Property(t => t.RevokedBy).HasMaxLength(64);
        builder.HasIndex(t => new { t.OrganizationId, t.CreatedAt });
    }

    public void Configure(EntityTypeBuilder<MachineTask> builder)
    {
        builder.ToTable("machine_tasks");
        builder.HasKey(t => t.Id);
        builder.Property(t => t.Id).ValueGeneratedNever();
        builder.Property(t => t.Kind).HasMaxLength(16);
        builder.Property(t => t.Runtime).HasMaxLength(16);
        builder.Property(t => t.GpuIndices).HasMaxLength(200);
        builder.Property(t => t.Desired).HasMaxLength(16);
        builder.Property(t => t.SpecSealed).HasMaxLength(200000);
        builder.Property(t => t.State).HasMaxLength(16);
        builder.Property(t => t.Reason).HasMaxLength(32);
        builder.Property(t => t.CreatedBy).HasMaxLength(64);
        builder.HasIndex(t => t.MachineId);
    }

    public void Configure(EntityTypeBuilder<MachineEvent> builder)
    {
        builder.ToTable("machine_events");
        builder.HasKey(e => e.Id);
        builder.Property(e => e.Id).ValueGeneratedNever();
        builder.Property(e => e.Kind).HasMaxLength(32);
        builder.Property(e => e.Detail).HasMaxLength(200);
        builder.HasIndex(e => new { e.MachineId, e.At });
    }
}
