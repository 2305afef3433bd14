using System.Net;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Sluice.Privacy;

namespace Sluice.Tests.WebConsole;

/// <summary>The privacy center end to end with the real ConsentService and PrivacyRequestService, and the policy page under the console's CSP.</summary>
public sealed class PrivacyCenterTests : IAsyncLifetime
{
    private ConsoleKit _kit = null!;

    public async ValueTask InitializeAsync() => _kit = await ConsoleKit.StartAsync();

    public async ValueTask DisposeAsync() => await _kit.DisposeAsync();

    [Fact]
    public async Task A_person_allows_and_withdraws_a_consent_and_each_choice_is_recorded()
    {
        using var person = await _kit.SignUpAsync("ada@example.com", "Ada");
        var page = await person.GetAsync("/account/privacy");
        Assert.Equal(HttpStatusCode.OK, page.Status);
        Assert.Equal(3, page.FindAll("main form[id^=consent-]").Count);
        Assert.Equal("Allow marketing", page.Find("#consent-marketing button")!.TextContent.Trim());

        var allowed = await person.SubmitAsync(page, "#consent-marketing");
        Assert.Equal("/account/privacy?done=consent", allowed.Location);
        var after = await person.GetAsync(allowed.Location!);
        Assert.Equal("Withdraw marketing", after.Find("#consent-marketing button")!.TextContent.Trim());
        await person.SubmitAsync(after, "#consent-marketing");
        Assert.Equal("Allow marketing", (await person.GetAsync("/account/privacy")).Find("#consent-marketing button")!.TextContent.Trim());

        var recorded = await _kit.InScopeAsync(db => db.ConsentRecords.Where(c => c.Purpose == "marketing").OrderBy(c => c.Version).Select(c => c.Granted).ToListAsync());
        Assert.Equal([true, false], recorded);
    }

    [Fact]
    public async Task An_export_request_is_made_verified_with_the_password_approved_and_downloaded_by_its_owner_only()
    {
        using var person = await _kit.SignUpAsync("ada@example.com", "Ada");
        using var other = await _kit.SignUpAsync("eve@example.com", "Eve");
        var created = await person.SubmitAsync(await person.GetAsync("/account/privacy"), "#new-request", new() { ["Type"] = "export" });
        Assert.Equal("/account/privacy?done=created", created.Location);
        var page = await person.GetAsync(created.Location!);
        var requestId = await _kit.InScopeAsync(db => db.PrivacyRequests.Select(r => r.Id).SingleAsync());
        Assert.Contains("waiting for you to verify", page.Find($"#request-{requestId}")!.TextContent);

        var wrong = await person.SubmitAsync(page, $"#verify-{requestId}", new() { ["Password"] = "not-my-password" });
        Assert.Equal(HttpStatusCode.OK, wrong.Status);
        Assert.Contains("attempt(s) left", wrong.FieldError("Password"));
        Assert.True(string.IsNullOrEmpty(wrong.InputValue("Password")));
        Assert.Equal(PrivacyRequestStatus.PendingVerification, await StatusAsync(requestId));

        var verified = await person.SubmitAsync(wrong, $"#verify-{requestId}", new() { ["Password"] = ConsoleKit.Password });
        Assert.Equal("/account/privacy?done=verified", verified.Location);
        Assert.Contains("in review", (await person.GetAsync(verified.Location!)).Find($"#request-{requestId}")!.TextContent);

        using (var scope = _kit.Sluice.Services.CreateScope())
        {
            await scope.ServiceProvider.GetRequiredService<PrivacyRequestService>().ApproveAsync(requestId, new DecidePrivacyRequest("ok"), CancellationToken.None);
        }

        var ready = await person.GetAsync("/account/privacy");
        var link = ready.Find($"#request-{requestId} a[download]")!.GetAttribute("href")!;
        using var download = await person.Http.GetAsync(link.TrimStart('/'));
        Assert.Equal(HttpStatusCode.OK, download.StatusCode);
        Assert.Equal("application/json", download.Content.Headers.ContentType!.MediaType);
        Assert.Contains("attachment", download.Content.Headers.ContentDisposition!.ToString(), StringComparison.Ordinal);
        Assert.Contains("ada@example.com", await download.Content.ReadAsStringAsync(), StringComparison.Ordinal);

        using var stolen = await other.Http.GetAsync(link.TrimStart('/'));
        Assert.Equal(HttpStatusCode.NotFound, stolen.StatusCode);
        Assert.DoesNotContain("ada@example.com", await stolen.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        using var visitor = _kit.Visitor();
        Assert.Equal(HttpStatusCode.Redirect, (await visitor.GetAsync(link)).Status);
    }

    [Fact]
    public async Task A_bad_request_shows_its_errors_beside_the_fields_with_the_input_kept_and_nothing_is_created()
    {
        using var person = await _kit.SignUpAsync("ada@example.com", "Ada");
        var none = await person.SubmitAsync(await person.GetAsync("/account/privacy"), "#new-request", new() { ["Type"] = "" });
        Assert.NotEmpty(none.FieldError("Type"));

        var refused = await person.SubmitAsync(none, "#new-request", new() { ["Type"] = "correction", ["CorrectEmail"] = "not-an-email", ["CorrectName"] = "Ada L." });
        Assert.Equal(HttpStatusCode.OK, refused.Status);
        Assert.NotEmpty(refused.FieldError("CorrectEmail"));
        Assert.Equal("not-an-email", refused.InputValue("CorrectEmail"));
        Assert.Equal("Ada L.", refused.InputValue("CorrectName"));
        Assert.Equal("correction", (refused.Find("select[name=Type]") as AngleSharp.Html.Dom.IHtmlSelectElement)!.Value);

        var objection = await person.SubmitAsync(refused, "#new-request", new() { ["Type"] = "objection", ["ObjectionPurpose"] = "" });
        Assert.NotEmpty(objection.FieldError("ObjectionPurpose"));
        Assert.Equal(0, await _kit.InScopeAsync(db => db.PrivacyRequests.CountAsync()));
    }

    [Fact]
    public async Task A_denied_request_is_appealed_once_with_a_reason_and_an_open_one_is_cancelled()
    {
        using var person = await _kit.SignUpAsync("ada@example.com", "Ada");
        await person.SubmitAsync(await person.GetAsync("/account/privacy"), "#new-request", new() { ["Type"] = "access" });
        var requestId = await _kit.InScopeAsync(db => db.PrivacyRequests.Select(r => r.Id).SingleAsync());
        await person.SubmitAsync(await person.GetAsync("/account/privacy"), $"#verify-{requestId}", new() { ["Password"] = ConsoleKit.Password });
        using (var scope = _kit.Sluice.Services.CreateScope())
        {
            await scope.ServiceProvider.GetRequiredService<PrivacyRequestService>().DenyAsync(requestId, new DecidePrivacyRequest("We could not find the data you describe."), CancellationToken.None);
        }

        var denied = await person.GetAsync("/account/privacy");
        Assert.Contains("We could not find the data you describe.", denied.Find($"#request-{requestId}")!.TextContent);
        var empty = await person.SubmitAsync(denied, $"#appeal-{requestId}", new() { ["Reason"] = "  " });
        Assert.NotEmpty(empty.FieldError("Reason"));
        Assert.Equal(PrivacyRequestStatus.Denied, await StatusAsync(requestId));

        var appealed = await person.SubmitAsync(empty, $"#appeal-{requestId}", new() { ["Reason"] = "It is in my account's usage." });
        Assert.Equal("/account/privacy?done=appealed", appealed.Location);
        var page = await person.GetAsync(appealed.Location!);
        Assert.Null(page.Find($"#appeal-{requestId}"));
        Assert.Equal(PrivacyRequestStatus.Appealed, await StatusAsync(requestId));

        var cancelled = await person.SubmitAsync(page, $"#cancel-{requestId}");
        Assert.Equal("/account/privacy?done=cancelled", cancelled.Location);
        Assert.Equal(PrivacyRequestStatus.Cancelled, await StatusAsync(requestId));
    }

    [Fact]
    public async Task The_policy_page_uses_the_console_stylesheet_with_no_inline_style_or_script_and_privacy_json_is_unchanged()
    {
        using var visitor = _kit.Visitor();
        var policy = await visitor.GetAsync("/privacy");
        Assert.Equal(HttpStatusCode.OK, policy.Status);
        Assert.NotNull(policy.Find("link[rel=stylesheet][href^='/console-assets/console']"));
        Assert.Empty(policy.FindAll("script, style, [style]"));
        Assert.Contains("default-src", policy.Headers["content-security-policy"], StringComparison.Ordinal);
        Assert.Contains("Privacy policy", policy.Find("h1")!.TextContent);

        using var json = await visitor.Http.GetAsync("privacy.json");
        Assert.Equal("application/json", json.Content.Headers.ContentType!.MediaType);
        Assert.DoesNotContain("console-assets", await json.Content.ReadAsStringAsync(), StringComparison.Ordinal);
    }

    private Task<string> StatusAsync(Guid requestId) =>
        _kit.InScopeAsync(db => db.PrivacyRequests.Where(r => r.Id == requestId).Select(r => r.Status).SingleAsync());
}
