using System.ComponentModel.DataAnnotations;

namespace Sluice.Privacy;

/// <summary>The <c>Privacy</c> settings: who runs the service, where data is processed, and how requests are handled.</summary>
public sealed record PrivacyOptions
{
    public const string Section = "Privacy";

    /// <summary>The organisation responsible for the data (the controller), named in the policy.</summary>
    [Required(ErrorMessage = "is required")]
    [StringLength(200, ErrorMessage = "must be at most {1} characters")]
    public string Controller { get; init; } = "The operator of this Sluice installation";

    /// <summary>Where people write about their data.</summary>
    [Required(ErrorMessage = "is required")]
    [EmailAddress(ErrorMessage = "must be an email address")]
    public string ContactEmail { get; init; } = "privacy@localhost";

    /// <summary>Where data is stored and processed (C43), e.g. "EU (Frankfurt)". Empty: <see cref="DefaultRegion"/>.</summary>
    /// <remarks>No default in the array itself: configuration binding appends to an array's existing items.</remarks>
    public string[] Regions { get; init; } = [];

    public const string DefaultRegion = "The servers of the operator named above";

    public IReadOnlyList<string> EffectiveRegions => Regions.Length == 0 ? [DefaultRegion] : Regions;

    /// <summary>How transfers out of those regions are safeguarded (C43).</summary>
    [Required(ErrorMessage = "is required")]
    [StringLength(1000, ErrorMessage = "must be at most {1} characters")]
    public string TransferSafeguards { get; init; } =
        "Data leaves these regions only to the subprocessors listed here, under contracts with Standard Contractual Clauses or an equivalent lawful safeguard.";

    /// <summary>How long an access or export archive can be downloaded after approval.</summary>
    [Range(typeof(TimeSpan), "01:00:00", "30.00:00:00", ErrorMessage = "must be between {1} and {2}")]
    public TimeSpan ExportLifetime { get; init; } = TimeSpan.FromDays(7);

    /// <summary>How long an emailed verification code is valid.</summary>
    [Range(typeof(TimeSpan), "00:05:00", "1.00:00:00", ErrorMessage = "must be between {1} and {2}")]
    public TimeSpan VerificationCodeLifetime { get; init; } = TimeSpan.FromMinutes(30);

    /// <summary>Wrong passwords or codes before a request's verification is locked and the request must be made again.</summary>
    [Range(1, 10, ErrorMessage = "must be between {1} and {2}")]
    public int VerificationAttempts { get; init; } = 5;

    /// <summary>How often each replica compares the live configuration with the published policy.</summary>
    [Range(typeof(TimeSpan), "00:00:00.100", "1.00:00:00", ErrorMessage = "must be between {1} and {2}")]
    public TimeSpan PolicyCheckInterval { get; init; } = TimeSpan.FromMinutes(1);

    /// <summary>SMTP relay for service email (verification codes, policy changes). Empty: in-service notices only.</summary>
    public string? SmtpHost { get; init; }

    [Range(1, 65535, ErrorMessage = "must be between {1} and {2}")]
    public int SmtpPort { get; init; } = 25;

    [EmailAddress(ErrorMessage = "must be an email address")]
    public string SmtpFrom { get; init; } = "no-reply@localhost";

    /// <summary>Most days an operator may ask to access an organization's content for.</summary>
    [Range(typeof(TimeSpan), "00:05:00", "7.00:00:00", ErrorMessage = "must be between {1} and {2}")]
    public TimeSpan MaxStaffAccess { get; init; } = TimeSpan.FromDays(3);
}
