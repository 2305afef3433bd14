using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Metadata.Builders;

namespace Sluice.Identity;

/// <summary>A person who signs in. Email is stored normalised (trimmed, lower case).</summary>
public sealed class User
{
    public Guid Id { get; init; }

    public required string Email { get; set; }

    public string? DisplayName { get; set; }

    /// <summary>bcrypt (<c>$2b$</c>) hash; the password itself is never stored.</summary>
    public required string PasswordHash { get; set; }

    public bool IsPlatformOperator { get; set; }

    public DateTimeOffset CreatedAt { get; init; }

    /// <summary>When the person attested being at least <see cref="AttestedMinimumAge"/> years old (sign-up).</summary>
    public DateTimeOffset? AgeAttestedAt { get; set; }

    public int? AttestedMinimumAge { get; set; }

    /// <summary>When the account was closed by a deletion request: no sign-in since; erased after the grace period.</summary>
    public DateTimeOffset? ClosedAt { get; set; }

    /// <summary>When the personal data of the closed account was erased (the row stays, pseudonymous, for the ledger's sake).</summary>
    public DateTimeOffset? ErasedAt { get; set; }

    /// <summary>When the person restricted processing: no optional processing (training, marketing, analytics) since.</summary>
    public DateTimeOffset? ProcessingRestrictedAt { get; set; }

    public static string NormalizeEmail(string email) => email.Trim().ToLowerInvariant();
}

internal sealed class UserConfiguration : IEntityTypeConfiguration<User>
{
    public void Configure(EntityTypeBuilder<User> builder)
    {
        builder.ToTable("users");
        builder.HasKey(u => u.Id);
        builder.Property(u => u.Id).ValueGeneratedNever();
        builder.Property(u => u.Email).HasMaxLength(320);
        builder.Property(u => u.DisplayName).HasMaxLength(200);
        builder.Property(u => u.PasswordHash).HasMaxLength(100);
        builder.HasIndex(u => u.Email).IsUnique();
    }
}
