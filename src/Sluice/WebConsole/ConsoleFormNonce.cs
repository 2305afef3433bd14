using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Metadata.Builders;

namespace Sluice.WebConsole;

/// <summary>
/// A console form token that has been used: a second post of the same form (a replay, or a double click) finds its
/// nonce here and is refused. Kept until the token would have expired anyway, then swept.
/// </summary>
public sealed class ConsoleFormNonce
{
    public required string Nonce { get; init; }

    public DateTimeOffset ExpiresAt { get; init; }
}

internal sealed class ConsoleFormNonceConfiguration : IEntityTypeConfiguration<ConsoleFormNonce>
{
    public void Configure(EntityTypeBuilder<ConsoleFormNonce> builder)
    {
        builder.ToTable("console_form_nonces");
        builder.HasKey(n => n.Nonce);
        builder.Property(n => n.Nonce).HasMaxLength(32);
        builder.HasIndex(n => n.ExpiresAt);
    }
}
