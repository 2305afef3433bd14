using System.ComponentModel.DataAnnotations;

namespace Sluice.Compute;

/// <summary>The <c>Compute</c> settings: join tokens, heartbeats and the liveness thresholds of machines.</summary>
public sealed record ComputeOptions : IValidatableObject
{
    public const string Section = "Compute";

    /// <summary>
    /// Whether a machine may advertise a loopback serving URL (an agent on the server's own host). Off by default: a
    /// machine chooses its serving URL, and the gateway must not be pointed at services on its own host.
    /// </summary>
    public bool AllowLoopbackServing { get; init; }

    /// <summary>How long a join token is valid when its creator asks for nothing shorter (the longest allowed too).</summary>
    [Range(typeof(TimeSpan), "00:01:00", "30.00:00:00", ErrorMessage = "must be between {1} and {2}")]
    public TimeSpan JoinTokenTtl { get; init; } = TimeSpan.FromHours(24);

    /// <summary>How often agents heartbeat; told to every agent in each join and heartbeat reply.</summary>
    [Range(typeof(TimeSpan), "00:00:01", "00:10:00", ErrorMessage = "must be between {1} and {2}")]
    public TimeSpan HeartbeatInterval { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>How long a machine that joined may take to send its first heartbeat before it counts as missing.</summary>
    [Range(typeof(TimeSpan), "00:00:00", "1.00:00:00", ErrorMessage = "must be between {1} and {2}")]
    public TimeSpan StartingGrace { get; init; } = TimeSpan.FromMinutes(5);

    /// <summary>Without a heartbeat for this long a machine is <c>suspect</c>.</summary>
    [Range(typeof(TimeSpan), "00:00:01", "1.00:00:00", ErrorMessage = "must be between {1} and {2}")]
    public TimeSpan SuspectAfter { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>Without a heartbeat for this long a machine is <c>offline</c>.</summary>
    [Range(typeof(TimeSpan), "00:00:01", "1.00:00:00", ErrorMessage = "must be between {1} and {2}")]
    public TimeSpan OfflineAfter { get; init; } = TimeSpan.FromSeconds(60);

    /// <summary>Without a heartbeat for this long a machine is <c>lost</c> and its tasks are terminated with <c>machine_lost</c>.</summary>
    [Range(typeof(TimeSpan), "00:00:01", "7.00:00:00", ErrorMessage = "must be between {1} and {2}")]
    public TimeSpan LostAfter { get; init; } = TimeSpan.FromMinutes(5);

    /// <summary>How often each replica checks liveness (conditional updates: safe on every replica at once).</summary>
    [Range(typeof(TimeSpan), "00:00:00.100", "00:10:00", ErrorMessage = "must be between {1} and {2}")]
    public TimeSpan LivenessCheckInterval { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>How often heartbeat times are written, in one statement for every machine heard from meanwhile.</summary>
    [Range(typeof(TimeSpan), "00:00:00.050", "00:00:30", ErrorMessage = "must be between {1} and {2}")]
    public TimeSpan HeartbeatFlushInterval { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>At most one audited heartbeat refusal per machine (or per source network, for unknown credentials) in this period.</summary>
    [Range(typeof(TimeSpan), "00:00:00", "1.00:00:00", ErrorMessage = "must be between {1} and {2}")]
    public TimeSpan RefusalAuditInterval { get; init; } = TimeSpan.FromMinutes(1);

    public IEnumerable<ValidationResult> Validate(ValidationContext validationContext)
    {
        if (!(SuspectAfter < OfflineAfter && OfflineAfter < LostAfter))
        {
            yield return new ValidationResult("must satisfy SuspectAfter < OfflineAfter < LostAfter", [nameof(SuspectAfter)]);
        }
    }
}
