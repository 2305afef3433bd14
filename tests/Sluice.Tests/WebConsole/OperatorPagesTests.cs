using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using Sluice.Gateway;

namespace Sluice.Tests.WebConsole;

/// <summary>The operators' pages under /admin: only platform operators reach them, and each works through the same services as the admin API.</summary>
public sealed class OperatorPagesTests : IAsyncLifetime
{
    private static readonly string[] AdminPages = ["/admin/providers", "/admin/models", "/admin/orgs", "/admin/privacy", "/admin/legal-holds", "/admin/staff-access", "/admin/machines"];

    private ConsoleKit _kit = null!;

    public async ValueTask InitializeAsync() => _kit = await ConsoleKit.StartAsync();

    public async ValueTask DisposeAsync() => await _kit.DisposeAsync();

    [Fact]
    public async Task An_org_owner_who_is_not_an_operator_gets_403_pages_by_url_and_by_forged_post_and_no_operator_menu()
    {
        var (owner, orgId) = await _kit.OwnerAsync("owner@example.com");
        using var _ = owner;

        foreach (var path in AdminPages)
        {
            var page = await owner.GetAsync(path);
            Assert.True(page.Status == HttpStatusCode.Forbidden, $"{path} answered {(int)page.Status}");
            Assert.Equal("text/html", page.ContentType);
        }

        var overview = await owner.GetAsync($"/orgs/{orgId}");
        Assert.Empty(overview.FindAll("nav a[href^='/admin']"));

        // A post carrying the owner's own valid form token, aimed at the operator forms.
        var form = await owner.GetAsync("/orgs/new");
        var token = ConsoleClient.FormPairs((AngleSharp.Html.Dom.IHtmlFormElement)form.Find("main form")!, []).Where(p => p.Key != "Name").ToList();
        var forged = await owner.PostAsync("/admin/providers?handler=Create",
            [.. token, new("Name", "forged"), new("Kind", "openai-compatible"), new("BaseUrl", "http://127.0.0.1:9/v1/")]);
        var limits = await owner.PostAsync($"/admin/orgs?handler=Limits&orgId={orgId}", [.. token, new("RequestsPerMinute", "1")]);

        Assert.Equal(HttpStatusCode.Forbidden, forged.Status);
        Assert.Equal(HttpStatusCode.Forbidden, limits.Status);
        await using var db = _kit.Database.CreateContext();
        Assert.False(await db.Providers.AnyAsync(p => p.Name == "forged"));
        Assert.Null((await db.Organizations.SingleAsync(o => o.Id == orgId)).RequestsPerMinute);
    }

    [Fact]
    public async Task The_operator_sees_every_admin_page_in_the_menu_and_each_opens()
    {
        using var op = await _kit.OperatorAsync();
        foreach (var path in AdminPages)
        {
            var page = await op.GetAsync(path);
            Assert.True(page.Status == HttpStatusCode.OK, $"{path} answered {(int)page.Status}: {page.Text()}");
            Assert.NotNull(page.Find($"nav a[href='{path}']"));
        }
    }

    [Fact]
    public async Task An_operator_adds_a_provider_whose_key_is_never_rendered_back_nor_stored_in_clear_then_edits_and_deletes_it()
    {
        using var op = await _kit.OperatorAsync();
        const string Canary = "sk-canary-7f3a91d2c4e8b6";

        var done = await op.SubmitAsync(await op.GetAsync("/admin/providers"), "form[action*='handler=Create']",
            new() { ["Name"] = "local-vllm", ["Kind"] = "openai-compatible", ["BaseUrl"] = "http://127.0.0.1:8000/v1", ["ApiKey"] = Canary, ["MaxConcurrentRequests"] = "8" });

        Assert.Equal(HttpStatusCode.Redirect, done.Status);
        var list = await op.FollowAsync(done.Location!);
        var row = list.Find("tr[data-provider='local-vllm']")!;
        Assert.Contains("http://127.0.0.1:8000/v1/", row.TextContent);
        Assert.Contains("set", row.TextContent);
        Assert.DoesNotContain(Canary, list.Body);
        Assert.Contains("Provider added.", list.Text());

        await using (var db = _kit.Database.CreateContext())
        {
            var stored = await db.Providers.AsNoTracking().SingleAsync(p => p.Name == "local-vllm");
            Assert.NotNull(stored.ApiKeyCiphertext);
            Assert.DoesNotContain(Canary, stored.ApiKeyCiphertext);
        }

        var id = (await ProviderIdAsync("local-vllm")).ToString();
        var edit = await op.GetAsync($"/admin/providers?edit={id}");
        Assert.DoesNotContain(Canary, edit.Body);
        Assert.Equal("", edit.InputValue("EditApiKey"));
        var saved = await op.SubmitAsync(edit, "form[action*='handler=Update']", new() { ["EditBaseUrl"] = "http://127.0.0.1:8001/v1/", ["EditMaxConcurrentRequests"] = "" });
        Assert.Equal(HttpStatusCode.Redirect, saved.Status);
        var after = await op.FollowAsync(saved.Location!);
        Assert.Contains("http://127.0.0.1:8001/v1/", after.Find("tr[data-provider='local-vllm']")!.TextContent);
        Assert.Contains("no limit", after.Find("tr[data-provider='local-vllm']")!.TextContent);
        Assert.DoesNotContain(Canary, after.Body);

        AssertNotInDatabaseFiles(Canary);

        var deleted = await op.SubmitAsync(after, $"tr[data-provider='local-vllm'] form");
        Assert.Equal(HttpStatusCode.Redirect, deleted.Status);
        Assert.Null((await op.FollowAsync(deleted.Location!)).Find("tr[data-provider='local-vllm']"));
    }

    [Fact]
    public async Task A_provider_with_a_base_url_that_is_not_http_is_refused_beside_the_field_keeping_what_was_typed_but_the_key()
    {
        using var op = await _kit.OperatorAsync();
        var refused = await op.SubmitAsync(await op.GetAsync("/admin/providers"), "form[action*='handler=Create']",
            new() { ["Name"] = "ftp-one", ["BaseUrl"] = "ftp://files.example.com/", ["ApiKey"] = "sk-typed-secret-123", ["MaxConcurrentRequests"] = "4" });

        Assert.Equal(HttpStatusCode.OK, refused.Status);
        Assert.Contains("http(s)", refused.FieldError("BaseUrl"));
        Assert.Equal("ftp://files.example.com/", refused.InputValue("BaseUrl"));
        Assert.Equal("ftp-one", refused.InputValue("Name"));
        Assert.Equal("4", refused.InputValue("MaxConcurrentRequests"));
        Assert.True(string.IsNullOrEmpty(refused.InputValue("ApiKey")));
        Assert.DoesNotContain("sk-typed-secret-123", refused.Body);
        await using var db = _kit.Database.CreateContext();
        Assert.False(await db.Providers.AnyAsync());
    }

    [Fact]
    public async Task The_providers_page_shows_each_routes_circuit_closed_then_open_since_it_opened()
    {
        using var op = await _kit.OperatorAsync();
        await AddProviderAsync(op, "flaky");
        await AddModelAsync(op, "m-flaky");
        await AddRouteAsync(op, "m-flaky", "flaky", "upstream-flaky");

        var selector = _kit.Sluice.Services.GetRequiredService<RouteSelector>();
        var catalog = _kit.Sluice.Services.GetRequiredService<Catalog>();
        await catalog.RefreshAsync(CancellationToken.None);
        var routes = catalog.Find("m-flaky")!.Routes;
        var before = await op.GetAsync("/admin/providers");
        Assert.Contains("closed", before.Find($"tr[data-route='{routes[0].Id}'] td.circuit")!.TextContent);
        Assert.Null(before.Find($"tr[data-route='{routes[0].Id}'] td.circuit .badge.danger"));
        var threshold = _kit.Sluice.Services.GetRequiredService<IOptions<GatewayOptions>>().Value.CircuitBreakerFailures;
        for (var i = 0; i < threshold; i++)
        {
            var route = selector.Next(routes, new HashSet<Guid>())!;
            selector.Completed(route, success: false);
        }

        var after = await op.GetAsync("/admin/providers");
        var circuit = after.Find($"tr[data-route='{routes[0].Id}'] td.circuit")!;
        Assert.Contains("open", circuit.TextContent);
        Assert.Contains("since", circuit.TextContent);
        Assert.NotNull(circuit.QuerySelector(".badge.danger"));
    }

    [Fact]
    public async Task An_operator_adds_a_model_a_route_a_price_and_an_alias_and_removes_the_alias()
    {
        using var op = await _kit.OperatorAsync();
        await AddProviderAsync(op, "up");
        await AddModelAsync(op, "m-1");
        await AddRouteAsync(op, "m-1", "up", "llama-3");

        var page = await op.GetAsync("/admin/models");
        var routeId = page.Find("section[data-model='m-1'] tr[data-route]")!.GetAttribute("data-route")!;
        var priced = await op.SubmitAsync(page, "form[action*='handler=Price']",
            new() { ["PriceRoute"] = routeId, ["InputPrice"] = "0.5", ["OutputPrice"] = "1.25" });
        Assert.Equal(HttpStatusCode.Redirect, priced.Status);
        var aliased = await op.SubmitAsync(await op.GetAsync("/admin/models"), "form[action*='handler=Alias']", new() { ["Alias"] = "fast", ["AliasModel"] = "m-1" });
        Assert.Equal(HttpStatusCode.Redirect, aliased.Status);

        var shown = await op.FollowAsync(aliased.Location!);
        var section = shown.Find("section[data-model='m-1']")!;
        Assert.Contains("0.50 USD / 1.25 USD", section.QuerySelector("td.price")!.TextContent);
        Assert.Contains("zero retention", section.TextContent);
        Assert.Contains("fast", section.TextContent);
        await using (var db = _kit.Database.CreateContext())
        {
            var price = await db.RoutePrices.AsNoTracking().SingleAsync();
            Assert.Equal((500_000L, 1_250_000L), (price.InputPerMillionMicros, price.OutputPerMillionMicros));
        }

        var removed = await op.SubmitAsync(shown, "section[data-model='m-1'] form[action*='handler=DeleteAlias']");
        Assert.Equal(HttpStatusCode.Redirect, removed.Status);
        Assert.DoesNotContain("fast", (await op.FollowAsync(removed.Location!)).Find("section[data-model='m-1']")!.TextContent);
    }

    [Fact]
    public async Task A_negative_price_and_a_route_to_an_unknown_provider_are_refused_beside_their_fields_keeping_the_input()
    {
        using var op = await _kit.OperatorAsync();
        await AddProviderAsync(op, "up");
        await AddModelAsync(op, "m-2");
        await AddRouteAsync(op, "m-2", "up", "u-2");

        var unknown = await op.SubmitAsync(await op.GetAsync("/admin/models"), "form[action*='handler=Route']",
            new() { ["RouteModel"] = "m-2", ["Provider"] = "nobody", ["UpstreamModel"] = "u-x", ["Priority"] = "3", ["RetainsData"] = "no", ["TrainsOnData"] = "no" });
        Assert.Equal(HttpStatusCode.OK, unknown.Status);
        Assert.Contains("no such provider", unknown.FieldError("Provider"));
        Assert.Equal(("nobody", "u-x", "3"), (unknown.InputValue("Provider"), unknown.InputValue("UpstreamModel"), unknown.InputValue("Priority")));

        var page = await op.GetAsync("/admin/models");
        var routeId = page.Find("section[data-model='m-2'] tr[data-route]")!.GetAttribute("data-route")!;
        var negative = await op.SubmitAsync(page, "form[action*='handler=Price']", new() { ["PriceRoute"] = routeId, ["InputPrice"] = "-1", ["OutputPrice"] = "2" });
        Assert.Equal(HttpStatusCode.OK, negative.Status);
        Assert.NotEqual("", negative.FieldError("InputPrice"));
        Assert.Equal(("-1", "2"), (negative.InputValue("InputPrice"), negative.InputValue("OutputPrice")));

        var badModel = await op.SubmitAsync(negative, "form[action*='handler=Model']", new() { ["NewModelId"] = "has spaces" });
        Assert.NotEqual("", badModel.FieldError("NewModelId"));
        Assert.Equal("has spaces", badModel.InputValue("NewModelId"));

        await using var db = _kit.Database.CreateContext();
        Assert.Equal(1, await db.ModelRoutes.CountAsync());
        Assert.False(await db.RoutePrices.AnyAsync());
    }

    [Fact]
    public async Task An_operator_sets_an_organizations_limits_and_grants_it_credit_and_bad_limits_are_refused_beside_the_field()
    {
        var (owner, orgId) = await _kit.OwnerAsync("limits@example.com", "Limited Co");
        owner.Dispose();
        using var op = await _kit.OperatorAsync();

        var list = await op.GetAsync("/admin/orgs");
        Assert.Contains("Limited Co", list.Find($"tr[data-org='{orgId}']")!.TextContent);
        var form = await op.GetAsync($"/admin/orgs?org={orgId}");

        var bad = await op.SubmitAsync(form, "form#limits", new() { ["RequestsPerMinute"] = "-5", ["TokensPerMinute"] = "1000" });
        Assert.Equal(HttpStatusCode.OK, bad.Status);
        Assert.Contains("positive", bad.FieldError("RequestsPerMinute"));
        Assert.Equal(("-5", "1000"), (bad.InputValue("RequestsPerMinute"), bad.InputValue("TokensPerMinute")));

        var good = await op.SubmitAsync(bad, "form#limits", new() { ["RequestsPerMinute"] = "60", ["TokensPerMinute"] = "" });
        Assert.Equal(HttpStatusCode.Redirect, good.Status);

        var noReason = await op.SubmitAsync(await op.GetAsync($"/admin/orgs?org={orgId}"), "form#credit", new() { ["Amount"] = "12.5", ["Reason"] = "" });
        Assert.NotEqual("", noReason.FieldError("Reason"));
        Assert.Equal("12.5", noReason.InputValue("Amount"));
        var credited = await op.SubmitAsync(await op.GetAsync($"/admin/orgs?org={orgId}"), "form#credit", new() { ["Amount"] = "12.5", ["Reason"] = "pilot" });
        Assert.Equal(HttpStatusCode.Redirect, credited.Status);

        var row = (await op.FollowAsync(credited.Location!)).Find($"tr[data-org='{orgId}']")!.TextContent;
        Assert.Contains("60 req/min", row);
        Assert.Contains("no token limit", row);
        Assert.Contains("12.50 USD", row);
        await using var db = _kit.Database.CreateContext();
        var org = await db.Organizations.AsNoTracking().SingleAsync(o => o.Id == orgId);
        Assert.Equal((60, (int?)null), (org.RequestsPerMinute, org.TokensPerMinute));
    }

    [Fact]
    public async Task An_operator_places_and_releases_a_legal_hold_each_with_a_reason_required_beside_its_field()
    {
        var (owner, orgId) = await _kit.OwnerAsync("held@example.com", "Held Co");
        owner.Dispose();
        using var op = await _kit.OperatorAsync();

        var noReason = await op.SubmitAsync(await op.GetAsync("/admin/legal-holds"), "form[action*='handler=Place']", new() { ["Scope"] = "org", ["OrganizationId"] = orgId.ToString() });
        Assert.Equal(HttpStatusCode.OK, noReason.Status);
        Assert.NotEqual("", noReason.FieldError("Reason"));
        var placed = await op.SubmitAsync(noReason, "form[action*='handler=Place']", new() { ["Reason"] = "Case 42" });
        Assert.Equal(HttpStatusCode.Redirect, placed.Status);

        var list = await op.FollowAsync(placed.Location!);
        var row = Assert.Single(list.FindAll("tr[data-hold]"));
        Assert.Contains("Held Co", row.TextContent);
        Assert.Contains("Case 42", row.TextContent);

        var unexplained = await op.SubmitAsync(list, "tr[data-hold] form", new() { ["ReleaseReason"] = "" });
        Assert.NotEqual("", unexplained.FieldError("ReleaseReason"));
        var released = await op.SubmitAsync(unexplained, "tr[data-hold] form", new() { ["ReleaseReason"] = "Case closed" });
        Assert.Equal(HttpStatusCode.Redirect, released.Status);
        Assert.Empty((await op.FollowAsync(released.Location!)).FindAll("tr[data-hold]"));
        await using var db = _kit.Database.CreateContext();
        Assert.NotNull((await db.LegalHolds.AsNoTracking().SingleAsync()).ReleasedAt);
    }

    [Fact]
    public async Task An_operator_requests_staff_access_with_a_justification_and_withdraws_it()
    {
        var (owner, orgId) = await _kit.OwnerAsync("grant@example.com", "Grant Co");
        owner.Dispose();
        using var op = await _kit.OperatorAsync();

        var bad = await op.SubmitAsync(await op.GetAsync("/admin/staff-access"), "form[action*='handler=Request']",
            new() { ["OrganizationId"] = orgId.ToString(), ["Reason"] = "Ticket 7", ["Hours"] = "0" });
        Assert.NotEqual("", bad.FieldError("Hours"));
        Assert.Equal("Ticket 7", bad.InputValue("Reason"));

        var asked = await op.SubmitAsync(bad, "form[action*='handler=Request']", new() { ["Hours"] = "2" });
        Assert.Equal(HttpStatusCode.Redirect, asked.Status);
        var list = await op.FollowAsync(asked.Location!);
        var row = Assert.Single(list.FindAll("tr[data-grant]"));
        Assert.Contains("Grant Co", row.TextContent);
        Assert.Contains("requested", row.TextContent);

        var withdrawn = await op.SubmitAsync(list, "tr[data-grant] form");
        Assert.Equal(HttpStatusCode.Redirect, withdrawn.Status);
        Assert.Contains("revoked", (await op.FollowAsync(withdrawn.Location!)).Find("tr[data-grant]")!.TextContent);
    }

    [Fact]
    public async Task An_operator_denies_a_verified_privacy_request_only_with_a_reason()
    {
        using var subject = await _kit.SignUpAsync("subject@example.com");
        using var created = await subject.Http.PostAsJsonAsync("api/v1/privacy/requests", new { type = "access" });
        Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        var id = (await created.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetGuid();
        using var verified = await subject.Http.PostAsJsonAsync($"api/v1/privacy/requests/{id}/verify", new { password = ConsoleKit.Password });
        Assert.Equal(HttpStatusCode.OK, verified.StatusCode);
        using var op = await _kit.OperatorAsync();

        var queue = await op.GetAsync("/admin/privacy");
        var row = queue.Find($"tr[data-request='{id}']")!;
        Assert.Contains("subject@example.com", row.TextContent);
        var noReason = await op.PostAsync($"/admin/privacy?handler=Deny&requestId={id}&status=open",
            ConsoleClient.FormPairs((AngleSharp.Html.Dom.IHtmlFormElement)(await op.GetAsync("/admin/privacy")).Find($"tr[data-request='{id}'] form")!, new() { ["Reason"] = "" }));
        Assert.Equal(HttpStatusCode.OK, noReason.Status);
        Assert.NotEqual("", noReason.FieldError("Reason"));

        var denied = await op.PostAsync($"/admin/privacy?handler=Deny&requestId={id}&status=open",
            ConsoleClient.FormPairs((AngleSharp.Html.Dom.IHtmlFormElement)(await op.GetAsync("/admin/privacy")).Find($"tr[data-request='{id}'] form")!, new() { ["Reason"] = "Duplicate of an earlier request" }));
        Assert.Equal(HttpStatusCode.Redirect, denied.Status);
        var all = await op.GetAsync("/admin/privacy?status=all");
        Assert.Contains("denied", all.Find($"tr[data-request='{id}']")!.TextContent);
        Assert.Contains("Duplicate of an earlier request", all.Find($"tr[data-request='{id}']")!.TextContent);

        var erase = await op.SubmitAsync(all, "form[action*='handler=Erase']", new() { ["EraseEmail"] = "nobody@example.com", ["EraseReason"] = "child" });
        Assert.Contains("no account", erase.FieldError("EraseEmail"));
        Assert.Equal("nobody@example.com", erase.InputValue("EraseEmail"));
    }

    [Fact]
    public async Task A_join_token_is_shown_once_in_the_response_that_created_it_and_a_bad_lifetime_is_refused_beside_its_field()
    {
        using var op = await _kit.OperatorAsync();
        var empty = await op.GetAsync("/admin/machines");
        Assert.Contains("No machines have joined yet", empty.Text());

        var bad = await op.SubmitAsync(empty, "form[action*='handler=Token']", new() { ["Description"] = "rack 4", ["TtlSeconds"] = "5" });
        Assert.Equal(HttpStatusCode.OK, bad.Status);
        Assert.NotEqual("", bad.FieldError("TtlSeconds"));
        Assert.Equal(("rack 4", "5"), (bad.InputValue("Description"), bad.InputValue("TtlSeconds")));

        var created = await op.SubmitAsync(bad, "form[action*='handler=Token']", new() { ["TtlSeconds"] = "" });
        Assert.Equal(HttpStatusCode.OK, created.Status);
        var token = created.Find("#join-token")!.TextContent.Trim();
        Assert.NotEmpty(token);
        Assert.Contains("rack 4", created.Find("tr[data-token]")!.TextContent);

        var later = await op.GetAsync("/admin/machines");
        Assert.DoesNotContain(token, later.Body);
        Assert.Null(later.Find("#join-token"));
        Assert.Contains("active", later.Find("tr[data-token]")!.TextContent);
    }

    private async Task<Guid> ProviderIdAsync(string name)
    {
        await using var db = _kit.Database.CreateContext();
        return await db.Providers.AsNoTracking().Where(p => p.Name == name).Select(p => p.Id).SingleAsync();
    }

    private void AssertNotInDatabaseFiles(string canary)
    {
        var needle = Encoding.UTF8.GetBytes(canary);
        var known = Encoding.UTF8.GetBytes("local-vllm"); // proves the scan reads where the provider is stored
        var sawProvider = false;
        foreach (var file in Directory.EnumerateFiles(_kit.Database.Directory, "*", SearchOption.AllDirectories))
        {
            byte[] bytes;
            try
            {
                bytes = File.ReadAllBytes(file);
            }
            catch (IOException)
            {
                continue; // a lock file the server holds
            }

            Assert.True(bytes.AsSpan().IndexOf(needle) < 0, $"the key is in clear in {Path.GetFileName(file)}");
            sawProvider |= bytes.AsSpan().IndexOf(known) >= 0;
        }

        Assert.True(sawProvider, "no database file holds the provider's name: the scan looked in the wrong place");
    }

    internal static async Task AddProviderAsync(ConsoleClient op, string name)
    {
        var done = await op.SubmitAsync(await op.GetAsync("/admin/providers"), "form[action*='handler=Create']",
            new() { ["Name"] = name, ["Kind"] = "openai-compatible", ["BaseUrl"] = "http://127.0.0.1:9/v1/" });
        Assert.True(done.Status == HttpStatusCode.Redirect, done.Text());
    }

    internal static async Task AddModelAsync(ConsoleClient op, string id)
    {
        var done = await op.SubmitAsync(await op.GetAsync("/admin/models"), "form[action*='handler=Model']", new() { ["NewModelId"] = id });
        Assert.True(done.Status == HttpStatusCode.Redirect, done.Text());
    }

    internal static async Task AddRouteAsync(ConsoleClient op, string model, string provider, string upstream)
    {
        var done = await op.SubmitAsync(await op.GetAsync("/admin/models"), "form[action*='handler=Route']",
            new() { ["RouteModel"] = model, ["Provider"] = provider, ["UpstreamModel"] = upstream, ["RetainsData"] = "no", ["TrainsOnData"] = "no" });
        Assert.True(done.Status == HttpStatusCode.Redirect, done.Text());
    }
}
