using System.ComponentModel.DataAnnotations;

namespace Sluice.Deployments.Scheduling;

/// <summary>The <c>Deployments:Scheduler</c> settings: how often replicas are converged, the leader lease, draining and failure limits.</summary>
public sealed record SchedulerOptions : IValidatableObject
{
    public const string Section = "Deployments:Scheduler";

    /// <summary>How often the scheduler converges every deployment's replicas (on the server replica that holds the lease).</summary>
    [Range(typeof(TimeSpan), "00:00:00.050", "00:10:00", ErrorMessage = "must be between {1} and {2}")]
    public TimeSpan Interval { get; init; } = TimeSpan.FromSeconds(2);

    /// <summary>Run a pass at once when a request wakes a deployment from zero on this server (a cold start waits on it).</summary>
    public bool PassOnWake { get; init; } = true;

    /// <summary>How long the leader's lease lasts without a renewal; another server replica takes over after it.</summary>
    [Range(typeof(TimeSpan), "00:00:01", "00:30:00", ErrorMessage = "must be between {1} and {2}")]
    public TimeSpan LeaseDuration { get; init; } = TimeSpan.FromSeconds(15);

    /// <summary>How long a ready replica taken out of routing keeps its engine so requests in flight can finish.</summary>
    [Range(typeof(TimeSpan), "00:00:00", "01:00:00", ErrorMessage = "must be between {1} and {2}")]
    public TimeSpan DrainGrace { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>After this many replicas of one generation fail in a row, the deployment is failed until it is updated.</summary>
    [Range(1, 100, ErrorMessage = "must be between {1} and {2}")]
    public int FailuresBeforeFailed { get; init; } = 3;

    /// <summary>At most one <c>unschedulable</c> event per deployment in this long.</summary>
    [Range(typeof(TimeSpan), "00:00:01", "1.00:00:00", ErrorMessage = "must be between {1} and {2}")]
    public TimeSpan UnschedulableEventInterval { get; init; } = TimeSpan.FromMinutes(1);

    public IEnumerable<ValidationResult> Validate(ValidationContext validationContext)
    {
        if (LeaseDuration < Interval * 2)
        {
            yield return new ValidationResult("must be at least twice the scheduler's Interval, so the leader renews it in time", [nameof(LeaseDuration)]);
        }
    }
}
