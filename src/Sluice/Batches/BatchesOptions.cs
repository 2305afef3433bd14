using System.ComponentModel.DataAnnotations;

namespace Sluice.Batches;

/// <summary>The <c>Batches</c> settings: input limits, concurrency, and how runners share work.</summary>
public sealed record BatchesOptions
{
    public const string Section = "Batches";

    [Range(1, 50_000, ErrorMessage = "must be between {1} and {2}")]
    public int MaxLines { get; init; } = 50_000;

    [Range(1, 200L * 1000 * 1000, ErrorMessage = "must be between {1} and {2}")]
    public long MaxInputBytes { get; init; } = 200L * 1000 * 1000;

    /// <summary>Requests in flight for all batches on one replica.</summary>
    [Range(1, 10_000, ErrorMessage = "must be between {1} and {2}")]
    public int MaxConcurrency { get; init; } = 64;

    /// <summary>Requests in flight for one organization's batches on one replica.</summary>
    [Range(1, 10_000, ErrorMessage = "must be between {1} and {2}")]
    public int MaxConcurrencyPerOrganization { get; init; } = 32;

    /// <summary>Batches one replica runs at once.</summary>
    [Range(1, 1000, ErrorMessage = "must be between {1} and {2}")]
    public int MaxRunningBatches { get; init; } = 8;

    /// <summary>How often a runner looks for work and publishes progress.</summary>
    [Range(typeof(TimeSpan), "00:00:00.050", "00:01:00", ErrorMessage = "must be between {1} and {2}")]
    public TimeSpan PollInterval { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>How long a runner's claim on a batch lasts without renewal; after it, another replica resumes the batch.</summary>
    [Range(typeof(TimeSpan), "00:00:01", "01:00:00", ErrorMessage = "must be between {1} and {2}")]
    public TimeSpan LeaseDuration { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>Tries per line when the providers are unavailable or rate limiting (429, 502, 503, 504).</summary>
    [Range(1, 20, ErrorMessage = "must be between {1} and {2}")]
    public int AttemptsPerLine { get; init; } = 3;
}
