using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Metadata.Builders;

namespace Sluice.Identity;

[Flags]
public enum KeyScopes
{
    None = 0,
    Inference = 1,
    Batch = 2,
    ManagementRead = 4,
    ManagementWrite = 8,
}

/// <summary>
/// An organization's API key. The secret is stored only as a bcrypt hash; <see cref="Prefix"/> (the first characters
/// of the key) finds the row. During a rotation's grace period the previous secret is still accepted.
/// </summary>
public sealed class ApiKey
{
    public Guid Id { get; init; }

    public Guid OrganizationId { get; init; }

    /// <summary>
    /// The person whose current role bounds what the key may do; while they are no member (removed, or account
    /// closed) the key does not verify. Null for a key an admin reassigned to the organization: its scopes alone bound it.
    /// </summary>
    public Guid? CreatedByUserId { get; set; }

    public required string Name { get; set; }

    public required string Prefix { get; set; }

    public required string SecretHash { get; set; }

    public string? PreviousPrefix { get; set; }

    public string? PreviousSecretHash { get; set; }

    public DateTimeOffset? PreviousValidUntil { get; set; }

    public KeyScopes Scopes { get; set; }

    /// <summary>Model ids the key may use, separated by spaces; null allows every model.</summary>
    public string? AllowedModels { get; set; }

    public DateTimeOffset? ExpiresAt { get; set; }

    public long? SpendLimitDailyMicros { get; set; }

    public long? SpendLimitMonthlyMicros { get; set; }

    public long? SpendLimitTotalMicros { get; set; }

    public int? RequestsPerMinute { get; set; }

    public int? TokensPerMinute { get; set; }

    public DateTimeOffset? LastUsedAt { get; set; }

    public DateTimeOffset? RevokedAt { get; set; }

    public DateTimeOffset CreatedAt { get; init; }

    /// <summary>Changes on every revocation, rotation or edit; replicas poll it to drop cached verifications.</summary>
    public DateTimeOffset UpdatedAt { get; set; }
}

internal sealed class ApiKeyConfiguration : IEntityTypeConfiguration<ApiKey>
{
    public void Configure(EntityTypeBuilder<ApiKey> builder)
    {
        builder.ToTable("api_keys");
        builder.HasKey(k => k.Id);
        builder.Property(k => k.Id).ValueGeneratedNever();
        builder.Property(k => k.Name).HasMaxLength(100);
        builder.Property(k => k.Prefix).HasMaxLength(32);
        builder.Property(k => k.SecretHash).HasMaxLength(100);
        builder.Property(k => k.PreviousPrefix).HasMaxLength(32);
        builder.Property(k => k.PreviousSecretHash).HasMaxLength(100);
        builder.Property(k => k.AllowedModels).HasMaxLength(4000);
        builder.HasIndex(k => k.Prefix);
        builder.HasIndex(k => k.PreviousPrefix);
        builder.HasIndex(k => k.OrganizationId);
        builder.HasIndex(k => k.UpdatedAt);
        builder.HasOne<Organization>().WithMany().HasForeignKey(k => k.OrganizationId).OnDelete(DeleteBehavior.Cascade);
    }
}
