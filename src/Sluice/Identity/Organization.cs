using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Metadata.Builders;

namespace Sluice.Identity;

/// <summary>A tenant: members, keys, usage and billing all belong to one organization.</summary>
public sealed class Organization
{
    public Guid Id { get; init; }

    public required string Name { get; set; }

    public string? BillingEmail { get; set; }

    /// <summary>Route this organization's requests only to providers that keep no data after answering.</summary>
    public bool RequireZeroRetention { get; set; }

    /// <summary>Route this organization's requests only to providers that do not train on what they receive.</summary>
    public bool RequireNoTraining { get; set; }

    /// <summary>
    /// The organization's current consent to its content being used for training (C04), mirrored from its newest
    /// <c>training</c> consent record so the gateway reads it with the rest of the policy. Off unless granted.
    /// </summary>
    public bool TrainingConsent { get; set; }

    /// <summary>
    /// Whether answers carry <c>usage.cost</c>, the charge in the wallet's currency (on unless the organization turns it
    /// off). Read by the gateway with the rest of the policy.
    /// </summary>
    public bool UsageCostInResponses { get; set; } = true;

    public int? RequestsPerMinute { get; set; }

    public int? TokensPerMinute { get; set; }

    /// <summary>Below this wallet balance a signed webhook goes to <see cref="LowBalanceWebhookUrl"/>, once per crossing.</summary>
    public long? LowBalanceThresholdMicros { get; set; }

    public string? LowBalanceWebhookUrl { get; set; }

    /// <summary>The webhook signing secret, sealed under the secrets key.</summary>
    public string? LowBalanceWebhookSecret { get; set; }

    public bool LowBalanceAlerted { get; set; }

    public DateTimeOffset CreatedAt { get; init; }

    public DateTimeOffset UpdatedAt { get; set; }
}

public enum OrgRole
{
    Owner,
    Admin,
    Member,
    Billing,
    Viewer,
}

/// <summary>A user's role in an organization.</summary>
public sealed class Membership
{
    public Guid OrganizationId { get; init; }

    public Guid UserId { get; init; }

    public OrgRole Role { get; set; }

    public DateTimeOffset CreatedAt { get; init; }
}

internal sealed class OrganizationConfiguration : IEntityTypeConfiguration<Organization>, IEntityTypeConfiguration<Membership>
{
    public void Configure(EntityTypeBuilder<Organization> builder)
    {
        builder.ToTable("organizations");
        builder.HasKey(o => o.Id);
        builder.Property(o => o.Id).ValueGeneratedNever();
        builder.Property(o => o.Name).HasMaxLength(200);
        builder.Property(o => o.BillingEmail).HasMaxLength(320);

        // Added to existing rows by a migration, hence the database default.
        builder.Property(o => o.RequireZeroRetention).HasDefaultValue(false);
        builder.Property(o => o.RequireNoTraining).HasDefaultValue(false);
        builder.Property(o => o.TrainingConsent).HasDefaultValue(false);
        builder.Property(o => o.UsageCostInResponses).HasDefaultValue(true).HasSentinel(true); // false is written, true left to the default
        builder.Property(o => o.LowBalanceAlerted).HasDefaultValue(false);
        builder.Property(o => o.LowBalanceWebhookUrl).HasMaxLength(500);
        builder.Property(o => o.LowBalanceWebhookSecret).HasMaxLength(500);
    }

    public void Configure(EntityTypeBuilder<Membership> builder)
    {
        builder.ToTable("memberships");
        builder.HasKey(m => new { m.OrganizationId, m.UserId });
        builder.Property(m => m.Role).HasConversion<string>().HasMaxLength(16);
        builder.HasOne<Organization>().WithMany().HasForeignKey(m => m.OrganizationId).OnDelete(DeleteBehavior.Cascade);
        builder.HasOne<User>().WithMany().HasForeignKey(m => m.UserId).OnDelete(DeleteBehavior.Cascade);
        builder.HasIndex(m => m.UserId);
    }
}
