using System.Net.Mail;
using Microsoft.Extensions.Options;

namespace Sluice.Privacy;

/// <summary>Service email (verification codes, policy changes). Essential messages only: Sluice sends no marketing.</summary>
public interface IServiceEmail
{
    /// <summary>Whether a relay is configured; without one, notices stay in the service.</summary>
    bool IsConfigured { get; }

    Task SendAsync(string recipient, string subject, string body, CancellationToken cancellationToken);
}

/// <summary>Sends through the SMTP relay named by <c>Privacy:SmtpHost</c>. Failures are logged by type, never with the message.</summary>
internal sealed class SmtpServiceEmail(IOptions<PrivacyOptions> options, ILogger<SmtpServiceEmail> logger) : IServiceEmail
{
    public bool IsConfigured => !string.IsNullOrWhiteSpace(options.Value.SmtpHost);

    public async Task SendAsync(string recipient, string subject, string body, CancellationToken cancellationToken)
    {
        if (!IsConfigured)
        {
            return;
        }

        var settings = options.Value;
        using var client = new SmtpClient(settings.SmtpHost, settings.SmtpPort);
        using var message = new MailMessage(settings.SmtpFrom, recipient, subject, body);
        try
        {
            await client.SendMailAsync(message, cancellationToken);
        }
        catch (Exception ex) when (ex is SmtpException or InvalidOperationException or IOException)
        {
            PrivacyLog.SendFailed(logger, ex.GetType().Name);
            throw;
        }
    }
}
