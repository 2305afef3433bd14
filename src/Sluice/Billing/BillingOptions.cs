using System.ComponentModel.DataAnnotations;

namespace Sluice.Billing;

/// <summary>The <c>Billing</c> settings.</summary>
public sealed record BillingOptions
{
    public const string Section = "Billing";

    /// <summary>The installation's currency (ISO 4217); money is stored as integer micro-units of it.</summary>
    [Required(ErrorMessage = "is required")]
    [RegularExpression("^[A-Z]{3}$", ErrorMessage = "must be a three-letter ISO 4217 code such as USD")]
    public string Currency { get; init; } = "USD";

    /// <summary>Discount on batch traffic, in percent.</summary>
    [Range(0, 100, ErrorMessage = "must be between {1} and {2}")]
    public int BatchDiscountPercent { get; init; } = 50;
}
