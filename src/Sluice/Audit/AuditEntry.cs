using System.Buffers;
using System.Text.Json;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Metadata.Builders;

namespace Sluice.Audit;

/// <summary>
/// One administrative action. Ids only: the actor is pseudonymous (<c>user:…</c>, <c>key:…</c>, <c>cli</c>,
/// <c>system</c>), the source address is truncated to its network (/24, /48), and there is no content or secret,
/// so erasing a person never requires touching the log.
/// </summary>
public sealed class AuditEntry
{
    /// <summary>Position in the log, from 0, without gaps; assigned when the entry is saved.</summary>
    public long Seq { get; set; } = -1;

    public DateTimeOffset Time { get; init; }

    public required string Actor { get; init; }

    public Guid? OrganizationId { get; init; }

    public required string Action { get; init; }

    public required string Target { get; init; }

    public required string Outcome { get; init; }

    public string? SourceNetwork { get; init; }

    /// <summary>
    /// The leaf data: compact JSON with a fixed field order, the time as Unix microseconds and absent values as null.
    /// Every field of the row is in it, so changing any stored value changes the leaf hash.
    /// </summary>
    public byte[] CanonicalBytes()
    {
        var buffer = new ArrayBufferWriter<byte>(256);
        using (var json = new Utf8JsonWriter(buffer))
        {
            json.WriteStartObject();
            json.WriteNumber("seq", Seq);
            json.WriteNumber("time", (Time.UtcTicks - DateTimeOffset.UnixEpoch.UtcTicks) / TimeSpan.TicksPerMicrosecond);
            json.WriteString("actor", Actor);
            if (OrganizationId is { } org)
            {
                json.WriteString("org", org.ToString());
            }
            else
            {
                json.WriteNull("org");
            }

            json.WriteString("action", Action);
            json.WriteString("target", Target);
            json.WriteString("outcome", Outcome);
            json.WriteString("source", SourceNetwork);
            json.WriteEndObject();
        }

        return buffer.WrittenSpan.ToArray();
    }

    public byte[] LeafHash() => Merkle.HashLeaf(CanonicalBytes());
}

/// <summary>A signed statement of the log's size and root: a C2SP tlog-checkpoint signed note.</summary>
public sealed class AuditCheckpoint
{
    public long TreeSize { get; init; }

    /// <summary>Base64 root hash.</summary>
    public required string RootHash { get; init; }

    /// <summary>The whole signed note, as served and exported.</summary>
    public required string Note { get; init; }

    public DateTimeOffset CreatedAt { get; init; }
}

/// <summary>
/// The hashes kept for entries pruned by retention: the perfect subtrees that cover [0, <see cref="PrefixSize"/>),
/// which is always the size of a signed checkpoint. Enough to recompute every later root.
/// </summary>
public sealed class AuditPrunedSubtree
{
    public long PrefixSize { get; init; }

    public long Start { get; init; }

    public long Size { get; init; }

    public required string Hash { get; init; }
}

internal sealed class AuditConfiguration :
    IEntityTypeConfiguration<AuditEntry>, IEntityTypeConfiguration<AuditCheckpoint>, IEntityTypeConfiguration<AuditPrunedSubtree>
{
    public void Configure(EntityTypeBuilder<AuditEntry> builder)
    {
        builder.ToTable("audit_entries");
        builder.HasKey(e => e.Seq);
        builder.Property(e => e.Seq).ValueGeneratedNever();
        builder.Property(e => e.Actor).HasMaxLength(64);
        builder.Property(e => e.Action).HasMaxLength(64);
        builder.Property(e => e.Target).HasMaxLength(128);
        builder.Property(e => e.Outcome).HasMaxLength(16);
        builder.Property(e => e.SourceNetwork).HasMaxLength(64);
        builder.HasIndex(e => new { e.OrganizationId, e.Seq });
        builder.HasIndex(e => e.Time);
    }

    public void Configure(EntityTypeBuilder<AuditCheckpoint> builder)
    {
        builder.ToTable("audit_checkpoints");
        builder.HasKey(c => c.TreeSize);
        builder.Property(c => c.TreeSize).ValueGeneratedNever();
        builder.Property(c => c.RootHash).HasMaxLength(64);
        builder.Property(c => c.Note).HasMaxLength(2000);
    }

    public void Configure(EntityTypeBuilder<AuditPrunedSubtree> builder)
    {
        builder.ToTable("audit_pruned_subtrees");
        builder.HasKey(s => new { s.PrefixSize, s.Start });
        builder.Property(s => s.Hash).HasMaxLength(64);
    }
}
