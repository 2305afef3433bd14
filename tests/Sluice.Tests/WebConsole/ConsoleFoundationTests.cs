using System.Net;
using Microsoft.Extensions.DependencyInjection;
using Sluice.Storage;
using Sluice.Tests.TestSupport;

namespace Sluice.Tests.WebConsole;

/// <summary>
/// What every console page stands on: sign-up and sign-in through pages, field errors inline with the input kept, the
/// form tokens (missing, from another session, from another site, sent twice: all refused), sign-in and back after a
/// session ends, error pages instead of JSON, and the security headers.
/// </summary>
public sealed class ConsoleFoundationTests : IAsyncLifetime
{
    private ConsoleKit _kit = null!;

    public async ValueTask InitializeAsync() => _kit = await ConsoleKit.StartAsync();

    public async ValueTask DisposeAsync() => await _kit.DisposeAsync();

    [Fact]
    public async Task A_visitor_at_the_root_is_sent_to_sign_in_and_a_new_person_to_create_an_organization()
    {
        using var visitor = _kit.Visitor();
        Assert.Equal("/signin", (await visitor.GetAsync("/")).Location);

        using var person = await _kit.SignUpAsync("new@example.com");
        Assert.Equal("/orgs/new", (await person.GetAsync("/")).Location);
        var orgId = await person.CreateOrganizationAsync("Acme Labs");
        Assert.Equal($"/orgs/{orgId}", (await person.GetAsync("/")).Location);

        var overview = await person.GetAsync($"/orgs/{orgId}");
        Assert.Equal(HttpStatusCode.OK, overview.Status);
        Assert.Contains("Acme Labs", overview.Find(".switcher summary")!.TextContent);
    }

    [Fact]
    public async Task A_refused_sign_up_shows_each_error_beside_its_field_and_keeps_what_was_typed_except_the_password()
    {
        using var visitor = _kit.Visitor();
        var refused = await visitor.SubmitAsync(await visitor.GetAsync("/signup"),
            fields: new() { ["Name"] = "Ada Lovelace", ["Email"] = "not-an-email", ["Password"] = "short", ["AgeAttestation"] = "" });

        Assert.Equal(HttpStatusCode.OK, refused.Status);
        Assert.NotEmpty(refused.FieldError("Email"));
        Assert.NotEmpty(refused.FieldError("Password"));
        Assert.Contains("years old", refused.FieldError("AgeAttestation"));
        Assert.Equal("Ada Lovelace", refused.InputValue("Name"));
        Assert.Equal("not-an-email", refused.InputValue("Email"));
        Assert.True(string.IsNullOrEmpty(refused.InputValue("Password")), "a password is never sent back");
        Assert.Empty(visitor.Cookies.GetAllCookies());
    }

    [Fact]
    public async Task A_wrong_password_is_said_above_the_form_and_the_email_stays()
    {
        using (await _kit.SignUpAsync("someone@example.com"))
        {
        }

        using var visitor = _kit.Visitor();
        var refused = await visitor.SubmitAsync(await visitor.GetAsync("/signin"), fields: new() { ["Email"] = "someone@example.com", ["Password"] = "wrong password!" });

        Assert.Equal(HttpStatusCode.OK, refused.Status);
        Assert.Contains("incorrect", refused.FormErrors());
        Assert.Equal("someone@example.com", refused.InputValue("Email"));
        Assert.Empty(visitor.Cookies.GetAllCookies());
    }

    [Fact]
    public async Task The_session_cookie_is_the_only_cookie_and_is_http_only_and_same_site()
    {
        using var person = await _kit.SignUpAsync("cookie@example.com");
        await person.CreateOrganizationAsync();
        await person.FollowAsync("/");

        var cookie = Assert.Single(person.Cookies.GetAllCookies());
        Assert.Equal("sluice_session", cookie.Name);
        Assert.True(cookie.HttpOnly);
        using var visitor = _kit.Visitor();
        var signIn = await visitor.SubmitAsync(await visitor.GetAsync("/signin"), fields: new() { ["Email"] = "cookie@example.com", ["Password"] = ConsoleKit.Password });
        Assert.Contains("samesite=lax", signIn.Headers["set-cookie"], StringComparison.OrdinalIgnoreCase);
        Assert.Contains("httponly", signIn.Headers["set-cookie"], StringComparison.OrdinalIgnoreCase);
    }

    [Fact]
    public async Task Over_https_the_session_cookie_is_secure()
    {
        // In process, so the request can arrive over HTTPS without a certificate.
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Sqlite);
        await using var sluice = new SluiceFactory(database);
        using var client = sluice.CreateClient(new() { BaseAddress = new Uri("https://localhost"), AllowAutoRedirect = false, HandleCookies = false });
        var page = await client.GetStringAsync("/signup");
        var token = ConsoleClient.Parse(page).QuerySelector("input[name=__RequestVerificationToken]")!.GetAttribute("value")!;
        using var request = new HttpRequestMessage(HttpMethod.Post, "/signup")
        {
            Content = new FormUrlEncodedContent(new Dictionary<string, string>
            {
                ["__RequestVerificationToken"] = token, ["Name"] = "S", ["Email"] = "secure@example.com", ["Password"] = ConsoleKit.Password, ["AgeAttestation"] = "true",
            }),
        };
        request.Headers.Add("Origin", "https://localhost");
        using var response = await client.SendAsync(request);

        Assert.True(response.StatusCode == HttpStatusCode.Redirect, await response.Content.ReadAsStringAsync());
        var setCookie = Assert.Single(response.Headers.GetValues("Set-Cookie"));
        Assert.Contains("secure", setCookie, StringComparison.OrdinalIgnoreCase);
        Assert.Contains("max-age=31536000", response.Headers.GetValues("Strict-Transport-Security").Single());
    }

    [Fact]
    public async Task A_form_posted_twice_is_refused_the_second_time_with_a_page()
    {
        using var person = await _kit.SignUpAsync("twice@example.com");
        var form = await person.GetAsync("/orgs/new");
        var fields = ConsoleClient.FormPairs((AngleSharp.Html.Dom.IHtmlFormElement)form.Find("main form")!, new() { ["Name"] = "Once" });

        var first = await person.PostAsync("/orgs/new", fields);
        var replay = await person.PostAsync("/orgs/new", fields);

        Assert.Equal(HttpStatusCode.Redirect, first.Status);
        Assert.Equal(HttpStatusCode.BadRequest, replay.Status);
        Assert.Equal("text/html", replay.ContentType);
        Assert.Contains("sent twice", replay.Text());
        Assert.Equal(1, await CountOrganizationsAsync("Once"));
    }

    [Fact]
    public async Task A_post_without_a_token_with_another_sessions_token_or_from_another_site_is_refused()
    {
        using var alice = await _kit.SignUpAsync("alice@example.com");
        using var mallory = await _kit.SignUpAsync("mallory@example.com");
        var malloryForm = await mallory.GetAsync("/orgs/new");
        var malloryFields = ConsoleClient.FormPairs((AngleSharp.Html.Dom.IHtmlFormElement)malloryForm.Find("main form")!, new() { ["Name"] = "Forged" });
        var aliceForm = await alice.GetAsync("/orgs/new");
        var aliceFields = ConsoleClient.FormPairs((AngleSharp.Html.Dom.IHtmlFormElement)aliceForm.Find("main form")!, new() { ["Name"] = "Forged" });

        var missing = await alice.PostAsync("/orgs/new", [new("Name", "Forged")]);
        var stolen = await alice.PostAsync("/orgs/new", malloryFields);
        var crossSite = await alice.PostAsync("/orgs/new", aliceFields, origin: "https://evil.example");

        Assert.All([missing, stolen, crossSite], refused => Assert.Equal(HttpStatusCode.BadRequest, refused.Status));
        Assert.All([missing, stolen, crossSite], refused => Assert.Equal("text/html", refused.ContentType));
        Assert.Equal(0, await CountOrganizationsAsync("Forged"));

        // Alice's own token still works afterwards: the cross-site refusal did not spend it.
        Assert.Equal(HttpStatusCode.Redirect, (await alice.PostAsync("/orgs/new", aliceFields)).Status);
    }

    [Fact]
    public async Task Behind_a_proxy_that_rewrites_host_a_post_from_the_public_origin_is_accepted_and_one_from_another_site_is_not()
    {
        using var person = await _kit.SignUpAsync("proxied@example.com");
        async Task<HttpStatusCode> PostAsync(string origin, string name)
        {
            var form = await person.GetAsync("/orgs/new");
            var fields = ConsoleClient.FormPairs((AngleSharp.Html.Dom.IHtmlFormElement)form.Find("main form")!, new() { ["Name"] = name });
            using var request = new HttpRequestMessage(HttpMethod.Post, "orgs/new") { Content = new FormUrlEncodedContent(fields) };
            request.Headers.Add("Origin", origin);
            request.Headers.Add("X-Forwarded-Host", "console.example.com");
            using var response = await person.Http.SendAsync(request);
            return response.StatusCode;
        }

        Assert.Equal(HttpStatusCode.Redirect, await PostAsync("https://console.example.com", "Proxied"));
        Assert.Equal(HttpStatusCode.BadRequest, await PostAsync("https://evil.example", "Forged"));
        Assert.Equal(0, await CountOrganizationsAsync("Forged"));
    }

    [Fact]
    public async Task An_ended_session_leads_to_sign_in_and_then_back_to_the_page()
    {
        using var person = await _kit.SignUpAsync("back@example.com");
        var orgId = await person.CreateOrganizationAsync();
        var signOut = await person.SubmitAsync(await person.GetAsync($"/orgs/{orgId}"), "form.signout");
        Assert.Equal("/signin", signOut.Location);

        var away = await person.GetAsync($"/orgs/{orgId}?tab=1");
        Assert.Equal(HttpStatusCode.Redirect, away.Status);
        Assert.Equal($"/signin?returnUrl={Uri.EscapeDataString($"/orgs/{orgId}?tab=1")}", away.Location);

        var signIn = await person.GetAsync(away.Location!);
        var back = await person.SubmitAsync(signIn, fields: new() { ["Email"] = "back@example.com", ["Password"] = ConsoleKit.Password });
        Assert.Equal($"/orgs/{orgId}?tab=1", back.Location);
        Assert.Equal(HttpStatusCode.OK, (await person.GetAsync(back.Location!)).Status);
    }

    [Fact]
    public async Task Addresses_the_console_redirects_to_and_the_values_its_handlers_take_stay_out_of_the_log()
    {
        using (await _kit.SignUpAsync("quiet@example.com"))
        {
        }

        const string canary = "canary-9f3c1e7a-in-an-address";
        using var visitor = _kit.Visitor();
        var signIn = await visitor.GetAsync("/signin?returnUrl=" + Uri.EscapeDataString("/invitations?token=" + canary));
        var done = await visitor.SubmitAsync(signIn, fields: new() { ["Email"] = "quiet@example.com", ["Password"] = ConsoleKit.Password });
        Assert.Equal("/invitations?token=" + canary, done.Location);
        await visitor.GetAsync(done.Location!);

        Assert.NotEmpty(_kit.Sluice.Logs.All);
        Assert.DoesNotContain(canary, _kit.Sluice.Logs.All, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("//evil.example/x")]
    [InlineData("https://evil.example/")]
    [InlineData("/\\evil.example")]
    [InlineData("/\t/evil.example")]
    public async Task Sign_in_never_sends_a_person_to_another_site(string returnUrl)
    {
        using (await _kit.SignUpAsync("redirect@example.com"))
        {
        }

        using var visitor = _kit.Visitor();
        var signIn = await visitor.GetAsync("/signin?returnUrl=" + Uri.EscapeDataString(returnUrl));
        var done = await visitor.SubmitAsync(signIn, fields: new() { ["Email"] = "redirect@example.com", ["Password"] = ConsoleKit.Password });

        Assert.Equal("/", done.Location);
    }

    [Fact]
    public async Task Unknown_pages_and_other_tenants_organizations_are_404_pages_while_the_api_keeps_its_shapes()
    {
        using var alice = await _kit.SignUpAsync("alice2@example.com");
        using var bob = await _kit.SignUpAsync("bob2@example.com");
        var bobsOrg = await bob.CreateOrganizationAsync("Bob Co");

        var unknown = await alice.GetAsync("/no/such/page");
        var foreign = await alice.GetAsync($"/orgs/{bobsOrg}");
        using var api = await alice.Http.GetAsync("api/v1/nothing-here");
        using var v1 = await alice.Http.GetAsync("v1/nothing-here");

        Assert.Equal((HttpStatusCode.NotFound, "text/html"), (unknown.Status, unknown.ContentType));
        Assert.Equal((HttpStatusCode.NotFound, "text/html"), (foreign.Status, foreign.ContentType));
        Assert.DoesNotContain("Bob Co", foreign.Body);
        Assert.Equal("application/problem+json", api.Content.Headers.ContentType?.MediaType);
        Assert.Equal("application/json", v1.Content.Headers.ContentType?.MediaType);
    }

    [Fact]
    public async Task Console_pages_carry_a_strict_content_security_policy_and_the_apis_do_not_need_it()
    {
        using var visitor = _kit.Visitor();
        var page = await visitor.GetAsync("/signin");
        using var api = await visitor.Http.GetAsync("healthz");

        var csp = page.Headers["content-security-policy"];
        Assert.Contains("default-src 'none'", csp);
        Assert.Contains("script-src 'self'", csp);
        Assert.Contains("frame-ancestors 'none'", csp);
        Assert.DoesNotContain("unsafe-inline", csp);
        Assert.Equal("nosniff", page.Headers["x-content-type-options"]);
        Assert.Equal("DENY", page.Headers["x-frame-options"]);
        Assert.Equal("same-origin", page.Headers["referrer-policy"]);
        Assert.Equal("no-store", page.Headers["cache-control"]);
        Assert.False(api.Headers.Contains("Content-Security-Policy"));

        // Every script and stylesheet is this site's own, served from the executable.
        var assets = page.FindAll("script[src], link[rel=stylesheet]").Select(e => e.GetAttribute("src") ?? e.GetAttribute("href")!).ToList();
        Assert.NotEmpty(assets);
        Assert.All(assets, url => Assert.StartsWith("/console-assets/", url));
        foreach (var url in assets)
        {
            using var asset = await visitor.Http.GetAsync(url.TrimStart('/'));
            Assert.Equal(HttpStatusCode.OK, asset.StatusCode);
            Assert.Contains("immutable", asset.Headers.CacheControl!.ToString());
        }

        Assert.Empty(page.FindAll("script:not([src])"));
        Assert.Empty(page.FindAll("[style]"));
    }

    [Fact]
    public async Task Every_post_form_on_a_page_carries_a_form_token()
    {
        using var person = await _kit.SignUpAsync("forms@example.com");
        var orgId = await person.CreateOrganizationAsync();

        foreach (var path in new[] { "/signout", "/orgs/new", $"/orgs/{orgId}" })
        {
            var page = await person.GetAsync(path);
            var forms = page.FindAll("form").Where(f => string.Equals(f.GetAttribute("method"), "post", StringComparison.OrdinalIgnoreCase)).ToList();
            Assert.NotEmpty(forms);
            Assert.All(forms, form => Assert.NotNull(form.QuerySelector("input[name=__RequestVerificationToken]")));
        }
    }

    [Fact]
    public async Task A_member_does_not_see_operator_pages_and_the_operator_does()
    {
        var (owner, orgId) = await _kit.OwnerAsync("owner@example.com");
        using var member = await _kit.AddMemberAsync(owner, orgId, "member@example.com", "member");
        using var @operator = await _kit.OperatorAsync();

        var memberView = await member.GetAsync($"/orgs/{orgId}");
        var operatorView = await @operator.GetAsync("/orgs/new");

        Assert.DoesNotContain(memberView.FindAll("nav.sidebar a"), a => a.GetAttribute("href")!.StartsWith("/admin", StringComparison.Ordinal));
        Assert.DoesNotContain(memberView.FindAll("nav.sidebar a"), a => a.GetAttribute("href")!.EndsWith("/settings", StringComparison.Ordinal));
        Assert.Contains(operatorView.FindAll("nav.sidebar a"), a => a.GetAttribute("href") == "/admin/providers");
        owner.Dispose();
    }

    private Task<int> CountOrganizationsAsync(string name)
    {
        using var scope = _kit.Sluice.Services.CreateScope();
        var db = scope.ServiceProvider.GetRequiredService<Sluice.Storage.SluiceDbContext>();
        return Task.FromResult(db.Organizations.Count(o => o.Name == name));
    }
}
