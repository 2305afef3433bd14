using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Metadata.Builders;

namespace Sluice.Deployments.Billing;

/// <summary>
/// The price of one GPU of a type for one hour, from <see cref="EffectiveFrom"/> on; later versions supersede earlier
/// ones (never in the past, so GPU time already charged never changes price).
/// </summary>
public sealed class GpuPrice
{
    public Guid Id { get; init; }

    /// <summary>The GPU model as nvidia-smi names it ("NVIDIA L4", "NVIDIA H100 80GB HBM3").</summary>
    public required string GpuType { get; init; }

    /// <summary>Micro-units per GPU per hour.</summary>
    public long PerGpuHourMicros { get; init; }

    public DateTimeOffset EffectiveFrom { get; init; }

    public DateTimeOffset CreatedAt { get; init; }
}

/// <summary>
/// One charge of a replica's reserved GPU time: the seconds [<see cref="From"/>, <see cref="To"/>) since the replica was
/// placed, at one price, and what they cost. Written in the same database transaction as the ledger posting that moves
/// the money and the replica's <see cref="DeploymentReplica.BilledThrough"/>, so the ledger can be checked against these
/// rows to the micro-unit. Metadata only.
/// </summary>
public sealed class DeploymentCharge
{
    public Guid Id { get; init; }

    public Guid ReplicaId { get; init; }

    public Guid DeploymentId { get; init; }

    public Guid OrganizationId { get; init; }

    public DateTimeOffset From { get; init; }

    public DateTimeOffset To { get; init; }

    public long Seconds { get; init; }

    public string? GpuType { get; init; }

    public int GpuCount { get; init; }

    /// <summary>The price in force for these seconds (0: the GPU type had no price).</summary>
    public long PerGpuHourMicros { get; init; }

    /// <summary>What the wallet paid (the ledger posting <see cref="LedgerKey"/> carries exactly the sum of its charges).</summary>
    public long CostMicros { get; init; }

    /// <summary>
    /// GPU time the wallet could not cover: a replica that kept running after its deployment was suspended, until the
    /// scheduler stopped it. Never taken from the wallet (it never goes negative); the platform's loss.
    /// </summary>
    public long UncollectedMicros { get; init; }

    /// <summary>The idempotency key of the ledger transaction that paid it (<c>gpu:{replica}:{second}</c>); null when nothing was paid.</summary>
    public string? LedgerKey { get; init; }

    /// <summary>The server replica whose meter wrote it.</summary>
    public required string Meter { get; init; }

    public DateTimeOffset CreatedAt { get; init; }
}

internal sealed class GpuTimeConfiguration : IEntityTypeConfiguration<GpuPrice>, IEntityTypeConfiguration<DeploymentCharge>
{
    public void Configure(EntityTypeBuilder<GpuPrice> builder)
    {
        builder.ToTable("gpu_prices");
        builder.HasKey(p => p.Id);
        builder.Property(p => p.Id).ValueGeneratedNever();
        builder.Property(p => p.GpuType).HasMaxLength(100);
        builder.HasIndex(p => new { p.GpuType, p.EffectiveFrom });
    }

    public void Configure(EntityTypeBuilder<DeploymentCharge> builder)
    {
        builder.ToTable("deployment_charges");
        builder.HasKey(c => c.Id);
        builder.Property(c => c.Id).ValueGeneratedNever();
        builder.Property(c => c.GpuType).HasMaxLength(100);
        builder.Property(c => c.LedgerKey).HasMaxLength(200);
        builder.Property(c => c.Meter).HasMaxLength(64);
        builder.HasIndex(c => new { c.ReplicaId, c.To });
        builder.HasIndex(c => new { c.OrganizationId, c.CreatedAt });
        builder.HasIndex(c => new { c.DeploymentId, c.CreatedAt });
    }
}
