using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Metadata.Builders;

namespace Sluice.Identity;

/// <summary>A signed-in browser or client. The cookie carries a random token; only its SHA-256 is stored.</summary>
public sealed class Session
{
    public Guid Id { get; init; }

    public required string TokenHash { get; init; }

    public Guid UserId { get; init; }

    public DateTimeOffset CreatedAt { get; init; }

    public DateTimeOffset ExpiresAt { get; init; }

    public DateTimeOffset? RevokedAt { get; set; }
}

/// <summary>One sign-in attempt, as metadata: who (if known), when, from where, and how it ended. Never the email typed.</summary>
public sealed class LoginEvent
{
    public Guid Id { get; init; }

    public Guid? UserId { get; init; }

    public DateTimeOffset OccurredAt { get; init; }

    public string? IpAddress { get; init; }

    public string? UserAgent { get; init; }

    public required string Outcome { get; init; }
}

internal sealed class SessionConfiguration : IEntityTypeConfiguration<Session>, IEntityTypeConfiguration<LoginEvent>
{
    public void Configure(EntityTypeBuilder<Session> builder)
    {
        builder.ToTable("sessions");
        builder.HasKey(s => s.Id);
        builder.Property(s => s.Id).ValueGeneratedNever();
        builder.Property(s => s.TokenHash).HasMaxLength(64);
        builder.HasIndex(s => s.TokenHash).IsUnique();
        builder.HasIndex(s => s.UserId);
        builder.HasOne<User>().WithMany().HasForeignKey(s => s.UserId).OnDelete(DeleteBehavior.Cascade);
    }

    public void Configure(EntityTypeBuilder<LoginEvent> builder)
    {
        builder.ToTable("login_events");
        builder.HasKey(e => e.Id);
        builder.Property(e => e.Id).ValueGeneratedNever();
        builder.Property(e => e.IpAddress).HasMaxLength(45);
        builder.Property(e => e.UserAgent).HasMaxLength(256);
        builder.Property(e => e.Outcome).HasMaxLength(32);
        builder.HasIndex(e => new { e.UserId, e.OccurredAt });
        builder.HasIndex(e => e.OccurredAt);
    }
}
