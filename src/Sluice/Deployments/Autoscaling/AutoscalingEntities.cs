using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Metadata.Builders;

namespace Sluice.Deployments.Autoscaling;

/// <summary>
/// The load one server replica sees on one deployment (<see cref="DeploymentLoad"/>), shared with the replica that
/// decides: upserted every report interval while the deployment has activity there. Figures only.
/// </summary>
public sealed class DeploymentLoadReport
{
    /// <summary>The server replica (a random id per process).</summary>
    public Guid ServerId { get; init; }

    public Guid DeploymentId { get; init; }

    /// <summary>Requests that server has in flight to the deployment's replicas.</summary>
    public int InFlight { get; set; }

    /// <summary>Requests that server holds waiting for a replica (the cold-start queue).</summary>
    public int Waiting { get; set; }

    public DateTimeOffset? LastRequestAt { get; set; }

    public DateTimeOffset ReportedAt { get; set; }
}

/// <summary>Who decides autoscaling now: one row per lease name, held by a server replica until it expires.</summary>
public sealed class AutoscalerLease
{
    public required string Name { get; init; }

    public Guid Holder { get; set; }

    public DateTimeOffset ExpiresAt { get; set; }
}

internal sealed class AutoscalingEntityConfiguration :
    IEntityTypeConfiguration<DeploymentLoadReport>, IEntityTypeConfiguration<AutoscalerLease>
{
    public void Configure(EntityTypeBuilder<DeploymentLoadReport> builder)
    {
        builder.ToTable("deployment_load_reports");
        builder.HasKey(r => new { r.ServerId, r.DeploymentId });
        builder.HasIndex(r => r.DeploymentId);
    }

    public void Configure(EntityTypeBuilder<AutoscalerLease> builder)
    {
        builder.ToTable("autoscaler_leases");
        builder.HasKey(l => l.Name);
        builder.Property(l => l.Name).HasMaxLength(64);
    }
}
