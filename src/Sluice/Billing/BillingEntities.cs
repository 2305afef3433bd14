using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Metadata.Builders;

namespace Sluice.Billing;

/// <summary>The kinds of ledger account. Customer accounts belong to an organization; platform accounts to nobody.</summary>
public static class AccountTypes
{
    /// <summary>What an organization has paid in and not yet spent. Never negative.</summary>
    public const string CustomerWallet = "customer_wallet";

    /// <summary>Money a replica has leased from the wallet to hold against requests in flight. Never negative.</summary>
    public const string CustomerHolds = "customer_holds";

    /// <summary>Platform: income from settled usage.</summary>
    public const string Revenue = "revenue";

    /// <summary>Platform: money received from the payment processor, pending reconciliation.</summary>
    public const string PaymentClearing = "payment_clearing";

    /// <summary>Platform: the other side of promotional credit and redemption codes (paid and promotional credit both land in the wallet; the transaction type tells them apart).</summary>
    public const string Promotions = "promotions";

    /// <summary>Platform: the other side of operators' manual credits and corrections.</summary>
    public const string ManualAdjustments = "manual_adjustments";

    public static bool IsCustomer(string type) => type is CustomerWallet or CustomerHolds;
}

public sealed class LedgerAccount
{
    public Guid Id { get; init; }

    /// <summary>The owning organization; <see cref="Guid.Empty"/> for platform accounts.</summary>
    public Guid? OrganizationId { get; init; }

    public required string Type { get; init; }

    public required string Currency { get; init; }

    /// <summary>Cached sum of this account's entries, kept in the same transaction as the entries.</summary>
    public long BalanceMicros { get; set; }

    public DateTimeOffset CreatedAt { get; init; }
}

/// <summary>One balanced movement of money: its entries sum to zero. The idempotency key makes retries safe.</summary>
public sealed class LedgerTransaction
{
    public Guid Id { get; init; }

    public required string IdempotencyKey { get; init; }

    /// <summary>SHA-256 of the request that created it, so a reused key with a different request is refused.</summary>
    public required string RequestHash { get; init; }

    public required string Type { get; init; }

    public Guid? OrganizationId { get; init; }

    public string? Reference { get; init; }

    public required string Actor { get; init; }

    public DateTimeOffset CreatedAt { get; init; }
}

public sealed class LedgerEntry
{
    public Guid Id { get; init; }

    public Guid TransactionId { get; init; }

    public Guid AccountId { get; init; }

    public long AmountMicros { get; init; }

    public DateTimeOffset CreatedAt { get; init; }
}

/// <summary>A route's prices from <see cref="EffectiveFrom"/> on; later versions supersede earlier ones.</summary>
public sealed class RoutePrice
{
    public Guid Id { get; init; }

    public Guid RouteId { get; init; }

    public long InputPerMillionMicros { get; init; }

    public long OutputPerMillionMicros { get; init; }

    public long CachedInputPerMillionMicros { get; init; }

    public long RequestFeeMicros { get; init; }

    public DateTimeOffset EffectiveFrom { get; init; }

    public DateTimeOffset CreatedAt { get; init; }
}

/// <summary>
/// A slice of an organization's wallet moved to its holds account for one replica to spend locally. What is neither
/// settled nor returned is returned by the sweeper once the lease expires (its replica stopped renewing it).
/// </summary>
public sealed class WalletLease
{
    public Guid Id { get; init; }

    public Guid OrganizationId { get; init; }

    /// <summary>For a key's spend-limit budget: the key; null for the organization's wallet.</summary>
    public Guid? KeyId { get; init; }

    /// <summary>For a key budget: <c>total</c>, <c>m:yyyy-MM</c> or <c>d:yyyy-MM-dd</c> (UTC).</summary>
    public string? Period { get; init; }

    public required string Replica { get; init; }

    public long AmountMicros { get; set; }

    public long SettledMicros { get; set; }

    public long ReturnedMicros { get; set; }

    public DateTimeOffset ExpiresAt { get; set; }

    public bool Released { get; set; }

    public DateTimeOffset CreatedAt { get; init; }
}

/// <summary>A key's spend in one limit period: settled spend plus what replicas have leased against the limit.</summary>
public sealed class KeyBudget
{
    public Guid KeyId { get; init; }

    public required string Period { get; init; }

    public long SpentMicros { get; set; }

    public long LeasedMicros { get; set; }
}

internal sealed class BillingConfiguration :
    IEntityTypeConfiguration<LedgerAccount>, IEntityTypeConfiguration<LedgerTransaction>, IEntityTypeConfiguration<LedgerEntry>, IEntityTypeConfiguration<RoutePrice>,
    IEntityTypeConfiguration<WalletLease>, IEntityTypeConfiguration<KeyBudget>
{
    public void Configure(EntityTypeBuilder<KeyBudget> builder)
    {
        builder.ToTable("key_budgets");
        builder.HasKey(b => new { b.KeyId, b.Period });
        builder.Property(b => b.Period).HasMaxLength(16);
    }

    public void Configure(EntityTypeBuilder<WalletLease> builder)
    {
        builder.ToTable("wallet_leases");
        builder.HasKey(l => l.Id);
        builder.Property(l => l.Id).ValueGeneratedNever();
        builder.Property(l => l.Replica).HasMaxLength(64);
        builder.Property(l => l.Period).HasMaxLength(16);
        builder.HasIndex(l => new { l.Released, l.ExpiresAt });
    }

    public void Configure(EntityTypeBuilder<LedgerAccount> builder)
    {
        builder.ToTable("ledger_accounts");
        builder.HasKey(a => a.Id);
        builder.Property(a => a.Id).ValueGeneratedNever();
        builder.Property(a => a.Type).HasMaxLength(32);
        builder.Property(a => a.Currency).HasMaxLength(3);
        builder.HasIndex(a => new { a.OrganizationId, a.Type, a.Currency }).IsUnique();
    }

    public void Configure(EntityTypeBuilder<LedgerTransaction> builder)
    {
        builder.ToTable("ledger_transactions");
        builder.HasKey(t => t.Id);
        builder.Property(t => t.Id).ValueGeneratedNever();
        builder.Property(t => t.IdempotencyKey).HasMaxLength(200);
        builder.HasIndex(t => t.IdempotencyKey).IsUnique();
        builder.Property(t => t.RequestHash).HasMaxLength(64);
        builder.Property(t => t.Type).HasMaxLength(32);
        builder.Property(t => t.Reference).HasMaxLength(200);
        builder.Property(t => t.Actor).HasMaxLength(64);
        builder.HasIndex(t => new { t.OrganizationId, t.CreatedAt });
    }

    public void Configure(EntityTypeBuilder<LedgerEntry> builder)
    {
        builder.ToTable("ledger_entries");
        builder.HasKey(e => e.Id);
        builder.Property(e => e.Id).ValueGeneratedNever();
        builder.HasIndex(e => e.TransactionId);
        builder.HasIndex(e => e.AccountId);
        builder.HasOne<LedgerTransaction>().WithMany().HasForeignKey(e => e.TransactionId).OnDelete(DeleteBehavior.Restrict);
        builder.HasOne<LedgerAccount>().WithMany().HasForeignKey(e => e.AccountId).OnDelete(DeleteBehavior.Restrict);
    }

    public void Configure(EntityTypeBuilder<RoutePrice> builder)
    {
        builder.ToTable("route_prices");
        builder.HasKey(p => p.Id);
        builder.Property(p => p.Id).ValueGeneratedNever();
        builder.HasIndex(p => new { p.RouteId, p.EffectiveFrom });
    }
}
