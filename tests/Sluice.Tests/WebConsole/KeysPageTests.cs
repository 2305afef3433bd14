using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using AngleSharp.Html.Dom;
using Microsoft.EntityFrameworkCore;
using Microsoft.Playwright;
using Sluice.Identity;
using Sluice.Tests.TestSupport;

namespace Sluice.Tests.WebConsole;

/// <summary>
/// The API keys page: the list (metadata only), creating a key with every option (the secret shown once, in the post's
/// own answer, stored only as a hash), scopes bounded by the role, rotation, revocation (the key is then refused on
/// /v1), bad input shown beside the fields with nothing created, and who may see and change what.
/// </summary>
public sealed class KeysPageTests : IAsyncLifetime
{
    private ConsoleKit _kit = null!;

    public async ValueTask InitializeAsync() => _kit = await ConsoleKit.StartAsync();

    public async ValueTask DisposeAsync() => await _kit.DisposeAsync();

    [Fact]
    public async Task An_owner_creates_a_key_with_every_option_and_its_secret_is_shown_once_and_stored_only_as_a_hash()
    {
        var (owner, orgId) = await _kit.OwnerAsync("keys-owner@example.com");
        using var _ = owner;
        var page = await owner.GetAsync($"/orgs/{orgId}/keys");
        Assert.Equal(HttpStatusCode.OK, page.Status);
        Assert.Contains(page.FindAll("input[name=Scopes]"), box => box.GetAttribute("value") == "management:write");
        Assert.Contains(page.FindAll("input[name=Models]"), box => box.GetAttribute("value") == "echo");
        var expires = DateTime.UtcNow.AddDays(30);

        var created = await owner.SubmitKeysFormAsync(page, new()
        {
            ["Name"] = "CI pipeline",
            ["Models"] = "echo",
            ["ExpiresAt"] = expires.ToString("yyyy-MM-ddTHH:mm", System.Globalization.CultureInfo.InvariantCulture),
            ["RequestsPerMinute"] = "60",
            ["TokensPerMinute"] = "10000",
            ["SpendLimitDaily"] = "1.5",
            ["SpendLimitMonthly"] = "20",
            ["SpendLimitTotal"] = "100",
        }, scopes: ["inference", "management:read"]);

        Assert.Equal(HttpStatusCode.OK, created.Status);
        var secret = created.Find(".secret code")?.TextContent.Trim();
        Assert.NotNull(secret);
        Assert.StartsWith(ApiKeyFormat.Prefix, secret);
        Assert.Equal("new-key-secret", created.Find(".secret code")!.Id);
        Assert.NotNull(created.Find("button[type=button][data-copy=new-key-secret]"));
        Assert.Contains("only time", created.Find(".new-key .warning")!.TextContent);
        Assert.Null(created.Location);
        Assert.Contains("no-store", created.Headers["cache-control"]);

        var row = Assert.Single(created.FindAll("table.keys tbody tr"));
        var rowText = Normalize(row.TextContent);
        Assert.Contains("CI pipeline", rowText);
        Assert.Contains("inference", rowText);
        Assert.Contains("management:read", rowText);
        Assert.DoesNotContain("management:write", rowText);
        Assert.Contains("60 requests/min", rowText);
        Assert.Contains("10,000 tokens/min", rowText);
        Assert.Contains("1.50 USD a day", rowText);
        Assert.Contains("20.00 USD a month", rowText);
        Assert.Contains("100.00 USD in all", rowText);
        Assert.Contains("keys-owner@example.com", rowText);
        Assert.Contains(expires.ToString("yyyy-MM-dd HH:mm", System.Globalization.CultureInfo.InvariantCulture), rowText);
        Assert.Contains("active", rowText);
        Assert.DoesNotContain(secret, row.InnerHtml); // the list shows the prefix only

        await using (var db = _kit.Database.CreateContext())
        {
            var key = await db.ApiKeys.AsNoTracking().SingleAsync(k => k.OrganizationId == orgId);
            Assert.Equal(KeyScopes.Inference | KeyScopes.ManagementRead, key.Scopes);
            Assert.Equal("echo", key.AllowedModels);
            Assert.Equal((1_500_000L, 20_000_000L, 100_000_000L), (key.SpendLimitDailyMicros!.Value, key.SpendLimitMonthlyMicros!.Value, key.SpendLimitTotalMicros!.Value));
            Assert.Equal((60, 10_000), (key.RequestsPerMinute!.Value, key.TokensPerMinute!.Value));
            Assert.NotEqual(secret, key.SecretHash);
            Assert.True(global::Sluice.Crypto.Bcrypt.Verify(secret, key.SecretHash));
        }

        Canary.AssertAbsent(await Canary.DumpDatabaseAsync(_kit.Database), secret, "the database");
        Canary.AssertAbsent(_kit.Sluice.Logs.All, secret, "the logs");

        // Shown once: the page again, and the list, never show it.
        var again = await owner.GetAsync($"/orgs/{orgId}/keys");
        Assert.Null(again.Find(".secret"));
        Assert.DoesNotContain(secret, again.Body, StringComparison.Ordinal);

        // The key works, for what it was given.
        using var client = KeyClient(secret);
        using var models = await client.GetAsync("v1/models");
        Assert.Equal(HttpStatusCode.OK, models.StatusCode);
        Assert.Contains("\"echo\"", await models.Content.ReadAsStringAsync(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Bad_input_is_shown_beside_each_field_keeps_what_was_typed_and_creates_nothing()
    {
        var (owner, orgId) = await _kit.OwnerAsync("keys-bad@example.com");
        using var _ = owner;
        var page = await owner.GetAsync($"/orgs/{orgId}/keys");

        var emptyName = await owner.SubmitKeysFormAsync(page, new() { ["Name"] = "  ", ["RequestsPerMinute"] = "30" });
        Assert.Equal(HttpStatusCode.OK, emptyName.Status);
        Assert.Contains("required", emptyName.FieldError("Name"));
        Assert.Equal("30", emptyName.InputValue("RequestsPerMinute"));
        Assert.Null(emptyName.Find(".secret"));

        var refused = await owner.SubmitKeysFormAsync(await owner.GetAsync($"/orgs/{orgId}/keys"), new()
        {
            ["Name"] = "Kept name",
            ["ExpiresAt"] = "2020-01-01T10:00",
            ["RequestsPerMinute"] = "-5",
            ["TokensPerMinute"] = "0",
            ["SpendLimitDaily"] = "-1",
            ["SpendLimitTotal"] = "12.5",
        }, models: ["echo", "no-such-model"]);
        Assert.Equal(HttpStatusCode.OK, refused.Status);
        Assert.Contains("not a model", refused.FieldError("Models"));
        Assert.Contains("positive", refused.FieldError("SpendLimitDaily"));
        Assert.Equal("Kept name", refused.InputValue("Name"));
        Assert.Equal("-5", refused.InputValue("RequestsPerMinute"));
        Assert.Equal("12.5", refused.InputValue("SpendLimitTotal"));
        Assert.True(((IHtmlInputElement)refused.Find("input[name=Models][value=echo]")!).IsChecked, "the ticked model stays ticked");

        // The service's own checks (past expiry, non-positive rates), once the page's pass.
        var serviceRefused = await owner.SubmitKeysFormAsync(await owner.GetAsync($"/orgs/{orgId}/keys"), new()
        {
            ["Name"] = "Kept name",
            ["ExpiresAt"] = "2020-01-01T10:00",
            ["RequestsPerMinute"] = "-5",
            ["TokensPerMinute"] = "0",
        });
        Assert.Contains("future", serviceRefused.FieldError("ExpiresAt"));
        Assert.Contains("positive", serviceRefused.FieldError("RequestsPerMinute"));
        Assert.Contains("positive", serviceRefused.FieldError("TokensPerMinute"));
        Assert.StartsWith("2020-01-01T10:00", serviceRefused.InputValue("ExpiresAt"));

        var noScope = await owner.SubmitKeysFormAsync(await owner.GetAsync($"/orgs/{orgId}/keys"), new() { ["Name"] = "No scope" }, scopes: []);
        Assert.Contains("at least one scope", noScope.FieldError("Scopes"));

        await using var db = _kit.Database.CreateContext();
        Assert.Equal(0, await db.ApiKeys.CountAsync(k => k.OrganizationId == orgId));
    }

    [Fact]
    public async Task An_owner_rotates_and_revokes_a_key_and_the_revoked_key_is_refused_on_v1()
    {
        var (owner, orgId) = await _kit.OwnerAsync("keys-rotate@example.com");
        using var _ = owner;
        var created = await owner.SubmitKeysFormAsync(await owner.GetAsync($"/orgs/{orgId}/keys"), new() { ["Name"] = "Rotating" });
        var first = created.Find(".secret code")!.TextContent.Trim();

        var rotated = await owner.SubmitAsync(created, "form[data-confirm^='Rotate']");
        Assert.Equal(HttpStatusCode.OK, rotated.Status);
        var second = rotated.Find(".secret code")!.TextContent.Trim();
        Assert.StartsWith(ApiKeyFormat.Prefix, second);
        Assert.NotEqual(first, second);
        Assert.Contains("rotated", rotated.Find(".notice")!.TextContent);
        Assert.Contains("rotating", Normalize(rotated.Find("table.keys tbody tr")!.TextContent));
        using (var client = KeyClient(second))
        {
            Assert.Equal(HttpStatusCode.OK, (await client.GetAsync("v1/models")).StatusCode);
        }

        var revoked = await owner.SubmitAsync(await owner.GetAsync($"/orgs/{orgId}/keys"), "form[data-confirm^='Revoke']");
        Assert.Equal(HttpStatusCode.Redirect, revoked.Status);
        Assert.Equal($"/orgs/{orgId}/keys?done=revoked", revoked.Location);
        var after = await owner.GetAsync(revoked.Location!);
        Assert.Contains("revoked", after.Find(".notice")!.TextContent);
        Assert.Contains("revoked", after.Find(".key-status")!.TextContent);
        Assert.Empty(after.FindAll("form[data-confirm]"));
        using (var client = KeyClient(second))
        {
            Assert.Equal(HttpStatusCode.Unauthorized, (await client.GetAsync("v1/models")).StatusCode);
        }

        using (var client = KeyClient(first))
        {
            Assert.Equal(HttpStatusCode.Unauthorized, (await client.GetAsync("v1/models")).StatusCode);
        }
    }

    [Fact]
    public async Task A_member_may_not_grant_management_write_and_changes_only_the_keys_they_created()
    {
        var (owner, orgId) = await _kit.OwnerAsync("keys-team-owner@example.com");
        using var _ = owner;
        await owner.SubmitKeysFormAsync(await owner.GetAsync($"/orgs/{orgId}/keys"), new() { ["Name"] = "Owner's key" });
        using var member = await _kit.AddMemberAsync(owner, orgId, "keys-member@example.com", "member");

        var page = await member.GetAsync($"/orgs/{orgId}/keys");
        Assert.Equal(HttpStatusCode.OK, page.Status);
        Assert.Equal(["inference", "batch", "management:read"], page.FindAll("input[name=Scopes]").Select(b => b.GetAttribute("value")));
        Assert.Empty(page.FindAll("form[data-confirm]")); // the owner's key: no rotate, no revoke

        var forged = await member.SubmitKeysFormAsync(page, new() { ["Name"] = "Too strong" }, scopes: ["inference", "management:write"]);
        Assert.Equal(HttpStatusCode.Forbidden, forged.Status);

        var own = await member.SubmitKeysFormAsync(await member.GetAsync($"/orgs/{orgId}/keys"), new() { ["Name"] = "Member's key" });
        Assert.NotNull(own.Find(".secret code"));
        Assert.Equal(2, own.FindAll("form[data-confirm]").Count); // rotate and revoke, on their own key only

        Guid ownerKey;
        await using (var db = _kit.Database.CreateContext())
        {
            Assert.Equal(["Member's key", "Owner's key"], (await db.ApiKeys.Where(k => k.OrganizationId == orgId).Select(k => k.Name).ToListAsync()).Order());
            ownerKey = await db.ApiKeys.Where(k => k.Name == "Owner's key").Select(k => k.Id).SingleAsync();
        }

        // A forged revocation of the owner's key (with a valid token from the member's own page) is refused.
        var token = own.Find("form[data-confirm^='Revoke'] input[name=__RequestVerificationToken]")!.GetAttribute("value")!;
        var refused = await member.PostAsync($"/orgs/{orgId}/keys?handler=Revoke&keyId={ownerKey}", [new("__RequestVerificationToken", token)]);
        Assert.Equal(HttpStatusCode.Forbidden, refused.Status);
        await using (var db = _kit.Database.CreateContext())
        {
            Assert.Null(await db.ApiKeys.Where(k => k.Id == ownerKey).Select(k => k.RevokedAt).SingleAsync());
        }
    }

    [Fact]
    public async Task A_viewer_sees_the_list_without_forms_and_a_forged_post_is_refused_billing_gets_403_and_a_stranger_404()
    {
        var (owner, orgId) = await _kit.OwnerAsync("keys-roles@example.com");
        using var _ = owner;
        await owner.SubmitKeysFormAsync(await owner.GetAsync($"/orgs/{orgId}/keys"), new() { ["Name"] = "Existing" });
        using var viewer = await _kit.AddMemberAsync(owner, orgId, "keys-viewer@example.com", "viewer");
        using var billing = await _kit.AddMemberAsync(owner, orgId, "keys-billing@example.com", "billing");
        using var stranger = await _kit.SignUpAsync("keys-stranger@example.com");

        var page = await viewer.GetAsync($"/orgs/{orgId}/keys");
        Assert.Equal(HttpStatusCode.OK, page.Status);
        Assert.Contains("Existing", page.Find("table.keys")!.TextContent);
        Assert.Null(page.Find("form.create-key"));
        Assert.Empty(page.FindAll("form[data-confirm]"));
        Assert.Contains(page.FindAll("nav.sidebar a"), a => a.TextContent == "API keys");
        Assert.DoesNotContain(page.FindAll("nav.sidebar a"), a => a.TextContent == "Playground");

        // A valid token (the sign-out form's) on a forged create and revoke: refused, nothing changes.
        string Token(ConsoleResponse from) => from.Find("form.signout input[name=__RequestVerificationToken]")!.GetAttribute("value")!;
        var forged = await viewer.PostAsync($"/orgs/{orgId}/keys", [new("__RequestVerificationToken", Token(page)), new("Name", "Forged"), new("Scopes", "inference")]);
        Assert.Equal(HttpStatusCode.Forbidden, forged.Status);
        Assert.Contains("text/html", forged.ContentType);
        Guid existing;
        await using (var db = _kit.Database.CreateContext())
        {
            existing = await db.ApiKeys.Where(k => k.OrganizationId == orgId).Select(k => k.Id).SingleAsync();
        }

        var forgedRevoke = await viewer.PostAsync($"/orgs/{orgId}/keys?handler=Revoke&keyId={existing}",
            [new("__RequestVerificationToken", Token(await viewer.GetAsync($"/orgs/{orgId}/keys")))]);
        Assert.Equal(HttpStatusCode.Forbidden, forgedRevoke.Status);
        await using (var db = _kit.Database.CreateContext())
        {
            var key = await db.ApiKeys.AsNoTracking().SingleAsync(k => k.OrganizationId == orgId);
            Assert.Null(key.RevokedAt);
        }

        var denied = await billing.GetAsync($"/orgs/{orgId}/keys");
        Assert.Equal(HttpStatusCode.Forbidden, denied.Status);
        Assert.Contains("text/html", denied.ContentType);
        var overview = await billing.GetAsync($"/orgs/{orgId}");
        Assert.DoesNotContain(overview.FindAll("nav.sidebar a"), a => a.TextContent == "API keys");

        var missing = await stranger.GetAsync($"/orgs/{orgId}/keys");
        Assert.Equal(HttpStatusCode.NotFound, missing.Status);
        Assert.Contains("text/html", missing.ContentType);
    }

    [Fact]
    public async Task The_model_choices_are_the_models_the_organization_may_call_under_its_data_policy()
    {
        await using var upstream = await FakeUpstream.StartAsync();
        using var op = await GatewayKit.OperatorAsync(_kit.Sluice);
        await GatewayKit.ProviderAsync(op, "up", upstream.BaseUrl);
        await GatewayKit.ModelAsync(op, "keeps-data");
        await GatewayKit.RouteAsync(op, "keeps-data", "up", "m", retainsData: true);
        await GatewayKit.ModelAsync(op, "clean");
        await GatewayKit.RouteAsync(op, "clean", "up", "m");
        var (owner, orgId) = await _kit.OwnerAsync("keys-policy@example.com");
        using var _ = owner;

        async Task<List<string?>> ChoicesAsync(string page, string selector) =>
            [.. (await owner.GetAsync($"/orgs/{orgId}/{page}")).FindAll(selector).Select(e => e.GetAttribute("value"))];

        await Eventually.TrueAsync(async () => (await ChoicesAsync("keys", "input[name=Models]")).Contains("keeps-data"), "the new models on the keys page");
        Assert.Contains("clean", await ChoicesAsync("keys", "input[name=Models]"));
        Assert.Contains("keeps-data", await ChoicesAsync("playground", "#chat-model option"));

        // Zero retention required: a route that keeps data is not the organization's to call, so it is not offered.
        using var patched = await owner.Http.PatchAsJsonAsync($"api/v1/orgs/{orgId}", new { requireZeroRetention = true });
        Assert.Equal(HttpStatusCode.OK, patched.StatusCode);
        await Eventually.TrueAsync(async () => !(await ChoicesAsync("keys", "input[name=Models]")).Contains("keeps-data"), "the retaining model to leave the choices");
        Assert.Equal(["clean", "echo"], (await ChoicesAsync("keys", "input[name=Models]")).Where(m => m is "clean" or "echo" or "keeps-data"));
        Assert.DoesNotContain("keeps-data", await ChoicesAsync("playground", "#chat-model option"));
        Assert.Contains("clean", await ChoicesAsync("playground", "#chat-model option"));

        var refused = await owner.SubmitKeysFormAsync(await owner.GetAsync($"/orgs/{orgId}/keys"), new() { ["Name"] = "Retaining" }, models: ["keeps-data"]);
        Assert.Contains("'keeps-data' is not a model", refused.FieldError("Models"));
        await using var db = _kit.Database.CreateContext();
        Assert.Equal(0, await db.ApiKeys.CountAsync(k => k.OrganizationId == orgId));
    }

    private HttpClient KeyClient(string secret)
    {
        var client = new HttpClient { BaseAddress = new Uri(_kit.RootUrl + "/") };
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", secret);
        return client;
    }

    private static string Normalize(string text) => string.Join(' ', text.Split((char[])[' ', '\n', '\r', '\t'], StringSplitOptions.RemoveEmptyEntries));
}

/// <summary>The keys page's create form, filled as a person would (several scopes or models ticked at once).</summary>
internal static class KeysPageForms
{
    public static async Task<ConsoleResponse> SubmitKeysFormAsync(
        this ConsoleClient client, ConsoleResponse page, Dictionary<string, string> fields, string[]? scopes = null, string[]? models = null)
    {
        var form = (IHtmlFormElement)(page.Find("form.create-key") ?? throw new InvalidOperationException("The page has no create form."));
        var pairs = ConsoleClient.FormPairs(form, fields);
        if (scopes is not null)
        {
            pairs.RemoveAll(p => p.Key == "Scopes");
            pairs.AddRange(scopes.Select(s => new KeyValuePair<string, string>("Scopes", s)));
        }

        if (models is not null)
        {
            pairs.RemoveAll(p => p.Key == "Models");
            pairs.AddRange(models.Select(m => new KeyValuePair<string, string>("Models", m)));
        }

        return await client.PostAsync(page.Url.PathAndQuery, pairs);
    }
}

/// <summary>The keys page in real Chromium: create a key, copy it to the clipboard, revoke it after confirming.</summary>
[Collection(RealProcessLoad.Name)]
public sealed class KeysPageBrowserTests : ConsoleBrowserTest
{
    [Fact]
    public async Task An_owner_creates_a_key_copies_it_to_the_clipboard_and_revokes_it_after_confirming()
    {
        var (owner, orgId) = await Kit.OwnerAsync("keys-browser@example.com", "Keys Browser Co");
        owner.Dispose();
        await using var browser = await BrowserKit.OpenAsync(Kit.RootUrl);
        var page = browser.Page;
        await BrowserSteps.SignInAsync(page, "keys-browser@example.com");
        await page.GotoAsync($"/orgs/{orgId}/keys");

        await page.GetByLabel("Name", new() { Exact = true }).FillAsync("Laptop");
        await page.GetByLabel("management:read").CheckAsync();
        await page.GetByLabel("Requests per minute").FillAsync("120");
        await page.GetByLabel("Per day").FillAsync("2.5");
        await page.GetByRole(AriaRole.Button, new() { Name = "Create key" }).ClickAsync();

        var secretBox = page.Locator("#new-key-secret");
        await secretBox.WaitForAsync();
        var secret = (await secretBox.TextContentAsync())!.Trim();
        Assert.StartsWith(ApiKeyFormat.Prefix, secret);
        await page.GetByRole(AriaRole.Button, new() { Name = "Copy" }).ClickAsync();
        await page.GetByRole(AriaRole.Button, new() { Name = "Copied" }).WaitForAsync();
        Assert.Equal(secret, await page.EvaluateAsync<string>("() => navigator.clipboard.readText()"));
        await page.EvaluateAsync("() => window.scrollTo(0, 0)");
        await browser.ScreenshotAsync("keys-created-desktop");

        // A reload shows the list, not the secret.
        await page.GotoAsync($"/orgs/{orgId}/keys");
        Assert.Equal(0, await page.Locator("#new-key-secret").CountAsync());
        Assert.DoesNotContain(secret, await page.ContentAsync(), StringComparison.Ordinal);
        await browser.ScreenshotAsync("keys-list-desktop");

        // Revoking asks first; dismissing keeps the key, accepting revokes it.
        page.Dialog += async (_, dialog) =>
        {
            if (dialog.Message.StartsWith("Revoke", StringComparison.Ordinal))
            {
                await dialog.AcceptAsync();
            }
            else
            {
                await dialog.DismissAsync();
            }
        };
        await page.GetByRole(AriaRole.Button, new() { Name = "Revoke key Laptop" }).ClickAsync();
        await page.WaitForURLAsync("**/keys?done=revoked");
        Assert.Equal("revoked", (await page.Locator(".key-status").TextContentAsync())!.Trim());
        browser.AssertSameOriginOnly();
        browser.AssertNoScriptErrors();

        await using var phone = await BrowserKit.OpenAsync(Kit.RootUrl, BrowserKit.Phone);
        await BrowserSteps.SignInAsync(phone.Page, "keys-browser@example.com");
        await phone.Page.GotoAsync($"/orgs/{orgId}/keys");
        await phone.ScreenshotAsync("keys-list-phone");
        var width = await phone.Page.EvaluateAsync<int>("() => document.documentElement.scrollWidth");
        var widest = await phone.Page.EvaluateAsync<string>("() => [...document.querySelectorAll('body *')].filter(e => e.getBoundingClientRect().right > 392).slice(0, 8).map(e => e.tagName + '.' + e.className + ' ' + Math.round(e.getBoundingClientRect().right)).join('; ')");
        Assert.True(width <= 390, $"the keys page is {width}px wide on a 390px phone: {widest}");
        phone.AssertSameOriginOnly();
        phone.AssertNoScriptErrors();
    }
}
