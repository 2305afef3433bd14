using System.Net;
using System.Net.Http.Json;
using Microsoft.EntityFrameworkCore;

namespace Sluice.Tests.WebConsole;

/// <summary>The person's invitations page: those addressed to them, accepting by link or token, and a visitor's way in.</summary>
public sealed class InvitationsPageTests : IAsyncLifetime
{
    private ConsoleKit _kit = null!;

    public async ValueTask InitializeAsync() => _kit = await ConsoleKit.StartAsync();

    public async ValueTask DisposeAsync() => await _kit.DisposeAsync();

    [Fact]
    public async Task A_visitor_following_a_link_signs_up_comes_back_with_the_token_filled_in_and_joins()
    {
        var (owner, orgId) = await _kit.OwnerAsync("owner@example.com", "Acme");
        using var _ = owner;
        var token = await InviteAsync(owner, orgId, "grace@example.com", "member");
        var path = "/invitations?token=" + Uri.EscapeDataString(token);

        using var visitor = _kit.Visitor();
        var challenged = await visitor.GetAsync(path);
        Assert.Equal("/signin?returnUrl=" + Uri.EscapeDataString(path), challenged.Location);
        var signIn = await visitor.GetAsync(challenged.Location!);
        var signUpLink = signIn.Find("main a[href^='/signup']")!.GetAttribute("href")!;
        var signedUp = await visitor.SubmitAsync(await visitor.GetAsync(signUpLink),
            fields: new() { ["Name"] = "Grace", ["Email"] = "grace@example.com", ["Password"] = ConsoleKit.Password, ["AgeAttestation"] = "true" });
        Assert.Equal(path, signedUp.Location);

        var page = await visitor.GetAsync(path);
        Assert.Equal(token, page.InputValue("Token"));
        Assert.Contains("Acme", page.Find("main table")!.TextContent);
        var joined = await visitor.SubmitAsync(page);
        Assert.Equal($"/orgs/{orgId}", joined.Location);
        Assert.Equal(HttpStatusCode.OK, (await visitor.GetAsync($"/orgs/{orgId}")).Status);
        Assert.Contains("No invitation is addressed", (await visitor.GetAsync("/invitations")).Text());
    }

    [Fact]
    public async Task A_pasted_link_works_and_a_bad_or_someone_elses_token_is_refused_beside_the_field_with_the_input_kept()
    {
        var (owner, orgId) = await _kit.OwnerAsync("owner@example.com", "Acme");
        using var _ = owner;
        var token = await InviteAsync(owner, orgId, "grace@example.com", "viewer");
        using var mallory = await _kit.SignUpAsync("mallory@example.com");
        using var grace = await _kit.SignUpAsync("grace@example.com");

        var bad = await grace.SubmitAsync(await grace.GetAsync("/invitations"), fields: new() { ["Token"] = "nonsense" });
        Assert.Equal(HttpStatusCode.OK, bad.Status);
        Assert.Contains("not a valid invitation", bad.FieldError("Token"));
        Assert.Equal("nonsense", bad.InputValue("Token"));

        var stolen = await mallory.SubmitAsync(await mallory.GetAsync("/invitations"), fields: new() { ["Token"] = token });
        Assert.Contains("another email address", stolen.FieldError("Token"));
        Assert.False(await _kit.InScopeAsync(db => db.Memberships.AnyAsync(m => m.OrganizationId == orgId && db.Users.Any(u => u.Id == m.UserId && u.Email == "mallory@example.com"))));
        Assert.Empty((await mallory.GetAsync("/invitations")).FindAll("main table"));

        var link = $"{_kit.RootUrl.TrimEnd('/')}/invitations?token={Uri.EscapeDataString(token)}";
        var joined = await grace.SubmitAsync(await grace.GetAsync("/invitations"), fields: new() { ["Token"] = link });
        Assert.Equal($"/orgs/{orgId}", joined.Location);

        var reused = await grace.SubmitAsync(await grace.GetAsync("/invitations"), fields: new() { ["Token"] = token });
        Assert.Contains("already been used", reused.FieldError("Token"));
    }

    private static async Task<string> InviteAsync(ConsoleClient owner, Guid orgId, string email, string role)
    {
        using var invite = await owner.Http.PostAsJsonAsync($"api/v1/orgs/{orgId}/invitations", new { email, role });
        return (await invite.Content.ReadFromJsonAsync<System.Text.Json.JsonElement>()).GetProperty("token").GetString()!;
    }
}
