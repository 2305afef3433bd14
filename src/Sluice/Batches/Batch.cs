using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Metadata.Builders;

namespace Sluice.Batches;

/// <summary>
/// A batch's state and metadata. Its requests and results are never here: the input and output are encrypted files,
/// and results in progress are in an encrypted journal (<see cref="BatchJournal"/>).
/// </summary>
public sealed class Batch
{
    public const string IdPrefix = "batch_";
    public const string Validating = "validating";
    public const string Failed = "failed";
    public const string InProgress = "in_progress";
    public const string Finalizing = "finalizing";
    public const string Completed = "completed";
    public const string Expired = "expired";
    public const string Cancelling = "cancelling";
    public const string Cancelled = "cancelled";

    /// <summary>Statuses a runner still has work for.</summary>
    public static readonly string[] ActiveStatuses = [Validating, InProgress, Finalizing, Cancelling];

    public Guid Id { get; init; }

    public Guid OrganizationId { get; init; }

    /// <summary>The key that created it: the batch runs with that key's grants and limits, and stops if it is revoked.</summary>
    public Guid KeyId { get; init; }

    public required string Endpoint { get; init; }

    public Guid InputFileId { get; init; }

    public required string CompletionWindow { get; init; }

    public required string Status { get; set; }

    public Guid? OutputFileId { get; set; }

    public Guid? ErrorFileId { get; set; }

    /// <summary>Validation errors as OpenAI's <c>errors.data</c> JSON: codes, messages and line numbers, never line content.</summary>
    public string? Errors { get; set; }

    /// <summary>The client's metadata (JSON object, at most 16 pairs).</summary>
    public string? Metadata { get; init; }

    /// <summary>The model the lines asked for, when they all asked for the same one.</summary>
    public string? Model { get; set; }

    /// <summary>Seconds after finishing that the output and error files expire (capped by <c>Files:Retention</c>).</summary>
    public long? OutputExpiresAfterSeconds { get; init; }

    public int TotalRequests { get; set; }

    public int CompletedRequests { get; set; }

    public int FailedRequests { get; set; }

    public long InputTokens { get; set; }

    public long OutputTokens { get; set; }

    public long CachedTokens { get; set; }

    public DateTimeOffset CreatedAt { get; init; }

    public DateTimeOffset ExpiresAt { get; init; }

    public DateTimeOffset? InProgressAt { get; set; }

    public DateTimeOffset? FinalizingAt { get; set; }

    public DateTimeOffset? CompletedAt { get; set; }

    public DateTimeOffset? FailedAt { get; set; }

    public DateTimeOffset? ExpiredAt { get; set; }

    public DateTimeOffset? CancellingAt { get; set; }

    public DateTimeOffset? CancelledAt { get; set; }

    /// <summary>The replica running it and until when its claim holds.</summary>
    public string? LeaseOwner { get; set; }

    public DateTimeOffset? LeaseUntil { get; set; }

    public string PublicId => Hosting.PublicId.Format(IdPrefix, Id);

    public static bool TryParseId(string? value, out Guid id) => Hosting.PublicId.TryParse(IdPrefix, value, out id);
}

internal sealed class BatchConfiguration : IEntityTypeConfiguration<Batch>
{
    public void Configure(EntityTypeBuilder<Batch> builder)
    {
        builder.ToTable("batches");
        builder.HasKey(b => b.Id);
        builder.Property(b => b.Id).ValueGeneratedNever();
        builder.Property(b => b.Endpoint).HasMaxLength(32);
        builder.Property(b => b.CompletionWindow).HasMaxLength(8);
        builder.Property(b => b.Status).HasMaxLength(16);
        builder.Property(b => b.Errors).HasMaxLength(200_000);
        builder.Property(b => b.Metadata).HasMaxLength(16_000);
        builder.Property(b => b.Model).HasMaxLength(200);
        builder.Property(b => b.LeaseOwner).HasMaxLength(64);
        builder.Ignore(b => b.PublicId);
        builder.HasIndex(b => new { b.OrganizationId, b.CreatedAt });
        builder.HasIndex(b => new { b.Status, b.LeaseUntil });
    }
}
