using System.ComponentModel.DataAnnotations;

namespace Sluice.Files;

/// <summary>The <c>Files</c> settings: where encrypted file bytes live, the key-encryption keys, limits and retention.</summary>
public sealed record FilesOptions : IValidatableObject
{
    public const string Section = "Files";

    /// <summary>The longest any file (input or output) is kept: 30 days by commitment C03. Lower is allowed, higher never.</summary>
    public static readonly TimeSpan RetentionCeiling = TimeSpan.FromDays(30);

    /// <summary>Directory for encrypted file bytes; empty means <c>{Server:DataDir}/files</c>. Replicas must share it.</summary>
    public string Directory { get; init; } = "";

    /// <summary>
    /// The key-encryption key ring file; empty means <c>{Server:DataDir}/keys/files.kek</c>, created on first use.
    /// Ignored when <see cref="KeyEncryptionKeys"/> is set.
    /// </summary>
    public string KeyEncryptionKeyFile { get; init; } = "";

    /// <summary>The key ring itself (for example from an environment variable): lines <c>id:base64-key</c>, the last one current.</summary>
    public string KeyEncryptionKeys { get; init; } = "";

    /// <summary>How long files are kept after upload (and batch outputs after they are written).</summary>
    public TimeSpan Retention { get; init; } = RetentionCeiling;

    [Range(1, long.MaxValue, ErrorMessage = "must be positive")]
    public long MaxFileBytes { get; init; } = 512L * 1024 * 1024;

    /// <summary>
    /// How often the key-encryption key is rotated automatically (ring file only): every object is rewrapped under the
    /// current key, older keys are retired, and a new key becomes current. A copy of a file (a backup) becomes
    /// unreadable at most two intervals after it was taken. Zero turns automatic rotation off.
    /// </summary>
    [Range(typeof(TimeSpan), "00:00:00", "30.00:00:00", ErrorMessage = "must be between {1} and {2}")]
    public TimeSpan KeyRotationInterval { get; init; } = TimeSpan.FromDays(7);

    /// <summary>How often a replica checks whether the key ring is due for rotation.</summary>
    [Range(typeof(TimeSpan), "00:00:00.100", "30.00:00:00", ErrorMessage = "must be between {1} and {2}")]
    public TimeSpan KeyRotationCheckInterval { get; init; } = TimeSpan.FromHours(1);

    /// <summary>How often expired files are shredded.</summary>
    [Range(typeof(TimeSpan), "00:00:00.100", "1.00:00:00", ErrorMessage = "must be between {1} and {2}")]
    public TimeSpan SweepInterval { get; init; } = TimeSpan.FromMinutes(1);

    public IEnumerable<ValidationResult> Validate(ValidationContext validationContext)
    {
        if (Retention <= TimeSpan.Zero || Retention > RetentionCeiling)
        {
            yield return new ValidationResult(
                $"must be more than zero and at most {RetentionCeiling.TotalDays:0} days (commitment C03: batch data is deleted within 30 days)",
                [nameof(Retention)]);
        }
    }
}
