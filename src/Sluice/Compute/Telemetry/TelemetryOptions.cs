using System.ComponentModel.DataAnnotations;

namespace Sluice.Compute.Telemetry;

/// <summary>
/// The <c>Compute:Telemetry</c> settings: the write buffer, the rollup loop and the read API's bounds. How long samples
/// and rollups are kept are retention classes (<c>Retention:MachineTelemetry</c>, <c>Retention:MachineTelemetryRollups</c>).
/// </summary>
public sealed record TelemetryOptions
{
    public const string Section = "Compute:Telemetry";

    /// <summary>Samples waiting to be written, at most; beyond it a sample is dropped and counted.</summary>
    [Range(100, 10_000_000, ErrorMessage = "must be between {1} and {2}")]
    public int QueueCapacity { get; init; } = 100_000;

    /// <summary>How often the writer writes what is queued.</summary>
    [Range(typeof(TimeSpan), "00:00:00.010", "00:01:00", ErrorMessage = "must be between {1} and {2}")]
    public TimeSpan FlushInterval { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>Machine samples per database write (their GPUs go in the same transaction).</summary>
    [Range(1, 100_000, ErrorMessage = "must be between {1} and {2}")]
    public int BatchSize { get; init; } = 5_000;

    /// <summary>A sample whose agent clock is further than this from the server's is stored at the time it was received.</summary>
    [Range(typeof(TimeSpan), "00:00:01", "01:00:00", ErrorMessage = "must be between {1} and {2}")]
    public TimeSpan MaxClockSkew { get; init; } = TimeSpan.FromMinutes(5);

    /// <summary>How often hourly rollups are brought up to date (and, on PostgreSQL, upcoming partitions created).</summary>
    [Range(typeof(TimeSpan), "00:00:00.100", "01:00:00", ErrorMessage = "must be between {1} and {2}")]
    public TimeSpan RollupInterval { get; init; } = TimeSpan.FromMinutes(5);

    /// <summary>An hour is rolled up once it ended this long ago, so late samples (clock skew, a queued backlog) are in it.</summary>
    [Range(typeof(TimeSpan), "00:00:00", "06:00:00", ErrorMessage = "must be between {1} and {2}")]
    public TimeSpan RollupDelay { get; init; } = TimeSpan.FromMinutes(10);

    /// <summary>The most samples (raw) or hours one read of the telemetry API returns; the answer says when it was cut.</summary>
    [Range(1, 100_000, ErrorMessage = "must be between {1} and {2}")]
    public int MaxReadRows { get; init; } = 10_000;
}
