using System.ComponentModel.DataAnnotations;

namespace Sluice.Gateway;

/// <summary>The <c>Gateway</c> settings.</summary>
public sealed record GatewayOptions
{
    public const string Section = "Gateway";

    [Range(1024, 1_073_741_824, ErrorMessage = "must be between {1} and {2} bytes")]
    public long MaxRequestBytes { get; init; } = 10 * 1024 * 1024;

    /// <summary>
    /// How much of a body over <see cref="MaxRequestBytes"/> is read and discarded before the 413 is sent, so that a
    /// client that writes its whole body before reading (the official SDKs, most HTTP clients) reads the 413 instead of a
    /// connection reset. A longer body is answered at once with <c>Connection: close</c>. 0 turns draining off.
    /// </summary>
    [Range(0, 1_073_741_824, ErrorMessage = "must be between {1} and {2} bytes")]
    public long OversizeDrainBytes { get; init; } = 64 * 1024 * 1024;

    [Range(typeof(TimeSpan), "00:00:00.100", "00:05:00", ErrorMessage = "must be between {1} and {2}")]
    public TimeSpan ConnectTimeout { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>How long to wait for the upstream's response headers (its first byte).</summary>
    [Range(typeof(TimeSpan), "00:00:00.100", "00:30:00", ErrorMessage = "must be between {1} and {2}")]
    public TimeSpan FirstByteTimeout { get; init; } = TimeSpan.FromSeconds(60);

    [Range(typeof(TimeSpan), "00:00:01", "02:00:00", ErrorMessage = "must be between {1} and {2}")]
    public TimeSpan TotalTimeout { get; init; } = TimeSpan.FromMinutes(10);

    /// <summary>Attempts per request across routes (the first try included).</summary>
    [Range(1, 10, ErrorMessage = "must be between {1} and {2}")]
    public int MaxAttempts { get; init; } = 3;

    /// <summary>Consecutive failures that open a route's circuit.</summary>
    [Range(1, 1000, ErrorMessage = "must be between {1} and {2}")]
    public int CircuitBreakerFailures { get; init; } = 5;

    /// <summary>How long an open circuit rejects traffic before letting one probe through.</summary>
    [Range(typeof(TimeSpan), "00:00:00.100", "01:00:00", ErrorMessage = "must be between {1} and {2}")]
    public TimeSpan CircuitBreakerOpenDuration { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>Requests per minute for a key or organization that sets none; empty means unlimited.</summary>
    [Range(1, int.MaxValue, ErrorMessage = "must be positive")]
    public int? DefaultRequestsPerMinute { get; init; }

    [Range(1, int.MaxValue, ErrorMessage = "must be positive")]
    public int? DefaultTokensPerMinute { get; init; }

    [Range(100, 10_000_000, ErrorMessage = "must be between {1} and {2}")]
    public int UsageQueueCapacity { get; init; } = 100_000;

    [Range(typeof(TimeSpan), "00:00:00.010", "00:01:00", ErrorMessage = "must be between {1} and {2}")]
    public TimeSpan UsageFlushInterval { get; init; } = TimeSpan.FromMilliseconds(200);

    /// <summary>How often each replica reloads providers, models and routes changed elsewhere.</summary>
    [Range(typeof(TimeSpan), "00:00:00.100", "00:10:00", ErrorMessage = "must be between {1} and {2}")]
    public TimeSpan CatalogRefreshInterval { get; init; } = TimeSpan.FromSeconds(2);

    /// <summary>The 256-bit key that encrypts upstream API keys (created on first use). Empty means DataDir/keys/secrets.key.</summary>
    public string? SecretsKeyFile { get; init; }

    /// <summary>Offer the built-in deterministic test model <c>echo</c>.</summary>
    public bool EchoModel { get; init; } = true;
}
