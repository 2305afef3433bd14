using System.ComponentModel.DataAnnotations;

namespace Sluice.Audit;

/// <summary>The <c>Audit</c> settings.</summary>
public sealed record AuditOptions
{
    public const string Section = "Audit";

    /// <summary>The log's name in checkpoints (C2SP origin line) and the signing key's name.</summary>
    [Required(ErrorMessage = "is required")]
    [RegularExpression(@"^[A-Za-z0-9][A-Za-z0-9.\-_/:]{0,127}$", ErrorMessage = "must be a schema-less URL-like name such as sluice.example.com/audit")]
    public string Origin { get; init; } = "sluice.local/audit";

    /// <summary>The ECDSA P-256 signing key (PKCS#8 PEM), created on first run. Empty means DataDir/keys/audit-signing-key.pem.</summary>
    public string? SigningKeyFile { get; init; }

    /// <summary>
    /// How soon new entries are covered by a signed checkpoint: every interval a replica signs one when the log has grown
    /// (at most one checkpoint per interval, however fast entries come). A clean shutdown signs the rest.
    /// </summary>
    [Range(typeof(TimeSpan), "00:00:00.100", "00:10:00", ErrorMessage = "must be between {1} and {2}")]
    public TimeSpan CheckpointInterval { get; init; } = TimeSpan.FromSeconds(2);

    /// <summary>How long entries are kept; older ones are pruned below a signed checkpoint.</summary>
    [Range(typeof(TimeSpan), "1.00:00:00", "3650.00:00:00", ErrorMessage = "must be between {1} and {2}")]
    public TimeSpan Retention { get; init; } = TimeSpan.FromDays(90);

    [Range(typeof(TimeSpan), "00:00:01", "7.00:00:00", ErrorMessage = "must be between {1} and {2}")]
    public TimeSpan PruneInterval { get; init; } = TimeSpan.FromHours(1);
}
