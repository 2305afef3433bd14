using System.Collections.Concurrent;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Playwright;
using Sluice.Storage;
using Sluice.Tests.Billing;
using Sluice.Tests.TestSupport;

namespace Sluice.Tests.WebConsole;

/// <summary>The wallet page: top-up through a stand-in Stripe, redemption codes, the ledger, statements, the low-balance alert.</summary>
public sealed class WalletPageTests
{
    [Fact]
    public async Task A_card_top_up_redirects_to_checkout_and_once_the_webhook_confirms_it_the_balance_and_ledger_show_the_credit()
    {
        await using var stripe = await WalletStripe.StartAsync();
        await using var kit = await ConsoleKit.StartAsync(settings: WalletStripe.Settings(stripe));
        var (owner, orgId) = await kit.OwnerAsync("payer@example.com");
        var wallet = await owner.GetAsync($"/orgs/{orgId}/wallet");
        Assert.Equal(HttpStatusCode.OK, wallet.Status);
        Assert.Contains("0.00 USD", wallet.Find("#balance")!.TextContent, StringComparison.Ordinal);

        var redirect = await owner.SubmitAsync(wallet, "#top-up-form", new() { ["Amount"] = "25.50" });

        Assert.Equal(HttpStatusCode.SeeOther, redirect.Status);
        Assert.Equal(new Uri(WalletStripe.CheckoutUrl).PathAndQuery, redirect.Location); // the kit keeps the path of an absolute Location
        var sent = Assert.Single(stripe.Requests);
        Assert.Contains("unit_amount%5D=2550", sent, StringComparison.Ordinal);
        Assert.Contains(Uri.EscapeDataString($"{kit.RootUrl}/orgs/{orgId}/wallet?done=paid"), sent, StringComparison.Ordinal);

        var back = await owner.GetAsync($"/orgs/{orgId}/wallet?done=paid");
        Assert.Contains("being confirmed", back.Find(".notice")!.TextContent, StringComparison.Ordinal);
        Assert.Contains("0.00 USD", back.Find("#balance")!.TextContent, StringComparison.Ordinal);

        using var anonymous = new HttpClient { BaseAddress = new Uri(kit.RootUrl) };
        var paid = TopUpTests.Event("evt_console", "cs_console_1", orgId, 2550);
        using var delivered = await TopUpTests.Deliver(anonymous, paid, TopUpTests.Sign(paid, DateTimeOffset.UtcNow.ToUnixTimeSeconds()));
        Assert.Equal(HttpStatusCode.OK, delivered.StatusCode);

        var credited = await owner.GetAsync($"/orgs/{orgId}/wallet");
        Assert.Contains("25.50 USD", credited.Find("#balance")!.TextContent, StringComparison.Ordinal);
        var row = Assert.Single(credited.FindAll("#ledger-table tbody tr"));
        Assert.Contains("card top up", row.TextContent, StringComparison.Ordinal);
        Assert.Equal(2, System.Text.RegularExpressions.Regex.Count(row.TextContent, "25\\.50 USD")); // amount and balance after
        Assert.Contains("stripe cs_console_1", row.TextContent, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_bad_top_up_amount_is_an_inline_error_that_keeps_what_was_typed_and_reaches_no_processor()
    {
        await using var stripe = await WalletStripe.StartAsync();
        await using var kit = await ConsoleKit.StartAsync(settings: WalletStripe.Settings(stripe));
        var (owner, orgId) = await kit.OwnerAsync("payer@example.com");

        var words = await owner.SubmitAsync(await owner.GetAsync($"/orgs/{orgId}/wallet"), "#top-up-form", new() { ["Amount"] = "lots" });
        var tiny = await owner.SubmitAsync(await owner.GetAsync($"/orgs/{orgId}/wallet"), "#top-up-form", new() { ["Amount"] = "0.10" });

        Assert.Equal(HttpStatusCode.OK, words.Status);
        Assert.Contains("such as 25.00", words.FieldError("Amount"), StringComparison.Ordinal);
        Assert.Equal("lots", words.InputValue("Amount"));
        Assert.Contains("between 0.50 and 100000", tiny.FieldError("Amount"), StringComparison.Ordinal);
        Assert.Equal("0.10", tiny.InputValue("Amount"));
        Assert.Empty(stripe.Requests);
    }

    [Fact]
    public async Task A_redemption_code_credits_once_and_a_used_or_unknown_code_is_an_inline_error()
    {
        await using var kit = await ConsoleKit.StartAsync();
        var (owner, orgId) = await kit.OwnerAsync("redeemer@example.com");
        var code = (await CodesAsync(kit, 7_000_000, 1)).Single();

        var redeemed = await owner.SubmitAsync(await owner.GetAsync($"/orgs/{orgId}/wallet"), "#redeem-form", new() { ["Code"] = code });
        var again = await owner.SubmitAsync(await owner.GetAsync($"/orgs/{orgId}/wallet"), "#redeem-form", new() { ["Code"] = code });
        var unknown = await owner.SubmitAsync(await owner.GetAsync($"/orgs/{orgId}/wallet"), "#redeem-form", new() { ["Code"] = "SLUICE-NOPE-NOPE-NOPE-NOPE" });
        var empty = await owner.SubmitAsync(await owner.GetAsync($"/orgs/{orgId}/wallet"), "#redeem-form", new() { ["Code"] = "" });

        Assert.Contains("7.00 USD added", redeemed.Find(".notice")!.TextContent, StringComparison.Ordinal);
        Assert.Contains("7.00 USD", redeemed.Find("#balance")!.TextContent, StringComparison.Ordinal);
        Assert.Equal("", redeemed.InputValue("Code"));
        Assert.Contains("already been redeemed", again.FieldError("Code"), StringComparison.Ordinal);
        Assert.Equal(code, again.InputValue("Code"));
        Assert.Contains("not a valid redemption code", unknown.FieldError("Code"), StringComparison.Ordinal);
        Assert.Equal("SLUICE-NOPE-NOPE-NOPE-NOPE", unknown.InputValue("Code"));
        Assert.Contains("required", empty.FieldError("Code"), StringComparison.Ordinal);
        var after = await owner.GetAsync($"/orgs/{orgId}/wallet");
        Assert.Contains("7.00 USD", after.Find("#balance")!.TextContent, StringComparison.Ordinal);
        Assert.Single(after.FindAll("#ledger-table tbody tr"));
    }

    [Fact]
    public async Task The_ledger_pages_newest_first_with_the_balance_after_each_movement_and_statements_download_with_their_figures()
    {
        await using var kit = await ConsoleKit.StartAsync();
        var (owner, orgId) = await kit.OwnerAsync("ledger@example.com");
        using var op = await kit.OperatorAsync();
        for (var i = 1; i <= 25; i++)
        {
            using var credit = await op.Http.PostAsJsonAsync($"api/v1/admin/orgs/{orgId}/wallet/credits", new { amountMicros = i * 1_000_000, reason = $"credit {i}" });
            Assert.Equal(HttpStatusCode.Created, credit.StatusCode);
        }

        var first = await owner.GetAsync($"/orgs/{orgId}/wallet");
        var rows = first.FindAll("#ledger-table tbody tr");
        Assert.Equal(WalletPageModelPageSize, rows.Count);
        Assert.Contains("credit 25", rows[0].TextContent, StringComparison.Ordinal);
        Assert.Contains("325.00 USD", rows[0].TextContent, StringComparison.Ordinal); // balance after the newest = the balance
        Assert.Contains("300.00 USD", rows[1].TextContent, StringComparison.Ordinal);
        var older = first.Find("a[rel=next]")!.GetAttribute("href")!;
        Assert.Null(first.Find("a[rel=prev]"));

        var second = await owner.GetAsync(older);
        var rest = second.FindAll("#ledger-table tbody tr");
        Assert.Equal(5, rest.Count);
        Assert.Contains("credit 5", rest[0].TextContent, StringComparison.Ordinal);
        Assert.Contains("15.00 USD", rest[0].TextContent, StringComparison.Ordinal);
        Assert.Contains("credit 1", rest[4].TextContent, StringComparison.Ordinal);
        Assert.Null(second.Find("a[rel=next]"));
        Assert.NotNull(second.Find("a[rel=prev]"));

        var month = DateTimeOffset.UtcNow.ToString("yyyy-MM", System.Globalization.CultureInfo.InvariantCulture);
        var link = first.FindAll("#statements-table a").Select(a => a.GetAttribute("href")!).First(h => h.Contains("format=csv", StringComparison.Ordinal));
        Assert.Contains($"month={month}", link, StringComparison.Ordinal);
        using var csv = await owner.Http.GetAsync(link.TrimStart('/'));
        var body = await csv.Content.ReadAsStringAsync();
        Assert.Equal(HttpStatusCode.OK, csv.StatusCode);
        Assert.Equal("text/csv", csv.Content.Headers.ContentType!.MediaType);
        Assert.Contains($"statement-{month}.csv", csv.Content.Headers.ContentDisposition!.ToString(), StringComparison.Ordinal);
        Assert.StartsWith("time,type,reference,amount,balance\n", body, StringComparison.Ordinal);
        Assert.Equal(26, body.Split('\n', StringSplitOptions.RemoveEmptyEntries).Length);
        Assert.Contains("manual_credit,credit 25,25.000000,325.000000", body, StringComparison.Ordinal);
        using var html = await owner.Http.GetAsync($"orgs/{orgId}/wallet?handler=Statement&month={month}&format=html");
        Assert.Equal("text/html", html.Content.Headers.ContentType!.MediaType);
        Assert.Equal("attachment", html.Content.Headers.ContentDisposition!.DispositionType);
        using var stranger = await kit.SignUpAsync("stranger@example.com");
        using var theirs = await stranger.Http.GetAsync(link.TrimStart('/'));
        Assert.Equal(HttpStatusCode.NotFound, theirs.StatusCode);
        Assert.DoesNotContain("325", await theirs.Content.ReadAsStringAsync(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task The_low_balance_alert_is_saved_with_its_secret_shown_once_and_a_negative_threshold_or_bad_url_is_refused_inline()
    {
        await using var kit = await ConsoleKit.StartAsync();
        var (owner, orgId) = await kit.OwnerAsync("alerts@example.com");

        var negative = await owner.SubmitAsync(await owner.GetAsync($"/orgs/{orgId}/wallet"), "#alert-form", new() { ["Threshold"] = "-5", ["WebhookUrl"] = "https://hooks.example.com/low" });
        var badUrl = await owner.SubmitAsync(await owner.GetAsync($"/orgs/{orgId}/wallet"), "#alert-form", new() { ["Threshold"] = "10", ["WebhookUrl"] = "ftp://hooks.example.com/low" });
        var notUrl = await owner.SubmitAsync(await owner.GetAsync($"/orgs/{orgId}/wallet"), "#alert-form", new() { ["Threshold"] = "10", ["WebhookUrl"] = "not a url" });

        Assert.Contains("positive amount", negative.FieldError("Threshold"), StringComparison.Ordinal);
        Assert.Equal("-5", negative.InputValue("Threshold"));
        Assert.Equal("https://hooks.example.com/low", negative.InputValue("WebhookUrl"));
        Assert.Contains("http(s) URL", badUrl.FieldError("WebhookUrl"), StringComparison.Ordinal);
        Assert.Equal("ftp://hooks.example.com/low", badUrl.InputValue("WebhookUrl"));
        Assert.Contains("http(s) URL", notUrl.FieldError("WebhookUrl"), StringComparison.Ordinal);
        Assert.Null(await AlertAsync(kit, orgId));

        var saved = await owner.SubmitAsync(await owner.GetAsync($"/orgs/{orgId}/wallet"), "#alert-form", new() { ["Threshold"] = "12.5", ["WebhookUrl"] = "https://hooks.example.com/low" });
        Assert.Equal(HttpStatusCode.OK, saved.Status);
        var secret = saved.Find("#signing-secret")!.TextContent;
        Assert.StartsWith("whsec_", secret, StringComparison.Ordinal);
        Assert.Equal((12_500_000L, "https://hooks.example.com/low"), await AlertAsync(kit, orgId));
        var later = await owner.GetAsync($"/orgs/{orgId}/wallet");
        Assert.DoesNotContain(secret, later.Body, StringComparison.Ordinal);
        Assert.Equal("12.50", later.InputValue("Threshold"));
        Assert.Equal("https://hooks.example.com/low", later.InputValue("WebhookUrl"));
        Assert.DoesNotContain(secret, kit.Sluice.Logs.All, StringComparison.Ordinal);

        var off = await owner.SubmitAsync(later, "#alert-form", new() { ["Threshold"] = "", ["WebhookUrl"] = "" });
        Assert.Equal(HttpStatusCode.Redirect, off.Status);
        Assert.Null(await AlertAsync(kit, orgId));
    }

    [Fact]
    public async Task Members_and_viewers_without_billing_access_get_a_403_page_a_stranger_a_404_page_and_their_forged_posts_change_nothing()
    {
        await using var stripe = await WalletStripe.StartAsync();
        await using var kit = await ConsoleKit.StartAsync(settings: WalletStripe.Settings(stripe));
        var (owner, orgId) = await kit.OwnerAsync("owner@example.com");
        var member = await kit.AddMemberAsync(owner, orgId, "member@example.com", "member");
        var viewer = await kit.AddMemberAsync(owner, orgId, "viewer@example.com", "viewer");
        var billing = await kit.AddMemberAsync(owner, orgId, "billing@example.com", "billing");
        using var stranger = await kit.SignUpAsync("stranger@example.com");
        var code = (await CodesAsync(kit, 3_000_000, 1)).Single();

        var missing = await stranger.GetAsync($"/orgs/{orgId}/wallet");
        var billingPage = await billing.GetAsync($"/orgs/{orgId}/wallet");
        Assert.Equal(HttpStatusCode.NotFound, missing.Status);
        Assert.Equal(HttpStatusCode.OK, billingPage.Status);
        Assert.NotNull(billingPage.Find("#redeem-form"));
        Assert.NotNull(billingPage.Find("#alert-form"));
        Assert.Contains($"/orgs/{orgId}/wallet", (await billing.GetAsync($"/orgs/{orgId}")).Body, StringComparison.Ordinal);

        foreach (var person in new[] { member, viewer })
        {
            var denied = await person.GetAsync($"/orgs/{orgId}/wallet");
            Assert.Equal(HttpStatusCode.Forbidden, denied.Status);
            Assert.Contains("403", denied.Body, StringComparison.Ordinal);
            Assert.DoesNotContain("#balance", denied.Body, StringComparison.Ordinal);
            var overview = await person.GetAsync($"/orgs/{orgId}");
            Assert.DoesNotContain($"/orgs/{orgId}/wallet", overview.Body, StringComparison.Ordinal);
            using var statement = await person.Http.GetAsync($"orgs/{orgId}/wallet?handler=Statement&month=2026-11&format=csv");
            Assert.Equal(HttpStatusCode.Forbidden, statement.StatusCode);

            // Forged posts with a valid token of their own session: refused, nothing changes.
            foreach (var (handler, fields) in new (string, KeyValuePair<string, string>[])[]
            {
                ("Redeem", [new("Code", code)]),
                ("Alert", [new("Threshold", "5"), new("WebhookUrl", "https://hooks.example.com/x")]),
                ("TopUp", [new("Amount", "10")]),
            })
            {
                var token = (await person.GetAsync($"/orgs/{orgId}")).Find("form input[name=__RequestVerificationToken]")!.GetAttribute("value")!;
                var forged = await person.PostAsync($"/orgs/{orgId}/wallet?handler={handler}", [.. fields, new("__RequestVerificationToken", token)]);
                Assert.Equal(HttpStatusCode.Forbidden, forged.Status);
            }
        }

        Assert.Empty(stripe.Requests);
        Assert.Null(await AlertAsync(kit, orgId));
        var redeemed = await billing.SubmitAsync(billingPage, "#redeem-form", new() { ["Code"] = code });
        Assert.Contains("3.00 USD added", redeemed.Find(".notice")!.TextContent, StringComparison.Ordinal);
    }

    private const int WalletPageModelPageSize = Sluice.WebConsole.Pages.Wallet.WalletModel.PageSize;

    private static async Task<List<string>> CodesAsync(ConsoleKit kit, long micros, int count)
    {
        using var op = await kit.OperatorAsync();
        using var created = await op.Http.PostAsJsonAsync("api/v1/admin/redemption-codes", new { amountMicros = micros, expiresAt = DateTimeOffset.UtcNow.AddDays(30), count });
        Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        return [.. (await created.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("codes").EnumerateArray().Select(c => c.GetString()!)];
    }

    private static async Task<(long, string)?> AlertAsync(ConsoleKit kit, Guid orgId)
    {
        await using var db = kit.Database.CreateContext();
        var org = await db.Organizations.AsNoTracking().SingleAsync(o => o.Id == orgId);
        return org.LowBalanceThresholdMicros is { } t ? (t, org.LowBalanceWebhookUrl!) : null;
    }
}

/// <summary>The wallet page in real Chromium, on a desktop and a phone.</summary>
[Collection(RealProcessLoad.Name)]
public sealed class WalletBrowserTests
{
    [Fact]
    public async Task A_billing_manager_redeems_a_code_pays_by_card_and_comes_back_to_a_pending_notice_on_desktop_and_phone()
    {
        if (BrowserKit.Unavailable() is { } why)
        {
            CrossCheck.Unavailable(why);
        }

        await using var stripe = await WalletStripe.StartAsync(returnToSuccessUrl: true);
        await using var kit = await ConsoleKit.StartAsync(settings: WalletStripe.Settings(stripe));
        var (owner, orgId) = await kit.OwnerAsync("owner@example.com");
        await kit.AddMemberAsync(owner, orgId, "billing@example.com", "billing");
        using var op = await kit.OperatorAsync();
        using var created = await op.Http.PostAsJsonAsync("api/v1/admin/redemption-codes", new { amountMicros = 40_000_000, expiresAt = DateTimeOffset.UtcNow.AddDays(30), count = 1 });
        var code = (await created.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("codes")[0].GetString()!;

        await using (var browser = await BrowserKit.OpenAsync(kit.RootUrl))
        {
            var page = browser.Page;
            await BrowserSteps.SignInAsync(page, "billing@example.com");
            await page.GotoAsync($"/orgs/{orgId}/wallet");
            await page.GetByLabel("Redemption code").FillAsync(code);
            await page.GetByRole(AriaRole.Button, new() { Name = "Redeem code" }).ClickAsync();
            await Assertions.Expect(page.Locator(".notice")).ToContainTextAsync("40.00 USD added");
            await Assertions.Expect(page.Locator("#balance")).ToContainTextAsync("40.00 USD");

            await page.GetByLabel("Amount (USD)").FillAsync("20");
            await page.GetByRole(AriaRole.Button, new() { Name = "Pay by card" }).ClickAsync();
            await page.WaitForURLAsync("**/wallet?done=paid");
            await Assertions.Expect(page.Locator(".notice")).ToContainTextAsync("being confirmed");
            await browser.ScreenshotAsync("wallet-desktop");
            browser.AssertSameOriginOnly();
            browser.AssertNoScriptErrors();
        }

        await using (var phone = await BrowserKit.OpenAsync(kit.RootUrl, BrowserKit.Phone))
        {
            var page = phone.Page;
            await BrowserSteps.SignInAsync(page, "billing@example.com");
            await page.GotoAsync($"/orgs/{orgId}/wallet");
            await page.GetByLabel("Threshold (USD)").FillAsync("-1");
            await page.GetByLabel("Webhook URL").FillAsync("https://hooks.example.com/low");
            await page.GetByRole(AriaRole.Button, new() { Name = "Save alert" }).ClickAsync();
            await Assertions.Expect(page.Locator("[data-valmsg-for=Threshold]")).ToContainTextAsync("positive");
            Assert.Equal("-1", await page.GetByLabel("Threshold (USD)").InputValueAsync());
            var width = await page.EvaluateAsync<int>("() => document.documentElement.scrollWidth");
            Assert.True(width <= 390, $"the wallet page is {width}px wide on a 390px phone");
            await phone.ScreenshotAsync("wallet-phone");
            phone.AssertSameOriginOnly();
            phone.AssertNoScriptErrors();
        }
    }
}

/// <summary>Stripe's Checkout Sessions endpoint on loopback: records what it was sent and answers a session whose page is <see cref="CheckoutUrl"/> (or, for a browser, the success URL it was given, as if the person had paid).</summary>
internal sealed class WalletStripe : IAsyncDisposable
{
    public const string CheckoutUrl = "https://checkout.stripe.test/cs_console_1";

    private readonly WebApplication _app;

    private WalletStripe(WebApplication app) => _app = app;

    public ConcurrentQueue<string> Requests { get; } = new();

    public string BaseUrl => _app.Urls.First() + "/";

    public static Dictionary<string, string?> Settings(WalletStripe stripe) => new()
    {
        ["Billing:Stripe:SecretKey"] = "sk_test_console",
        ["Billing:Stripe:WebhookSecret"] = TopUpTests.WebhookSecret,
        ["Billing:Stripe:ApiBase"] = stripe.BaseUrl,
    };

    public static async Task<WalletStripe> StartAsync(bool returnToSuccessUrl = false)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        var app = builder.Build();
        var stripe = new WalletStripe(app);
        app.MapPost("/v1/checkout/sessions", async (HttpContext context) =>
        {
            var form = await context.Request.ReadFormAsync();
            using var reader = new StreamReader(context.Request.Body);
            stripe.Requests.Enqueue(string.Join('&', form.Select(f => $"{Uri.EscapeDataString(f.Key)}={Uri.EscapeDataString(f.Value.ToString())}")));
            return Results.Json(new { id = "cs_console_1", url = returnToSuccessUrl ? form["success_url"].ToString() : CheckoutUrl });
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

/// <summary>The wallet page's queries (ledger pages with balance after, statement months) on each database.</summary>
public abstract class WalletLedgerQueryTests(DatabaseProvider provider)
{
    [Fact]
    public async Task Ledger_pages_carry_the_balance_after_each_movement_and_the_months_start_at_the_first_movement()
    {
        await using var kit = await ConsoleKit.StartAsync(provider);
        var (owner, orgId) = await kit.OwnerAsync("ledger@example.com");
        using var op = await kit.OperatorAsync();
        for (var i = 1; i <= 7; i++)
        {
            using var credit = await op.Http.PostAsJsonAsync($"api/v1/admin/orgs/{orgId}/wallet/credits", new { amountMicros = i * 1_000_000, reason = $"credit {i}" });
            Assert.Equal(HttpStatusCode.Created, credit.StatusCode);
        }

        using var scope = kit.Sluice.Services.CreateScope();
        var wallets = scope.ServiceProvider.GetRequiredService<Sluice.Billing.WalletService>();
        var first = await wallets.EntriesAsync(orgId, 1, 3, default);
        var last = await wallets.EntriesAsync(orgId, 3, 3, default);
        var months = await scope.ServiceProvider.GetRequiredService<Sluice.Billing.Statements>().MonthsAsync(orgId, DateTimeOffset.UtcNow.AddMonths(2), default);

        Assert.Equal([(7_000_000L, 28_000_000L), (6_000_000L, 21_000_000L), (5_000_000L, 15_000_000L)], first.Entries.Select(e => (e.AmountMicros, e.BalanceAfterMicros)));
        Assert.True(first.HasMore);
        Assert.Equal([(1_000_000L, 1_000_000L)], last.Entries.Select(e => (e.AmountMicros, e.BalanceAfterMicros)));
        Assert.False(last.HasMore);
        Assert.Equal(3, months.Count);
        Assert.Equal(DateTimeOffset.UtcNow.ToString("yyyy-MM", System.Globalization.CultureInfo.InvariantCulture), months[^1]);
    }
}

public sealed class SqliteWalletLedgerQueryTests() : WalletLedgerQueryTests(DatabaseProvider.Sqlite);

public sealed class PostgresWalletLedgerQueryTests() : WalletLedgerQueryTests(DatabaseProvider.Postgres);
