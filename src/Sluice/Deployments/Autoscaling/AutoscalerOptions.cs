using System.ComponentModel.DataAnnotations;

namespace Sluice.Deployments.Autoscaling;

/// <summary>The <c>Deployments:Autoscaler</c> settings: how often load is shared and decided on, and the KPA's windows.</summary>
public sealed record AutoscalerOptions : IValidatableObject
{
    public const string Section = "Deployments:Autoscaler";

    /// <summary>How often the deciding replica samples load and decides (every deployment, each tick).</summary>
    [Range(typeof(TimeSpan), "00:00:00.100", "00:10:00", ErrorMessage = "must be between {1} and {2}")]
    public TimeSpan TickInterval { get; init; } = TimeSpan.FromSeconds(2);

    /// <summary>How often each server replica writes the load it sees (only deployments with activity; nothing when idle).</summary>
    [Range(typeof(TimeSpan), "00:00:00.100", "00:10:00", ErrorMessage = "must be between {1} and {2}")]
    public TimeSpan ReportInterval { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>A server replica's load report older than this is ignored (that replica stopped or cannot write).</summary>
    [Range(typeof(TimeSpan), "00:00:00.100", "01:00:00", ErrorMessage = "must be between {1} and {2}")]
    public TimeSpan ReportFreshness { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>Knative's stable window: the average concurrency over it sets the replica count.</summary>
    [Range(typeof(TimeSpan), "00:00:06", "01:00:00", ErrorMessage = "must be between {1} and {2}")]
    public TimeSpan StableWindow { get; init; } = TimeSpan.FromSeconds(60);

    /// <summary>Knative's panic window: a burst over it (at <see cref="PanicThreshold"/>) scales up at once and blocks scale-down.</summary>
    [Range(typeof(TimeSpan), "00:00:01", "00:10:00", ErrorMessage = "must be between {1} and {2}")]
    public TimeSpan PanicWindow { get; init; } = TimeSpan.FromSeconds(6);

    /// <summary>Panic when the panic window's average is at least this many times target × ready replicas.</summary>
    [Range(1.0, 100.0, ErrorMessage = "must be between {1} and {2}")]
    public double PanicThreshold { get; init; } = 2.0;

    /// <summary>One decision adds at most this factor of the ready replicas (at least one ready counted).</summary>
    [Range(1.0, 1000.0, ErrorMessage = "must be between {1} and {2}")]
    public double MaxScaleUpRate { get; init; } = 10.0;

    /// <summary>How long the deciding replica's lease lasts without renewal; another replica takes over after it.</summary>
    [Range(typeof(TimeSpan), "00:00:01", "01:00:00", ErrorMessage = "must be between {1} and {2}")]
    public TimeSpan LeaseDuration { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>At most one <c>scale_up_refused</c> event per deployment in this period.</summary>
    [Range(typeof(TimeSpan), "00:00:00", "1.00:00:00", ErrorMessage = "must be between {1} and {2}")]
    public TimeSpan RefusalEventInterval { get; init; } = TimeSpan.FromMinutes(1);

    /// <summary>Load report rows not written for this long are deleted (their servers are gone).</summary>
    [Range(typeof(TimeSpan), "00:01:00", "30.00:00:00", ErrorMessage = "must be between {1} and {2}")]
    public TimeSpan ReportRetention { get; init; } = TimeSpan.FromDays(1);

    public IEnumerable<ValidationResult> Validate(ValidationContext validationContext)
    {
        if (PanicWindow > StableWindow)
        {
            yield return new ValidationResult("must not be longer than StableWindow", [nameof(PanicWindow)]);
        }

        if (LeaseDuration <= TickInterval)
        {
            yield return new ValidationResult("must be longer than TickInterval (the lease is renewed every tick)", [nameof(LeaseDuration)]);
        }

        if (ReportFreshness <= ReportInterval)
        {
            yield return new ValidationResult("must be longer than ReportInterval", [nameof(ReportFreshness)]);
        }
    }
}
