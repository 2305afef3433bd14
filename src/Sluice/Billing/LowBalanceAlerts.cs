using System.Globalization;
using System.Net;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using Sluice.Audit;
using Sluice.Crypto;
using Sluice.Hosting;
using Sluice.Storage;

namespace Sluice.Billing;

public sealed record LowBalanceAlertRequest(decimal? ThresholdMicros, string? Url);

/// <summary>The alert settings; <see cref="SigningSecret"/> only when it was just created (it is never shown again).</summary>
public sealed record LowBalanceAlertResponse(long? ThresholdMicros, string? Url, string? SigningSecret);

/// <summary>
/// Low-balance webhooks: when an organization's money (wallet plus holds) falls below its threshold, one signed POST
/// (<c>Sluice-Signature: t=…,v1=HMAC-SHA256(secret, "t.body")</c>) goes to its URL; the alert re-arms once the balance
/// is back at or above the threshold. The claim is a conditional update, so replicas send one webhook per crossing.
/// </summary>
public sealed class LowBalanceAlerts(
    SluiceDbContext db, SecretBox secrets, AuditLog audit, IHttpClientFactory clients, IOptions<BillingOptions> options, TimeProvider time, ILogger<LowBalanceAlerts> logger)
{
    public async Task<LowBalanceAlertResponse> ConfigureAsync(Guid orgId, LowBalanceAlertRequest request, CancellationToken ct)
    {
        var organization = await db.Organizations.SingleOrDefaultAsync(o => o.Id == orgId, ct) ?? throw ApiProblem.NotFound("organization");
        var errors = new FieldErrors();
        if (request.ThresholdMicros is { } threshold && (threshold <= 0 || threshold != decimal.Truncate(threshold) || threshold > long.MaxValue / 4))
        {
            errors.Add("thresholdMicros", "must be a positive whole number of micro-units, or null to turn the alert off");
        }

        if (request.Url is { Length: > 0 } url && (!Uri.TryCreate(url, UriKind.Absolute, out var uri) || (uri.Scheme != Uri.UriSchemeHttps && uri.Scheme != Uri.UriSchemeHttp) || url.Length > 500))
        {
            errors.Add("url", "must be an http(s) URL of at most 500 characters");
        }
        else if (request.Url is { Length: > 0 } && IPAddress.TryParse(new Uri(request.Url).Host.Trim('[', ']'), out var literal)
            && !WebhookDelivery.IsPermitted(literal, WebhookDelivery.AllowedNetworks(options.Value)))
        {
            errors.Add("url", "must not be a loopback, link-local, private or reserved address (an operator can allow a network with Billing:WebhookAllowedNetworks)");
        }

        if ((request.ThresholdMicros is null) != string.IsNullOrEmpty(request.Url))
        {
            errors.Add("url", "give both a threshold and a URL, or neither to turn the alert off");
        }

        errors.ThrowIfAny();
        string? newSecret = null;
        organization.LowBalanceThresholdMicros = request.ThresholdMicros is { } t ? (long)t : null;
        organization.LowBalanceWebhookUrl = string.IsNullOrEmpty(request.Url) ? null : request.Url;
        organization.LowBalanceAlerted = false;
        if (organization.LowBalanceWebhookUrl is null)
        {
            organization.LowBalanceWebhookSecret = null;
        }
        else if (organization.LowBalanceWebhookSecret is null)
        {
            newSecret = "whsec_" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(24));
            organization.LowBalanceWebhookSecret = secrets.Seal(newSecret, $"{orgId}:low-balance");
        }

        audit.Record("wallet.alert", $"org:{orgId} threshold={organization.LowBalanceThresholdMicros?.ToString(CultureInfo.InvariantCulture) ?? "off"}", orgId);
        await db.SaveChangesAsync(ct);
        return new LowBalanceAlertResponse(organization.LowBalanceThresholdMicros, organization.LowBalanceWebhookUrl, newSecret);
    }

    /// <summary>One round: alert every organization newly below its threshold, re-arm those back above it.</summary>
    public async Task CheckAsync(CancellationToken ct)
    {
        var watched = await db.Organizations.AsNoTracking().Where(o => o.LowBalanceThresholdMicros != null && o.LowBalanceWebhookUrl != null)
            .Select(o => new { o.Id, o.LowBalanceThresholdMicros, o.LowBalanceWebhookUrl, o.LowBalanceWebhookSecret, o.LowBalanceAlerted }).ToListAsync(ct);
        foreach (var org in watched)
        {
            Guid? orgId = org.Id;
            var balance = await db.LedgerAccounts.Where(a => a.OrganizationId == orgId && (a.Type == AccountTypes.CustomerWallet || a.Type == AccountTypes.CustomerHolds) && a.Currency == options.Value.Currency)
                .SumAsync(a => a.BalanceMicros, ct);
            var below = balance < org.LowBalanceThresholdMicros;
            if (!below && org.LowBalanceAlerted)
            {
                await db.Organizations.Where(o => o.Id == org.Id).ExecuteUpdateAsync(set => set.SetProperty(o => o.LowBalanceAlerted, false), ct);
            }
            else if (below && !org.LowBalanceAlerted
                && await db.Organizations.Where(o => o.Id == org.Id && !o.LowBalanceAlerted).ExecuteUpdateAsync(set => set.SetProperty(o => o.LowBalanceAlerted, true), ct) == 1)
            {
                if (!await SendAsync(org.Id, org.LowBalanceWebhookUrl!, org.LowBalanceWebhookSecret!, balance, org.LowBalanceThresholdMicros!.Value, ct))
                {
                    // Not delivered: re-arm so the next round tries again.
                    await db.Organizations.Where(o => o.Id == org.Id).ExecuteUpdateAsync(set => set.SetProperty(o => o.LowBalanceAlerted, false), ct);
                }
                else
                {
                    await Deployments.Billing.DeploymentBillingWarnings.RecordAsync(db, org.Id, balance, org.LowBalanceThresholdMicros!.Value, time.GetUtcNow(), ct);
                }
            }
        }
    }

    private async Task<bool> SendAsync(Guid orgId, string url, string sealedSecret, long balance, long threshold, CancellationToken ct)
    {
        var body = JsonSerializer.Serialize(new
        {
            type = "wallet.low_balance",
            organizationId = orgId,
            balanceMicros = balance,
            thresholdMicros = threshold,
            currency = options.Value.Currency,
            occurredAt = time.GetUtcNow(),
        });
        var timestamp = time.GetUtcNow().ToUnixTimeSeconds();
        var secret = secrets.Open(sealedSecret, $"{orgId}:low-balance");
        var signature = Convert.ToHexStringLower(HMACSHA256.HashData(Encoding.UTF8.GetBytes(secret), Encoding.UTF8.GetBytes($"{timestamp}.{body}")));
        using var request = new HttpRequestMessage(HttpMethod.Post, url) { Content = new StringContent(body, Encoding.UTF8, "application/json") };
        request.Headers.Add("Sluice-Signature", $"t={timestamp},v1={signature}");
        try
        {
            using var response = await clients.CreateClient("webhooks").SendAsync(request, ct);
            if ((int)response.StatusCode is >= 300 and < 400)
            {
                TopUpLog.WebhookRefused(logger, orgId, $"the receiver answered {(int)response.StatusCode}; redirects are not followed");
            }

            return response.IsSuccessStatusCode;
        }
        catch (HttpRequestException ex) when (ex.InnerException is WebhookAddressRefusedException)
        {
            TopUpLog.WebhookRefused(logger, orgId, "its host resolves only to addresses webhooks may not reach");
            return false;
        }
        catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException)
        {
            return false;
        }
    }
}

/// <summary>Checks low-balance alerts every <see cref="BillingOptions.AlertInterval"/>.</summary>
internal sealed class LowBalanceAlertJob(IServiceScopeFactory scopes, IOptions<BillingOptions> options, TimeProvider time, ILogger<LowBalanceAlertJob> logger, Hosting.BackgroundHealth? health = null) : Hosting.SupervisedService(health)
{
    protected override Task RunAsync(CancellationToken stoppingToken) =>
        PeriodicWork.RunAsync(options.Value.AlertInterval, time, logger, "Low-balance alerts", async ct =>
        {
            await using var scope = scopes.CreateAsyncScope();
            await scope.ServiceProvider.GetRequiredService<LowBalanceAlerts>().CheckAsync(ct);
        }, stoppingToken, Health);
}
