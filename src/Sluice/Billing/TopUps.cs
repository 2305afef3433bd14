using System.Globalization;
using System.Net.Http.Headers;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Metadata.Builders;
using Microsoft.Extensions.Options;
using Sluice.Audit;
using Sluice.Hosting;
using Sluice.Storage;

namespace Sluice.Billing;

/// <summary>The <c>Billing:Stripe</c> settings. Without a secret key, card top-ups are off.</summary>
public sealed record StripeOptions
{
    public const string Section = "Billing:Stripe";

    public string? SecretKey { get; init; }

    public string? WebhookSecret { get; init; }

    public string ApiBase { get; init; } = "https://api.stripe.com/";

    public string SuccessUrl { get; init; } = "http://127.0.0.1:8080/console/billing?paid=1";

    public string CancelUrl { get; init; } = "http://127.0.0.1:8080/console/billing";

    /// <summary>How old a webhook's signed timestamp may be (replay protection).</summary>
    public TimeSpan Tolerance { get; init; } = TimeSpan.FromMinutes(5);
}

public sealed record CheckoutRequest(decimal? AmountMicros);

public sealed record CheckoutResponse(string SessionId, string Url);

/// <summary>Where the processor sends the payer back after paying or cancelling (absolute URLs).</summary>
public sealed record CheckoutReturn(string SuccessUrl, string CancelUrl);

public sealed record CreateCodesRequest(decimal? AmountMicros, DateTimeOffset? ExpiresAt, int? Count);

public sealed record RedeemRequest(string? Code);

/// <summary>A single-use code worth an amount until it expires. Only its SHA-256 is stored.</summary>
public sealed class RedemptionCode
{
    public Guid Id { get; init; }

    public required string CodeHash { get; init; }

    public long AmountMicros { get; init; }

    public DateTimeOffset ExpiresAt { get; init; }

    public DateTimeOffset CreatedAt { get; init; }

    public DateTimeOffset? RedeemedAt { get; set; }

    public Guid? RedeemedByOrganizationId { get; set; }
}

internal sealed class RedemptionCodeConfiguration : IEntityTypeConfiguration<RedemptionCode>
{
    public void Configure(EntityTypeBuilder<RedemptionCode> builder)
    {
        builder.ToTable("redemption_codes");
        builder.HasKey(c => c.Id);
        builder.Property(c => c.Id).ValueGeneratedNever();
        builder.Property(c => c.CodeHash).HasMaxLength(64);
        builder.HasIndex(c => c.CodeHash).IsUnique();
    }
}

/// <summary>A verified "this organization paid this amount" from a payment processor, with the processor's payment id.</summary>
public sealed record ConfirmedPayment(Guid OrganizationId, long AmountMicros, string Currency, string PaymentId);

/// <summary>
/// A payment processor: creates hosted checkout pages (card data stays with the processor) and turns its signed
/// notifications into confirmed payments. <see cref="StripePaymentProvider"/> is the one built in.
/// </summary>
public interface IPaymentProvider
{
    string Name { get; }

    bool IsConfigured { get; }

    /// <summary>A hosted checkout page; <paramref name="returnTo"/> overrides the configured success and cancel URLs (the console's wallet page).</summary>
    Task<CheckoutResponse> CreateCheckoutAsync(Guid orgId, long amountMicros, string currency, CheckoutReturn? returnTo, CancellationToken ct);

    /// <summary>Null for a notification that is forged, stale or malformed; otherwise the payment, if it is a completed one.</summary>
    (bool Authentic, ConfirmedPayment? Payment) ReadNotification(string payload, string? signature);
}

/// <summary>Stripe: Checkout Sessions over its HTTP API, and <c>checkout.session.completed</c> webhooks.</summary>
public sealed class StripePaymentProvider(IHttpClientFactory clients, IOptions<StripeOptions> stripe, TimeProvider time) : IPaymentProvider
{
    public string Name => "stripe";

    public bool IsConfigured => !string.IsNullOrEmpty(stripe.Value.SecretKey);

    public async Task<CheckoutResponse> CreateCheckoutAsync(Guid orgId, long amountMicros, string currency, CheckoutReturn? returnTo, CancellationToken ct)
    {
        var settings = stripe.Value;
        var form = new Dictionary<string, string>
        {
            ["mode"] = "payment",
            ["client_reference_id"] = orgId.ToString(),
            ["success_url"] = returnTo?.SuccessUrl ?? settings.SuccessUrl,
            ["cancel_url"] = returnTo?.CancelUrl ?? settings.CancelUrl,
            ["line_items[0][quantity]"] = "1",
            ["line_items[0][price_data][currency]"] = currency.ToLowerInvariant(),
            ["line_items[0][price_data][unit_amount]"] = (amountMicros / 10_000).ToString(CultureInfo.InvariantCulture),
            ["line_items[0][price_data][product_data][name]"] = "Sluice credit",
            ["metadata[organization_id]"] = orgId.ToString(),
        };
        using var message = new HttpRequestMessage(HttpMethod.Post, new Uri(new Uri(settings.ApiBase), "v1/checkout/sessions")) { Content = new FormUrlEncodedContent(form) };
        message.Headers.Authorization = new AuthenticationHeaderValue("Bearer", settings.SecretKey);
        message.Headers.Add("Idempotency-Key", $"checkout-{orgId}-{Guid.NewGuid():N}");
        using var response = await clients.CreateClient("stripe").SendAsync(message, ct);
        if (!response.IsSuccessStatusCode)
        {
            throw new ApiProblemException(StatusCodes.Status502BadGateway, "The payment processor refused the request.", $"Stripe answered {(int)response.StatusCode}; retry later.");
        }

        using var session = JsonDocument.Parse(await response.Content.ReadAsStringAsync(ct));
        return new CheckoutResponse(session.RootElement.GetProperty("id").GetString()!, session.RootElement.GetProperty("url").GetString()!);
    }

    public (bool Authentic, ConfirmedPayment? Payment) ReadNotification(string payload, string? signature)
    {
        if (!VerifySignature(payload, signature, stripe.Value.WebhookSecret, stripe.Value.Tolerance, time.GetUtcNow()))
        {
            return (false, null);
        }

        try
        {
            using var document = JsonDocument.Parse(payload);
            var root = document.RootElement;
            if (root.GetProperty("type").GetString() != "checkout.session.completed")
            {
                return (true, null);
            }

            var session = root.GetProperty("data").GetProperty("object");
            if (session.GetProperty("payment_status").GetString() != "paid"
                || !Guid.TryParse(session.GetProperty("client_reference_id").GetString(), out var orgId))
            {
                return (true, null);
            }

            return (true, new ConfirmedPayment(orgId, session.GetProperty("amount_total").GetInt64() * 10_000,
                session.GetProperty("currency").GetString()!.ToUpperInvariant(), session.GetProperty("id").GetString()!));
        }
        catch (Exception ex) when (ex is JsonException or KeyNotFoundException or InvalidOperationException)
        {
            return (true, null); // signed by Stripe but not a shape we act on
        }
    }

    /// <summary><c>Stripe-Signature: t=…,v1=…</c>: HMAC-SHA256 of "t.payload" under the endpoint secret, within the tolerance.</summary>
    public static bool VerifySignature(string payload, string? header, string? secret, TimeSpan tolerance, DateTimeOffset now)
    {
        if (string.IsNullOrEmpty(secret) || string.IsNullOrEmpty(header))
        {
            return false;
        }

        long? timestamp = null;
        var signatures = new List<string>();
        foreach (var part in header.Split(','))
        {
            var pair = part.Split('=', 2);
            if (pair.Length != 2)
            {
                continue;
            }

            if (pair[0].Trim() == "t" && long.TryParse(pair[1], NumberStyles.None, CultureInfo.InvariantCulture, out var t))
            {
                timestamp = t;
            }
            else if (pair[0].Trim() == "v1")
            {
                signatures.Add(pair[1].Trim());
            }
        }

        if (timestamp is not { } signedAt || (now - DateTimeOffset.FromUnixTimeSeconds(signedAt)).Duration() > tolerance)
        {
            return false;
        }

        var expected = HMACSHA256.HashData(Encoding.UTF8.GetBytes(secret), Encoding.UTF8.GetBytes($"{signedAt}.{payload}"));
        return signatures.Any(s => s.Length == 64 && s.All(char.IsAsciiHexDigit) && CryptographicOperations.FixedTimeEquals(Convert.FromHexString(s), expected));
    }
}

/// <summary>
/// Getting money into a wallet: card payments through a payment processor (Stripe Checkout; card data goes straight to
/// the processor and never reaches Sluice) and single-use redemption codes. Every credit is an idempotent ledger posting.
/// </summary>
public sealed class TopUpService(
    SluiceDbContext db,
    Ledger ledger,
    AuditLog audit,
    IPaymentProvider payments,
    TimeProvider time,
    ILogger<TopUpService> logger)
{
    private const string CodeAlphabet = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789";

    public async Task<CheckoutResponse> CheckoutAsync(Guid orgId, CheckoutRequest request, CancellationToken ct, CheckoutReturn? returnTo = null)
    {
        if (!payments.IsConfigured)
        {
            throw ApiProblem.Forbidden("Card top-ups are not configured on this installation (Billing:Stripe:SecretKey).");
        }

        if (request.AmountMicros is not { } value || value < 500_000 || value > 100_000_000_000m || value % 10_000 != 0)
        {
            throw ApiProblem.Invalid("amountMicros", "must be whole cents (a multiple of 10000 micro-units) between 0.50 and 100000");
        }

        return await payments.CreateCheckoutAsync(orgId, (long)value, ledger.Currency, returnTo, ct);
    }

    /// <summary>
    /// Credits a payment the processor confirmed, once per payment however often the notification is retried or replayed;
    /// the ledger posting and its audit entry commit together or not at all. A payment Sluice cannot credit (another
    /// currency, an organization that does not exist, no amount) is refused: logged by ids, audited as refused (visible to
    /// operators in the audit log, action <c>wallet.top_up</c>) and credits nothing. Returns false for a forged, stale or
    /// malformed notification, which credits nothing.
    /// </summary>
    public async Task<bool> HandlePaymentNotificationAsync(string payload, string? signature, CancellationToken ct)
    {
        var (authentic, payment) = payments.ReadNotification(payload, signature);
        if (!authentic)
        {
            return false;
        }

        if (payment is null)
        {
            return true; // authentic, but not a completed payment (another event type, or unpaid)
        }

        var orgExists = await db.Organizations.AnyAsync(o => o.Id == payment.OrganizationId, ct);
        var refusal = payment.Currency != ledger.Currency ? $"currency {payment.Currency}, this installation bills in {ledger.Currency}"
            : payment.AmountMicros <= 0 ? "no amount"
            : !orgExists ? "unknown organization"
            : null;
        if (refusal is not null)
        {
            await RefusePaymentAsync(payment, orgExists, refusal, ct);
            return true; // answered 200: the processor's retries would be refused the same way
        }

        // A concurrent delivery of the same payment on another replica loses on the idempotency key; the retry replays.
        for (var attempt = 1; ; attempt++)
        {
            await using var transaction = await db.Database.BeginTransactionAsync(ct);
            try
            {
                var (posted, replayed) = await ledger.PostAsync(new LedgerPosting(
                    $"{payments.Name}-payment:{payment.PaymentId}", "card_top_up", payment.OrganizationId, $"{payments.Name} {payment.PaymentId}",
                    [new LedgerLine(null, AccountTypes.PaymentClearing, -payment.AmountMicros), new LedgerLine(payment.OrganizationId, AccountTypes.CustomerWallet, payment.AmountMicros)]), ct);
                if (!replayed)
                {
                    audit.Record("wallet.top_up", $"ledger:{posted.Id} {payment.AmountMicros} {ledger.Currency} card", payment.OrganizationId, actorOverride: "system");
                    await db.SaveChangesAsync(ct);
                }

                await transaction.CommitAsync(ct);
                return true;
            }
            catch (DbUpdateException) when (attempt == 1)
            {
                await transaction.RollbackAsync(ct);
                db.ChangeTracker.Clear();
            }
        }
    }

    private async Task RefusePaymentAsync(ConfirmedPayment payment, bool orgExists, string reason, CancellationToken ct)
    {
        TopUpLog.PaymentRefused(logger, payments.Name, payment.PaymentId, payment.OrganizationId, reason);
        var target = $"{payments.Name} {payment.PaymentId} {payment.AmountMicros} {payment.Currency}: {reason}";
        target = target.Length > 128 ? target[..128] : target;
        if (!await db.AuditEntries.AnyAsync(e => e.Action == "wallet.top_up" && e.Outcome == AuditLog.Refused && e.Target == target, ct))
        {
            await audit.RefuseAsync("wallet.top_up", target, orgExists ? payment.OrganizationId : null, ct, actorOverride: "system");
        }
    }

    /// <summary>Creates single-use codes; returns them once (only their hashes are kept).</summary>
    public async Task<IReadOnlyList<string>> CreateCodesAsync(CreateCodesRequest request, CancellationToken ct)
    {
        var errors = new FieldErrors();
        if (request.AmountMicros is not { } value || value <= 0 || value != decimal.Truncate(value) || value > 1_000_000_000_000m)
        {
            errors.Add("amountMicros", "must be a positive whole number of micro-units");
        }

        if (request.ExpiresAt is not { } expires || expires <= time.GetUtcNow())
        {
            errors.Add("expiresAt", "is required and must be in the future");
        }

        if (request.Count is < 1 or > 1000)
        {
            errors.Add("count", "must be between 1 and 1000");
        }

        errors.ThrowIfAny();
        var codes = new List<string>();
        for (var i = 0; i < (request.Count ?? 1); i++)
        {
            var raw = RandomNumberGenerator.GetString(CodeAlphabet, 16);
            var code = $"SLUICE-{raw[..4]}-{raw[4..8]}-{raw[8..12]}-{raw[12..]}";
            db.Set<RedemptionCode>().Add(new RedemptionCode { Id = Guid.CreateVersion7(), CodeHash = HashCode(code), AmountMicros = (long)request.AmountMicros!.Value, ExpiresAt = request.ExpiresAt!.Value.ToUniversalTime(), CreatedAt = time.GetUtcNow() });
            codes.Add(code);
        }

        audit.Record("redemption.create", $"codes:{codes.Count} of {(long)request.AmountMicros!.Value} until {request.ExpiresAt!.Value.UtcDateTime:yyyy-MM-ddTHH:mm:ssZ}");
        await db.SaveChangesAsync(ct);
        return codes;
    }

    /// <summary>Redeems a code into the organization's wallet, once: the claim is a conditional update.</summary>
    public async Task<long> RedeemAsync(Guid orgId, RedeemRequest request, CancellationToken ct)
    {
        if (string.IsNullOrWhiteSpace(request.Code) || request.Code.Length > 64)
        {
            throw ApiProblem.Invalid("code", "is required");
        }

        var hash = HashCode(request.Code.Trim().ToUpperInvariant());
        var code = await db.Set<RedemptionCode>().AsNoTracking().SingleOrDefaultAsync(c => c.CodeHash == hash, ct)
            ?? throw ApiProblem.Invalid("code", "is not a valid redemption code");
        var now = time.GetUtcNow();
        if (code.RedeemedAt is not null)
        {
            throw ApiProblem.Conflict("code", "has already been redeemed");
        }

        if (code.ExpiresAt <= now)
        {
            throw ApiProblem.Invalid("code", "has expired");
        }

        await using var transaction = await db.Database.BeginTransactionAsync(ct);
        var claimed = await db.Set<RedemptionCode>().Where(c => c.Id == code.Id && c.RedeemedAt == null && c.ExpiresAt > now)
            .ExecuteUpdateAsync(set => set.SetProperty(c => c.RedeemedAt, now).SetProperty(c => c.RedeemedByOrganizationId, orgId), ct);
        if (claimed == 0)
        {
            throw ApiProblem.Conflict("code", "has already been redeemed");
        }

        var (ledgerTransaction, _) = await ledger.PostAsync(new LedgerPosting($"redeem:{code.Id}", "redemption", orgId, $"code {code.Id}",
            [new LedgerLine(null, AccountTypes.Promotions, -code.AmountMicros), new LedgerLine(orgId, AccountTypes.CustomerWallet, code.AmountMicros)]), ct);
        audit.Record("wallet.redeem", $"ledger:{ledgerTransaction.Id} code:{code.Id} {code.AmountMicros} {ledger.Currency}", orgId);
        await db.SaveChangesAsync(ct);
        await transaction.CommitAsync(ct);
        return code.AmountMicros;
    }

    private static string HashCode(string code) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(code)));
}
