using System.Collections.Concurrent;
using System.Net;
using System.Net.Http.Json;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Logging;
using Sluice.Storage;
using Sluice.Tests.TestSupport;
using static Sluice.Tests.TestSupport.GatewayKit;

namespace Sluice.Tests.Billing;

/// <summary>Top-ups: Stripe Checkout against a stand-in Stripe on loopback, signed webhooks, redemption codes.</summary>
public sealed class TopUpTests
{
    internal const string WebhookSecret = "whsec_test_canary";
    private const string StripeKey = "sk_test_stripe_canary";

    [Fact]
    public async Task A_paid_checkout_credits_the_wallet_once_and_replayed_or_forged_webhooks_credit_nothing()
    {
        await using var stripe = await StandInStripe.StartAsync();
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Sqlite);
        await using var sluice = new SluiceFactory(database, new Dictionary<string, string?>
        {
            ["Billing:Stripe:SecretKey"] = StripeKey,
            ["Billing:Stripe:WebhookSecret"] = WebhookSecret,
            ["Billing:Stripe:ApiBase"] = stripe.BaseUrl,
        });
        var (owner, orgId, _) = await TenantAsync(sluice);

        var checkout = await owner.PostAsJsonAsync($"/api/v1/orgs/{orgId}/wallet/checkout", new { amountMicros = 25_500_000 });
        var fractional = await owner.PostAsJsonAsync($"/api/v1/orgs/{orgId}/wallet/checkout", new { amountMicros = 25_500_001 });

        Assert.Equal(HttpStatusCode.OK, checkout.StatusCode);
        Assert.Equal("https://checkout.stripe.test/cs_test_1", (await checkout.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("url").GetString());
        var form = Assert.Single(stripe.Requests);
        Assert.Equal($"Bearer {StripeKey}", form.Authorization);
        Assert.Contains("line_items%5B0%5D%5Bprice_data%5D%5Bunit_amount%5D=2550", form.Body, StringComparison.Ordinal);
        Assert.Contains($"client_reference_id={orgId}", form.Body, StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.BadRequest, fractional.StatusCode);

        using var anonymous = sluice.Anonymous();
        var paid = Event("evt_1", "cs_test_1", orgId, 2550);
        var now = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
        Assert.Equal(HttpStatusCode.OK, (await Deliver(anonymous, paid, Sign(paid, now))).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await Deliver(anonymous, paid, Sign(paid, now))).StatusCode); // replayed
        var sameSessionOtherEvent = Event("evt_2", "cs_test_1", orgId, 2550);
        Assert.Equal(HttpStatusCode.OK, (await Deliver(anonymous, sameSessionOtherEvent, Sign(sameSessionOtherEvent, now))).StatusCode);
        var forged = Event("evt_3", "cs_test_forged", orgId, 1_000_000);
        Assert.Equal(HttpStatusCode.BadRequest, (await Deliver(anonymous, forged, $"t={now},v1={new string('a', 64)}")).StatusCode);
        var stale = Event("evt_4", "cs_test_stale", orgId, 1_000_000);
        Assert.Equal(HttpStatusCode.BadRequest, (await Deliver(anonymous, stale, Sign(stale, now - 3600))).StatusCode);
        Assert.Equal(HttpStatusCode.BadRequest, (await Deliver(anonymous, paid, null)).StatusCode);

        var wallet = await owner.GetFromJsonAsync<JsonElement>($"/api/v1/orgs/{orgId}/wallet");
        Assert.Equal(25_500_000, wallet.GetProperty("balanceMicros").GetInt64());
        await using var db = database.CreateContext();
        var posted = await db.LedgerTransactions.SingleAsync(t => t.Type == "card_top_up");

        // The webhook is audited (AuditCoverageTests relies on this): one entry by "system" for the one credit, none for
        // the replays, the forged, the stale or the unsigned notifications.
        var audited = await db.AuditEntries.Where(e => e.Action == "wallet.top_up").ToListAsync();
        var entry = Assert.Single(audited);
        Assert.Equal(("system", "success", orgId, $"ledger:{posted.Id} 25500000 USD card"), (entry.Actor, entry.Outcome, entry.OrganizationId!.Value, entry.Target));
        var stored = await Canary.DumpDatabaseAsync(database);
        Assert.DoesNotContain(StripeKey, stored, StringComparison.Ordinal);
        Assert.DoesNotContain(WebhookSecret, stored + sluice.Logs.All, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Redemption_codes_credit_once_before_they_expire()
    {
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Sqlite);
        await using var sluice = new SluiceFactory(database);
        using var op = await OperatorAsync(sluice);
        var (owner, orgId, _) = await TenantAsync(sluice);
        var created = await op.PostAsJsonAsync("/api/v1/admin/redemption-codes", new { amountMicros = 5_000_000, expiresAt = DateTimeOffset.UtcNow.AddDays(30), count = 2 });
        var codes = (await created.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("codes").EnumerateArray().Select(c => c.GetString()!).ToList();

        var redeemed = await owner.PostAsJsonAsync($"/api/v1/orgs/{orgId}/wallet/redeem", new { code = codes[0].ToLowerInvariant() });
        var again = await owner.PostAsJsonAsync($"/api/v1/orgs/{orgId}/wallet/redeem", new { code = codes[0] });
        var unknown = await owner.PostAsJsonAsync($"/api/v1/orgs/{orgId}/wallet/redeem", new { code = "SLUICE-NOPE-NOPE-NOPE-NOPE" });
        await database.ExecuteAsync("UPDATE redemption_codes SET expires_at = 0 WHERE redeemed_at IS NULL");
        var expired = await owner.PostAsJsonAsync($"/api/v1/orgs/{orgId}/wallet/redeem", new { code = codes[1] });
        var badRequest = await op.PostAsJsonAsync("/api/v1/admin/redemption-codes", new { amountMicros = 5, expiresAt = DateTimeOffset.UtcNow.AddDays(-1) });

        Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        Assert.Equal(2, codes.Count);
        Assert.Equal(5_000_000, (await redeemed.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("creditedMicros").GetInt64());
        Assert.Equal(HttpStatusCode.Conflict, again.StatusCode);
        Assert.Equal(HttpStatusCode.BadRequest, unknown.StatusCode);
        Assert.Equal(HttpStatusCode.BadRequest, expired.StatusCode);
        Assert.Contains("expired", await expired.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.BadRequest, badRequest.StatusCode);
        var wallet = await owner.GetFromJsonAsync<JsonElement>($"/api/v1/orgs/{orgId}/wallet");
        Assert.Equal(5_000_000, wallet.GetProperty("balanceMicros").GetInt64());
        Assert.DoesNotContain(codes[0], await Canary.DumpDatabaseAsync(database), StringComparison.Ordinal);
    }

    internal static string Event(string id, string sessionId, Guid orgId, long cents, string currency = "usd") => JsonSerializer.Serialize(new
    {
        id,
        type = "checkout.session.completed",
        data = new { @object = new { id = sessionId, payment_status = "paid", client_reference_id = orgId.ToString(), currency, amount_total = cents } },
    });

    internal static string Sign(string payload, long timestamp)
    {
        var signature = Convert.ToHexStringLower(HMACSHA256.HashData(Encoding.UTF8.GetBytes(WebhookSecret), Encoding.UTF8.GetBytes($"{timestamp}.{payload}")));
        return $"t={timestamp},v1={signature}";
    }

    internal static async Task<HttpResponseMessage> Deliver(HttpClient client, string payload, string? signature)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, "/api/v1/billing/stripe/webhook") { Content = new StringContent(payload, Encoding.UTF8, "application/json") };
        if (signature is not null)
        {
            request.Headers.Add("Stripe-Signature", signature);
        }

        return await client.SendAsync(request);
    }

    /// <summary>Stripe's Checkout Sessions endpoint, standing in on loopback.</summary>
    private sealed class StandInStripe : IAsyncDisposable
    {
        private readonly WebApplication _app;

        private StandInStripe(WebApplication app) => _app = app;

        public ConcurrentQueue<(string Authorization, string Body)> Requests { get; } = new();

        public string BaseUrl => _app.Urls.First() + "/";

        public static async Task<StandInStripe> StartAsync()
        {
            var builder = WebApplication.CreateSlimBuilder();
            builder.Logging.ClearProviders();
            builder.WebHost.UseUrls("http://127.0.0.1:0");
            var app = builder.Build();
            var stripe = new StandInStripe(app);
            app.MapPost("/v1/checkout/sessions", async (HttpContext context) =>
            {
                using var reader = new StreamReader(context.Request.Body);
                stripe.Requests.Enqueue((context.Request.Headers.Authorization.ToString(), await reader.ReadToEndAsync()));
                return Results.Json(new { id = "cs_test_1", url = "https://checkout.stripe.test/cs_test_1" });
            });
            await app.StartAsync();
            return stripe;
        }

        public async ValueTask DisposeAsync()
        {
            await _app.StopAsync();
            await _app.DisposeAsync();
        }
    }
}
