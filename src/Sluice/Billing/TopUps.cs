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

/// <summary>
/// Getting money into a wallet: card payments through a payment processor (Stripe Checkout; card data goes straight to
/// the processor and never reaches Sluice) and single-use redemption codes. Every credit is an idempotent ledger posting.
/// </summary>
public sealed class TopUpService(
    SluiceDbContext db,
    Ledger ledger,
    AuditLog audit,
    IHttpClientFactory clients,
    IOptions<StripeOptions> stripe,
    TimeProvider time)
{
    private const string CodeAlphabet = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789";

    public async Task<CheckoutResponse> CheckoutAsync(Guid orgId, CheckoutRequest request, CancellationToken ct)
    {
        var settings = stripe.Value;
        if (string.IsNullOrEmpty(settings.SecretKey))
        {
            throw ApiProblem.Forbidden("Card top-ups are not configured on this installation (Billing:Stripe:SecretKey).");
        }

        if (request.AmountMicros is not { } value || value < 500_000 || value > 100_000_000_000m || value % 10_000 != 0)
        {
            throw ApiProblem.Invalid("amountMicros", "must be whole cents (a multiple of 10000 micro-units) between 0.50 and 100000");
        }

        var amount = (long)value;
        var form = new Dictionary<string, string>
        {
            ["mode"] = "payment",
            ["client_reference_id"] = orgId.ToString(),
            ["success_url"] = settings.SuccessUrl,
            ["cancel_url"] = settings.CancelUrl,
            ["line_items[0][quantity]"] = "1",
            ["line_items[0][price_data][currency]"] = ledger.Currency.ToLowerInvariant(),
            ["line_items[0][price_data][unit_amount]"] = (amount / 10_000).ToString(CultureInfo.InvariantCulture),
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

    /// <summary>
    /// Verifies a Stripe webhook (<c>Stripe-Signature</c>: HMAC-SHA256 of "timestamp.payload" under the endpoint secret,
    /// within the tolerance window) and credits a paid checkout once per session, whatever the retries or replays.
    /// Returns false for a forged, stale or malformed event.
    /// </summary>
    public async Task<bool> HandleStripeWebhookAsync(string payload, string? signatureHeader, CancellationToken ct)
    {
        if (!VerifyStripeSignature(payload, signatureHeader, stripe.Value.WebhookSecret, stripe.Value.Tolerance, time.GetUtcNow()))
        {
            return false;
        }

        using var document = JsonDocument.Parse(payload);
        var root = document.RootElement;
        if (root.GetProperty("type").GetString() != "checkout.session.completed")
        {
            return true; // acknowledged, nothing to do
        }

        var session = root.GetProperty("data").GetProperty("object");
        if (session.GetProperty("payment_status").GetString() != "paid"
            || !Guid.TryParse(session.GetProperty("client_reference_id").GetString(), out var orgId)
            || !session.GetProperty("currency").GetString()!.Equals(ledger.Currency, StringComparison.OrdinalIgnoreCase))
        {
            return true;
        }

        var amount = session.GetProperty("amount_total").GetInt64() * 10_000;
        var sessionId = session.GetProperty("id").GetString()!;
        if (!await db.Organizations.AnyAsync(o => o.Id == orgId, ct))
        {
            return true;
        }

        var (transaction, replayed) = await ledger.PostAsync(new LedgerPosting(
            $"stripe-session:{sessionId}", "card_top_up", orgId, $"stripe {sessionId}",
            [new LedgerLine(null, AccountTypes.PaymentClearing, -amount), new LedgerLine(orgId, AccountTypes.CustomerWallet, amount)]), ct);
        if (!replayed)
        {
            audit.Record("wallet.top_up", $"ledger:{transaction.Id} {amount} {ledger.Currency} card", orgId, actorOverride: "system");
            await db.SaveChangesAsync(ct);
        }

        return true;
    }

    public static bool VerifyStripeSignature(string payload, string? header, string? secret, TimeSpan tolerance, DateTimeOffset now)
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
