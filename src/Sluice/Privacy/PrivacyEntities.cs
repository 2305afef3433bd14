using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Metadata.Builders;

namespace Sluice.Privacy;

/// <summary>
/// An order to keep data past its retention: everything of one organization, of one person, or of one retention class.
/// Placed and released by operators with a reason; while active, the sweepers skip what it covers.
/// </summary>
public sealed class LegalHold
{
    public Guid Id { get; init; }

    /// <summary><c>org</c>, <c>user</c> or <c>class</c>.</summary>
    public required string Scope { get; init; }

    public Guid? OrganizationId { get; init; }

    public Guid? UserId { get; init; }

    /// <summary>A <see cref="RetentionClass"/> name, for <c>class</c> holds.</summary>
    public string? RetentionClass { get; init; }

    /// <summary>The operator's reason (a matter or case reference), shown to operators only.</summary>
    public required string Reason { get; init; }

    public required string PlacedBy { get; init; }

    public DateTimeOffset PlacedAt { get; init; }

    public string? ReleasedBy { get; set; }

    public DateTimeOffset? ReleasedAt { get; set; }

    public string? ReleaseReason { get; set; }
}

/// <summary>A data-subject request: access, export, correction, deletion, restriction, objection or opt-out.</summary>
public sealed class PrivacyRequest
{
    public Guid Id { get; init; }

    /// <summary>The person the request is about; always the person who made it.</summary>
    public Guid UserId { get; init; }

    public required string Type { get; init; }

    public required string Status { get; set; }

    /// <summary>
    /// What a correction changes (JSON: name, email) or what an objection is about (purpose). Personal data until the
    /// request is decided, so it is cleared when the request completes, is denied for good, or the subject is erased.
    /// </summary>
    public string? Details { get; set; }

    /// <summary>SHA-256 of a one-time verification code, when one was sent.</summary>
    public string? VerificationCodeHash { get; set; }

    public DateTimeOffset? VerificationCodeExpiresAt { get; set; }

    public int VerificationAttempts { get; set; }

    /// <summary><c>password</c> or <c>code</c>: how the subject proved who they are.</summary>
    public string? VerificationMethod { get; set; }

    public DateTimeOffset? VerifiedAt { get; set; }

    public DateTimeOffset CreatedAt { get; init; }

    /// <summary>30 days after the request: the legal deadline for answering it.</summary>
    public DateTimeOffset DueAt { get; init; }

    public string? DecidedBy { get; set; }

    public DateTimeOffset? DecidedAt { get; set; }

    public string? DecisionReason { get; set; }

    public string? AppealReason { get; set; }

    public DateTimeOffset? AppealedAt { get; set; }

    public DateTimeOffset? CompletedAt { get; set; }

    /// <summary>Until when the access or export archive can be downloaded.</summary>
    public DateTimeOffset? ExportAvailableUntil { get; set; }
}

/// <summary>
/// One recorded choice for one purpose, by a person or for an organization. Rows are only ever added: the newest row
/// of a subject and purpose is the current choice, and the earlier ones are its history.
/// </summary>
public sealed class ConsentRecord
{
    public Guid Id { get; init; }

    public Guid? UserId { get; init; }

    public Guid? OrganizationId { get; init; }

    /// <summary><see cref="ConsentPurposes"/>.</summary>
    public required string Purpose { get; init; }

    public bool Granted { get; init; }

    /// <summary>1 for the subject's first choice on this purpose, then 2, 3…</summary>
    public int Version { get; init; }

    /// <summary>The privacy policy version in force when the choice was made.</summary>
    public int PolicyVersion { get; init; }

    /// <summary>Who recorded it: <c>user:…</c> for the person or an org admin, <c>system</c> for a restriction.</summary>
    public required string RecordedBy { get; init; }

    public DateTimeOffset RecordedAt { get; init; }
}

/// <summary>A service provider that receives personal data, listed in the generated privacy policy.</summary>
public sealed class Subprocessor
{
    public Guid Id { get; init; }

    public required string Name { get; set; }

    public required string Purpose { get; set; }

    public required string Location { get; set; }

    public DateTimeOffset CreatedAt { get; init; }

    public DateTimeOffset UpdatedAt { get; set; }
}

/// <summary>A published version of the generated privacy policy: a new one whenever its material content changes.</summary>
public sealed class PolicyVersion
{
    public int Version { get; init; }

    /// <summary>SHA-256 (hex) of the policy's material content.</summary>
    public required string Fingerprint { get; init; }

    /// <summary>Each section's short fingerprint (<c>name=hex;…</c>), to tell which sections the next version changes.</summary>
    public required string Sections { get; init; }

    /// <summary>The sections that changed from the previous version, comma-separated (never their content).</summary>
    public required string ChangedSections { get; init; }

    public DateTimeOffset PublishedAt { get; init; }
}

/// <summary>A notice shown to a person in the service (policy changes, request updates).</summary>
public sealed class Notification
{
    public Guid Id { get; init; }

    public Guid UserId { get; init; }

    public Guid? OrganizationId { get; init; }

    public required string Kind { get; init; }

    public required string Subject { get; init; }

    public required string Body { get; init; }

    public DateTimeOffset CreatedAt { get; init; }

    public DateTimeOffset? ReadAt { get; set; }
}

/// <summary>
/// A time-boxed permission, approved by an organization's owner or admin, for one operator to read that
/// organization's content-bearing resources (files, batch data) while debugging.
/// </summary>
public sealed class StaffAccessGrant
{
    public Guid Id { get; init; }

    public Guid OrganizationId { get; init; }

    public Guid OperatorUserId { get; init; }

    public required string Reason { get; init; }

    /// <summary>How long the access lasts once approved.</summary>
    public long DurationSeconds { get; init; }

    /// <summary><c>requested</c>, <c>approved</c>, <c>denied</c> or <c>revoked</c>; expiry follows from <see cref="ExpiresAt"/>.</summary>
    public required string Status { get; set; }

    public DateTimeOffset RequestedAt { get; init; }

    public Guid? DecidedByUserId { get; set; }

    public DateTimeOffset? DecidedAt { get; set; }

    public DateTimeOffset? ExpiresAt { get; set; }
}

internal sealed class PrivacyConfiguration :
    IEntityTypeConfiguration<LegalHold>, IEntityTypeConfiguration<PrivacyRequest>, IEntityTypeConfiguration<ConsentRecord>,
    IEntityTypeConfiguration<Subprocessor>, IEntityTypeConfiguration<PolicyVersion>, IEntityTypeConfiguration<Notification>,
    IEntityTypeConfiguration<StaffAccessGrant>
{
    public void Configure(EntityTypeBuilder<LegalHold> builder)
    {
        builder.ToTable("legal_holds");
        builder.HasKey(h => h.Id);
        builder.Property(h => h.Id).ValueGeneratedNever();
        builder.Property(h => h.Scope).HasMaxLength(8);
        builder.Property(h => h.RetentionClass).HasMaxLength(32);
        builder.Property(h => h.Reason).HasMaxLength(500);
        builder.Property(h => h.PlacedBy).HasMaxLength(64);
        builder.Property(h => h.ReleasedBy).HasMaxLength(64);
        builder.Property(h => h.ReleaseReason).HasMaxLength(500);
        builder.HasIndex(h => h.ReleasedAt);
    }

    public void Configure(EntityTypeBuilder<PrivacyRequest> builder)
    {
        builder.ToTable("privacy_requests");
        builder.HasKey(r => r.Id);
        builder.Property(r => r.Id).ValueGeneratedNever();
        builder.Property(r => r.Type).HasMaxLength(16);
        builder.Property(r => r.Status).HasMaxLength(24);
        builder.Property(r => r.Details).HasMaxLength(2000);
        builder.Property(r => r.VerificationCodeHash).HasMaxLength(64);
        builder.Property(r => r.VerificationMethod).HasMaxLength(16);
        builder.Property(r => r.DecidedBy).HasMaxLength(64);
        builder.Property(r => r.DecisionReason).HasMaxLength(1000);
        builder.Property(r => r.AppealReason).HasMaxLength(1000);
        builder.HasIndex(r => new { r.UserId, r.CreatedAt });
        builder.HasIndex(r => new { r.Status, r.DueAt });
    }

    public void Configure(EntityTypeBuilder<ConsentRecord> builder)
    {
        builder.ToTable("consent_records");
        builder.HasKey(c => c.Id);
        builder.Property(c => c.Id).ValueGeneratedNever();
        builder.Property(c => c.Purpose).HasMaxLength(16);
        builder.Property(c => c.RecordedBy).HasMaxLength(64);
        builder.HasIndex(c => new { c.UserId, c.Purpose, c.Version });
        builder.HasIndex(c => new { c.OrganizationId, c.Purpose, c.Version });
    }

    public void Configure(EntityTypeBuilder<Subprocessor> builder)
    {
        builder.ToTable("subprocessors");
        builder.HasKey(s => s.Id);
        builder.Property(s => s.Id).ValueGeneratedNever();
        builder.Property(s => s.Name).HasMaxLength(200);
        builder.Property(s => s.Purpose).HasMaxLength(500);
        builder.Property(s => s.Location).HasMaxLength(200);
        builder.HasIndex(s => s.Name).IsUnique();
    }

    public void Configure(EntityTypeBuilder<PolicyVersion> builder)
    {
        builder.ToTable("policy_versions");
        builder.HasKey(p => p.Version);
        builder.Property(p => p.Version).ValueGeneratedNever();
        builder.Property(p => p.Fingerprint).HasMaxLength(64);
        builder.Property(p => p.Sections).HasMaxLength(1000);
        builder.Property(p => p.ChangedSections).HasMaxLength(500);
    }

    public void Configure(EntityTypeBuilder<Notification> builder)
    {
        builder.ToTable("notifications");
        builder.HasKey(n => n.Id);
        builder.Property(n => n.Id).ValueGeneratedNever();
        builder.Property(n => n.Kind).HasMaxLength(32);
        builder.Property(n => n.Subject).HasMaxLength(200);
        builder.Property(n => n.Body).HasMaxLength(4000);
        builder.HasIndex(n => new { n.UserId, n.CreatedAt });
        builder.HasIndex(n => n.CreatedAt);
    }

    public void Configure(EntityTypeBuilder<StaffAccessGrant> builder)
    {
        builder.ToTable("staff_access_grants");
        builder.HasKey(g => g.Id);
        builder.Property(g => g.Id).ValueGeneratedNever();
        builder.Property(g => g.Reason).HasMaxLength(500);
        builder.Property(g => g.Status).HasMaxLength(16);
        builder.HasIndex(g => new { g.OrganizationId, g.RequestedAt });
    }
}
