using System.ComponentModel.DataAnnotations;

namespace Sluice.Privacy;

/// <summary>
/// The <c>Retention</c> settings: how long each class of record is kept. Defaults are the commitments'; bounds are
/// the commitments' ceilings and the legal minimums documented in docs/operations.md. Audit entries and batch files
/// have their own settings (<c>Audit:Retention</c>, <c>Files:Retention</c>), reported here as classes too.
/// </summary>
public sealed record RetentionOptions : IValidatableObject
{
    public const string Section = "Retention";

    /// <summary>Tax and accounting law (C12): billing records are kept at least seven years.</summary>
    public static readonly TimeSpan BillingMinimum = TimeSpan.FromDays(7 * 365 + 2);

    /// <summary>C11: operational metadata is kept at most twelve months unless a legal hold applies.</summary>
    public static readonly TimeSpan OperationalCeiling = TimeSpan.FromDays(365);

    /// <summary>C15: a deleted account's personal data is gone within 30 days.</summary>
    public static readonly TimeSpan DeletedAccountCeiling = TimeSpan.FromDays(30);

    /// <summary>Usage events (request metadata, C10): 90 days.</summary>
    [Range(typeof(TimeSpan), "1.00:00:00", "365.00:00:00", ErrorMessage = "must be between {1} and {2}")]
    public TimeSpan RequestMetadata { get; init; } = TimeSpan.FromDays(90);

    /// <summary>Sessions, invitations, finished batches' records, wallet leases, notifications, closed requests and grants (C11).</summary>
    public TimeSpan OperationalMetadata { get; init; } = OperationalCeiling;

    /// <summary>Sign-in events (address, user agent, outcome).</summary>
    [Range(typeof(TimeSpan), "1.00:00:00", "365.00:00:00", ErrorMessage = "must be between {1} and {2}")]
    public TimeSpan LoginEvents { get; init; } = TimeSpan.FromDays(90);

    /// <summary>Ledger transactions and entries: never shorter than seven years; Sluice keeps wallet transactions indefinitely (C12).</summary>
    public TimeSpan Billing { get; init; } = BillingMinimum;

    /// <summary>How long a closed account waits before its personal data is erased (C15).</summary>
    public TimeSpan DeletedAccountGrace { get; init; } = DeletedAccountCeiling;

    /// <summary>Support conversations, counted from when a ticket closes (C16).</summary>
    [Range(typeof(TimeSpan), "30.00:00:00", "2557.00:00:00", ErrorMessage = "must be between {1} and {2}")]
    public TimeSpan SupportMessages { get; init; } = TimeSpan.FromDays(730);

    /// <summary>Raw machine telemetry samples (machine and GPU figures from heartbeats, C16): 7 days.</summary>
    [Range(typeof(TimeSpan), "01:00:00", "365.00:00:00", ErrorMessage = "must be between {1} and {2}")]
    public TimeSpan MachineTelemetry { get; init; } = TimeSpan.FromDays(7);

    /// <summary>Hourly rollups of machine telemetry (min/avg/max per machine and GPU per hour, C16): 90 days.</summary>
    [Range(typeof(TimeSpan), "1.00:00:00", "365.00:00:00", ErrorMessage = "must be between {1} and {2}")]
    public TimeSpan MachineTelemetryRollups { get; init; } = TimeSpan.FromDays(90);

    /// <summary>
    /// Deployment metadata (C16): deployments' events, and deleted deployments and stopped replicas, counted from when
    /// they happened, were deleted or stopped: 365 days. What GPU time cost is a billing record and is kept as one.
    /// </summary>
    public TimeSpan DeploymentMetadata { get; init; } = OperationalCeiling;

    /// <summary>How often the retention sweeper runs.</summary>
    [Range(typeof(TimeSpan), "00:00:00.100", "1.00:00:00", ErrorMessage = "must be between {1} and {2}")]
    public TimeSpan SweepInterval { get; init; } = TimeSpan.FromHours(1);

    public IEnumerable<ValidationResult> Validate(ValidationContext validationContext)
    {
        if (Billing < BillingMinimum)
        {
            yield return new ValidationResult(
                "must be at least 7 years (2557.00:00:00): tax and accounting law require billing records to be kept that long (commitment C12)",
                [nameof(Billing)]);
        }

        if (OperationalMetadata < TimeSpan.FromDays(1) || OperationalMetadata > OperationalCeiling)
        {
            yield return new ValidationResult(
                "must be between 1 day and 365 days (commitment C11: operational metadata is kept at most 12 months)", [nameof(OperationalMetadata)]);
        }

        if (DeletedAccountGrace < TimeSpan.Zero || DeletedAccountGrace > DeletedAccountCeiling)
        {
            yield return new ValidationResult(
                "must be between 0 and 30 days (commitment C15: a deleted account's personal data is removed within 30 days)", [nameof(DeletedAccountGrace)]);
        }

        if (DeploymentMetadata < TimeSpan.FromDays(1) || DeploymentMetadata > OperationalCeiling)
        {
            yield return new ValidationResult(
                "must be between 1 day and 365 days (commitment C11: operational metadata is kept at most 12 months)", [nameof(DeploymentMetadata)]);
        }

        if (MachineTelemetryRollups < MachineTelemetry)
        {
            yield return new ValidationResult(
                "must be at least as long as Retention:MachineTelemetry: hourly rollups are what remains of raw samples", [nameof(MachineTelemetryRollups)]);
        }
    }
}

/// <summary>The names of retention classes, as legal holds, sweep reports and the generated policy use them.</summary>
public static class RetentionClass
{
    public const string RequestMetadata = "request_metadata";
    public const string OperationalMetadata = "operational_metadata";
    public const string AuditLog = "audit_log";
    public const string Billing = "billing";
    public const string BatchFiles = "batch_files";
    public const string LoginEvents = "login_events";
    public const string DeletedAccounts = "deleted_accounts";
    public const string SupportMessages = "support_messages";
    public const string MachineTelemetry = "machine_telemetry";
    public const string MachineTelemetryRollups = "machine_telemetry_rollups";
    public const string DeploymentMetadata = "deployment_metadata";

    public static readonly IReadOnlyList<string> All =
        [RequestMetadata, OperationalMetadata, AuditLog, Billing, BatchFiles, LoginEvents, DeletedAccounts, SupportMessages, MachineTelemetry, MachineTelemetryRollups, DeploymentMetadata];
}
