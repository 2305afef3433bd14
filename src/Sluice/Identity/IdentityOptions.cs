using System.ComponentModel.DataAnnotations;

namespace Sluice.Identity;

/// <summary>The <c>Identity</c> settings.</summary>
public sealed record IdentityOptions
{
    public const string Section = "Identity";

    /// <summary>Email of the platform operator created on first run.</summary>
    [Required(ErrorMessage = "is required")]
    [EmailAddress(ErrorMessage = "must be an email address")]
    public string OperatorEmail { get; init; } = "operator@localhost";

    /// <summary>bcrypt cost (log2 rounds) for passwords.</summary>
    [Range(10, 16, ErrorMessage = "must be between {1} and {2}")]
    public int PasswordHashCost { get; init; } = 12;
}
