using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Metadata.Builders;

namespace Sluice.Files;

/// <summary>
/// A file's metadata. Its bytes are only ever on disk encrypted (<see cref="EncryptedFile"/>); nothing of the content is
/// in the database. Every file expires: at most <see cref="FilesOptions.RetentionCeiling"/> after it was written.
/// </summary>
public sealed class StoredFile
{
    public const string IdPrefix = "file-";

    public Guid Id { get; init; }

    public Guid OrganizationId { get; init; }

    /// <summary>The key that uploaded it; null for files Sluice wrote (batch outputs).</summary>
    public Guid? CreatedByKeyId { get; init; }

    public required string Purpose { get; init; }

    public required string Filename { get; init; }

    public long Bytes { get; init; }

    /// <summary>Lines, for JSONL files (purpose <c>batch</c>); 0 otherwise.</summary>
    public int Lines { get; init; }

    public DateTimeOffset CreatedAt { get; init; }

    public DateTimeOffset ExpiresAt { get; init; }

    public string PublicId => Hosting.PublicId.Format(IdPrefix, Id);

    public static bool TryParseId(string? value, out Guid id) => Hosting.PublicId.TryParse(IdPrefix, value, out id);
}

internal sealed class StoredFileConfiguration : IEntityTypeConfiguration<StoredFile>
{
    public void Configure(EntityTypeBuilder<StoredFile> builder)
    {
        builder.ToTable("files");
        builder.HasKey(f => f.Id);
        builder.Property(f => f.Id).ValueGeneratedNever();
        builder.Property(f => f.Purpose).HasMaxLength(32);
        builder.Property(f => f.Filename).HasMaxLength(255);
        builder.Ignore(f => f.PublicId);
        builder.HasIndex(f => new { f.OrganizationId, f.CreatedAt });
        builder.HasIndex(f => f.ExpiresAt);
    }
}
