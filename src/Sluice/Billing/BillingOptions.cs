using System.ComponentModel.DataAnnotations;

namespace Sluice.Billing;

/// <summary>The <c>Billing</c> settings.</summary>
public sealed record BillingOptions : IValidatableObject
{
    public const string Section = "Billing";

    /// <summary>The installation's currency (ISO 4217); money is stored as integer micro-units of it.</summary>
    [Required(ErrorMessage = "is required")]
    [RegularExpression("^[A-Z]{3}$", ErrorMessage = "must be a three-letter ISO 4217 code such as USD")]
    public string Currency { get; init; } = "USD";

    /// <summary>Discount on batch traffic, in percent.</summary>
    [Range(0, 100, ErrorMessage = "must be between {1} and {2}")]
    public int BatchDiscountPercent { get; init; } = 50;

    /// <summary>How much of a wallet a replica leases at a time (at least one request's worst case).</summary>
    [Range(1, long.MaxValue, ErrorMessage = "must be positive")]
    public long LeaseSliceMicros { get; init; } = 1_000_000;

    /// <summary>How long a lease survives without renewal; after it the lease is expired (its replica is presumed dead).</summary>
    [Range(typeof(TimeSpan), "00:00:01", "01:00:00", ErrorMessage = "must be between {1} and {2}")]
    public TimeSpan LeaseTtl { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// How long an expired lease stays held for its replica to come back and replay its spend journal (docs/billing.md,
    /// "Crashes"); after it, the sweeper returns what the lease did not settle to the wallet. Zero returns it at expiry
    /// (a killed replica's unsettled spend then becomes spendable again).
    /// </summary>
    [Range(typeof(TimeSpan), "00:00:00", "7.00:00:00", ErrorMessage = "must be between {1} and {2}")]
    public TimeSpan UnreplayedLeaseDeadline { get; init; } = TimeSpan.FromMinutes(15);

    /// <summary>How often settled spend is written to the ledger and leases renewed.</summary>
    [Range(typeof(TimeSpan), "00:00:00.050", "00:01:00", ErrorMessage = "must be between {1} and {2}")]
    public TimeSpan SettleInterval { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>Completion tokens assumed for the worst case when a request sets no max_tokens.</summary>
    [Range(1, 10_000_000, ErrorMessage = "must be between {1} and {2}")]
    public int DefaultMaxTokens { get; init; } = 4096;

    /// <summary>How often low-balance alerts are checked.</summary>
    [Range(typeof(TimeSpan), "00:00:00.100", "01:00:00", ErrorMessage = "must be between {1} and {2}")]
    public TimeSpan AlertInterval { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>
    /// Networks (CIDR, e.g. <c>10.20.0.0/16</c>) that organizations' webhooks may reach although they are loopback,
    /// link-local or private. Empty: webhooks go to public addresses only.
    /// </summary>
    public IReadOnlyList<string> WebhookAllowedNetworks { get; init; } = [];

    public IEnumerable<ValidationResult> Validate(ValidationContext validationContext)
    {
        foreach (var network in WebhookAllowedNetworks)
        {
            if (!System.Net.IPNetwork.TryParse(network, out _))
            {
                yield return new ValidationResult($"'{network}' is not a network in CIDR notation (such as 10.20.0.0/16 or fd00::/8)", [nameof(WebhookAllowedNetworks)]);
            }
        }
    }
}
