using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Metadata.Builders;

namespace Sluice.Deployments;

/// <summary>
/// An organization's model served on machines: what to run (engine, artifact, arguments), on what (GPU type and count
/// per replica), and how many (min, max, target concurrency, idle timeout). Callers reach it on <c>/v1</c> by
/// <see cref="Name"/>. Private to its organization unless an operator publishes it. Metadata only: the engine's secrets
/// (a hub token) are sealed, and no request content is ever kept.
/// </summary>
public sealed class Deployment
{
    public Guid Id { get; init; }

    public Guid OrganizationId { get; init; }

    /// <summary>The model id callers use in <c>/v1</c>: unique within the organization, never a catalog model's id.</summary>
    public required string Name { get; set; }

    public string? Description { get; set; }

    /// <summary><see cref="DeploymentEngines"/>.</summary>
    public required string Engine { get; set; }

    /// <summary><see cref="ArtifactKinds"/>: how <see cref="Artifact"/> is found.</summary>
    public required string ArtifactKind { get; set; }

    /// <summary>A path on the machine, an id the engine fetches itself, or a fine-tuned model's id; null for custom engines.</summary>
    public string? Artifact { get; set; }

    /// <summary>The GPU model a replica needs, as nvidia-smi names it ("NVIDIA L4"); null: any GPU (or none, with 0 GPUs).</summary>
    public string? GpuType { get; set; }

    public int GpusPerReplica { get; set; }

    public int MinReplicas { get; set; }

    public int MaxReplicas { get; set; }

    /// <summary>Requests in flight per replica the autoscaler aims for.</summary>
    public int TargetConcurrency { get; set; }

    /// <summary>Serverless (min 0): with no request for this long, the deployment scales to zero.</summary>
    public int IdleTimeoutSeconds { get; set; }

    /// <summary>How long load must stay low before the autoscaler removes a replica.</summary>
    public int ScaleDownDelaySeconds { get; set; }

    /// <summary>
    /// The engine's launch settings as JSON (<see cref="DeploymentLaunchSettings"/>): extra engine arguments and, for
    /// custom engines, the command or container. Never secrets.
    /// </summary>
    public required string LaunchJson { get; set; }

    /// <summary>Environment secrets for the engine (a hub token), sealed under the data key bound to the deployment; null for none.</summary>
    public string? SecretsSealed { get; set; }

    /// <summary>Bumped by every change to what a replica runs; replicas of an older generation are rolled out.</summary>
    public int Generation { get; set; }

    /// <summary>How many replicas the autoscaler wants now (within min..max). The scheduler converges the replicas to it.</summary>
    public int DesiredReplicas { get; set; }

    /// <summary><see cref="DeploymentStatuses"/>.</summary>
    public required string Status { get; set; }

    /// <summary>Why the status is what it is, in a fixed content-free sentence ("no ready machine has 1 free NVIDIA L4").</summary>
    public string? StatusReason { get; set; }

    /// <summary>Published by an operator: every organization sees it in <c>/v1/models</c> and may call it, at its prices.</summary>
    public bool Public { get; set; }

    /// <summary>Per-token prices (serverless and public deployments), in micro-units per million tokens; null: not charged per token.</summary>
    public long? InputPerMillionMicros { get; set; }

    public long? OutputPerMillionMicros { get; set; }

    public required string CreatedBy { get; init; }

    public DateTimeOffset CreatedAt { get; init; }

    public DateTimeOffset UpdatedAt { get; set; }

    /// <summary>Set by delete: the scheduler stops every replica, then the deployment is gone from every listing.</summary>
    public DateTimeOffset? DeletedAt { get; set; }
}

/// <summary>One replica of a deployment: a model-server task on one machine, of one generation of the deployment's spec.</summary>
public sealed class DeploymentReplica
{
    public Guid Id { get; init; }

    public Guid DeploymentId { get; init; }

    public Guid OrganizationId { get; init; }

    /// <summary>The deployment's generation this replica runs.</summary>
    public int Generation { get; init; }

    public Guid MachineId { get; init; }

    /// <summary>The machine task that runs the engine (<see cref="Compute.MachineTask"/>).</summary>
    public Guid TaskId { get; init; }

    /// <summary>The GPU model it holds (from the machine's inventory) and how many: what GPU time is billed at.</summary>
    public string? GpuType { get; init; }

    public int GpuCount { get; init; }

    /// <summary><see cref="ReplicaStates"/>.</summary>
    public required string State { get; set; }

    public string? Reason { get; set; }

    /// <summary>Started to serve a request that was waiting with the deployment at zero.</summary>
    public bool ColdStart { get; init; }

    public DateTimeOffset CreatedAt { get; init; }

    public DateTimeOffset? ReadyAt { get; set; }

    public DateTimeOffset? DrainingAt { get; set; }

    public DateTimeOffset? StoppedAt { get; set; }

    /// <summary>GPU time is charged up to here (reserved from <see cref="CreatedAt"/> until <see cref="StoppedAt"/>).</summary>
    public DateTimeOffset? BilledThrough { get; set; }
}

/// <summary>What happened to a deployment: created, updated, scaled (with the autoscaler's inputs), replicas placed, ready, lost, rolled out. Metadata only.</summary>
public sealed class DeploymentEvent
{
    public Guid Id { get; init; }

    public Guid DeploymentId { get; init; }

    public DateTimeOffset At { get; init; }

    /// <summary><see cref="DeploymentEventKinds"/>.</summary>
    public required string Kind { get; init; }

    /// <summary>A small JSON object of figures and ids (never content), e.g. an autoscaling decision's inputs.</summary>
    public string? Detail { get; init; }
}

internal sealed class DeploymentEntityConfiguration :
    IEntityTypeConfiguration<Deployment>, IEntityTypeConfiguration<DeploymentReplica>, IEntityTypeConfiguration<DeploymentEvent>
{
    public void Configure(EntityTypeBuilder<Deployment> builder)
    {
        builder.ToTable("deployments");
        builder.HasKey(d => d.Id);
        builder.Property(d => d.Id).ValueGeneratedNever();
        builder.Property(d => d.Name).HasMaxLength(100);
        builder.Property(d => d.Description).HasMaxLength(500);
        builder.Property(d => d.Engine).HasMaxLength(32);
        builder.Property(d => d.ArtifactKind).HasMaxLength(16);
        builder.Property(d => d.Artifact).HasMaxLength(1000);
        builder.Property(d => d.GpuType).HasMaxLength(100);
        builder.Property(d => d.Status).HasMaxLength(32);
        builder.Property(d => d.StatusReason).HasMaxLength(300);
        builder.Property(d => d.CreatedBy).HasMaxLength(64);
        builder.HasIndex(d => new { d.OrganizationId, d.Name });
        builder.HasIndex(d => d.Public);
    }

    public void Configure(EntityTypeBuilder<DeploymentReplica> builder)
    {
        builder.ToTable("deployment_replicas");
        builder.HasKey(r => r.Id);
        builder.Property(r => r.Id).ValueGeneratedNever();
        builder.Property(r => r.GpuType).HasMaxLength(100);
        builder.Property(r => r.State).HasMaxLength(16);
        builder.Property(r => r.Reason).HasMaxLength(64);
        builder.HasIndex(r => new { r.DeploymentId, r.State });
        builder.HasIndex(r => r.TaskId).IsUnique();
        builder.HasIndex(r => r.MachineId);
    }

    public void Configure(EntityTypeBuilder<DeploymentEvent> builder)
    {
        builder.ToTable("deployment_events");
        builder.HasKey(e => e.Id);
        builder.Property(e => e.Id).ValueGeneratedNever();
        builder.Property(e => e.Kind).HasMaxLength(32);
        builder.Property(e => e.Detail).HasMaxLength(2000);
        builder.HasIndex(e => new { e.DeploymentId, e.At });
    }
}
