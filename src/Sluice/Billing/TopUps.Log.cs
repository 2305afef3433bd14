namespace Sluice.Billing;

/// <summary>Billing's log lines: ids, amounts' absence and reasons, never keys, secrets or webhook bodies.</summary>
internal static partial class TopUpLog
{
    [LoggerMessage(511, LogLevel.Warning, "Payment {PaymentId} from {Processor} for organization {OrganizationId} refused ({Reason}); nothing credited, audited as wallet.top_up refused")]
    public static partial void PaymentRefused(ILogger logger, string processor, string paymentId, Guid organizationId, string reason);

    [LoggerMessage(512, LogLevel.Warning, "Low-balance webhook for organization {OrganizationId} not sent: {Reason}")]
    public static partial void WebhookRefused(ILogger logger, Guid organizationId, string reason);
}
