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

    /// <summary>bcrypt cost for API keys; verification is cached, so only the first use of a key pays it.</summary>
    [Range(10, 16, ErrorMessage = "must be between {1} and {2}")]
    public int ApiKeyHashCost { get; init; } = 10;

    [Range(8, 64, ErrorMessage = "must be between {1} and {2}")]
    public int MinimumPasswordLength { get; init; } = 10;

    /// <summary>Sign-up asks people to attest this age; younger attestations are refused.</summary>
    [Range(13, 21, ErrorMessage = "must be between {1} and {2}")]
    public int MinimumAge { get; init; } = 18;

    /// <summary>Whether anyone may create an account at <c>/api/v1/auth/signup</c>; invitations still need an account.</summary>
    public bool AllowSignUp { get; init; } = true;

    [Range(typeof(TimeSpan), "00:05:00", "30.00:00:00", ErrorMessage = "must be between {1} and {2}")]
    public TimeSpan SessionLifetime { get; init; } = TimeSpan.FromHours(12);

    [Range(typeof(TimeSpan), "01:00:00", "30.00:00:00", ErrorMessage = "must be between {1} and {2}")]
    public TimeSpan InvitationLifetime { get; init; } = TimeSpan.FromDays(7);

    /// <summary>How long a rotated key's old secret keeps working, unless the rotation asks for another period.</summary>
    [Range(typeof(TimeSpan), "00:00:00", "30.00:00:00", ErrorMessage = "must be between {1} and {2}")]
    public TimeSpan KeyRotationGracePeriod { get; init; } = TimeSpan.FromHours(24);

    /// <summary>How long a successful key verification is trusted in memory before bcrypt runs again.</summary>
    [Range(typeof(TimeSpan), "00:00:01", "00:10:00", ErrorMessage = "must be between {1} and {2}")]
    public TimeSpan KeyCacheTtl { get; init; } = TimeSpan.FromMinutes(1);

    /// <summary>How often each replica looks for keys revoked, rotated or changed elsewhere (at most 2 s, the promise).</summary>
    [Range(typeof(TimeSpan), "00:00:00.100", "00:00:01.500", ErrorMessage = "must be between {1} and {2}")]
    public TimeSpan KeyChangePollInterval { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>How many API-key bcrypt verifications run at once on a replica; 0 picks a quarter of the CPU cores (at least 1).</summary>
    [Range(0, 64, ErrorMessage = "must be between {1} and {2}")]
    public int KeyHashConcurrency { get; init; }

    /// <summary>
    /// Wrong secrets a key prefix may cost bcrypt for in <see cref="KeyFailureWindow"/>; past that, secrets of that
    /// prefix not verified before on the replica are refused without bcrypt until the window ends.
    /// </summary>
    [Range(1, 1000, ErrorMessage = "must be between {1} and {2}")]
    public int KeyFailuresPerPrefix { get; init; } = 10;

    [Range(typeof(TimeSpan), "00:00:01", "01:00:00", ErrorMessage = "must be between {1} and {2}")]
    public TimeSpan KeyFailureWindow { get; init; } = TimeSpan.FromMinutes(1);

    /// <summary>Sign-in attempts per account from one client network (/24 or /64) per <see cref="LoginWindow"/>; then 429 from that network.</summary>
    [Range(1, 1000, ErrorMessage = "must be between {1} and {2}")]
    public int LoginAttemptsPerAccount { get; init; } = 10;

    /// <summary>Sign-in attempts from one client network (/24 or /64), across accounts, per <see cref="LoginWindow"/>; then 429.</summary>
    [Range(1, 10000, ErrorMessage = "must be between {1} and {2}")]
    public int LoginAttemptsPerIp { get; init; } = 50;

    /// <summary>Sign-in attempts per account from all networks together per <see cref="LoginWindow"/> before each further one waits <see cref="LoginSlowdown"/>.</summary>
    [Range(1, 100000, ErrorMessage = "must be between {1} and {2}")]
    public int LoginAttemptsPerAccountBeforeSlowdown { get; init; } = 30;

    /// <summary>How long each sign-in attempt waits once its account is past <see cref="LoginAttemptsPerAccountBeforeSlowdown"/>.</summary>
    [Range(typeof(TimeSpan), "00:00:00", "00:00:30", ErrorMessage = "must be between {1} and {2}")]
    public TimeSpan LoginSlowdown { get; init; } = TimeSpan.FromSeconds(2);

    [Range(typeof(TimeSpan), "00:00:01", "1.00:00:00", ErrorMessage = "must be between {1} and {2}")]
    public TimeSpan LoginWindow { get; init; } = TimeSpan.FromMinutes(5);
}
