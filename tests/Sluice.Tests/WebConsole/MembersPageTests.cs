using System.Net;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Sluice.Identity;
using Sluice.Storage;

namespace Sluice.Tests.WebConsole;

/// <summary>The members page: roles, removal, invitations (the link shown once), and who may change what.</summary>
public sealed class MembersPageTests : IAsyncLifetime
{
    private ConsoleKit _kit = null!;

    public async ValueTask InitializeAsync() => _kit = await ConsoleKit.StartAsync();

    public async ValueTask DisposeAsync() => await _kit.DisposeAsync();

    [Fact]
    public async Task An_owner_invites_someone_whose_link_joins_them_then_changes_their_role_and_removes_them()
    {
        var (owner, orgId) = await _kit.OwnerAsync("owner@example.com");
        using var _ = owner;
        var page = await owner.GetAsync($"/orgs/{orgId}/members");
        Assert.Equal(HttpStatusCode.OK, page.Status);
        Assert.Contains("owner@example.com", page.Text());

        var invited = await owner.SubmitAsync(page, "#invite-form", new() { ["Email"] = "Newcomer@Example.com", ["Role"] = "viewer" });
        Assert.Equal(HttpStatusCode.OK, invited.Status);
        var link = invited.Find("#invitation-link")!.TextContent.Trim();
        Assert.StartsWith(_kit.RootUrl.TrimEnd('/') + "/invitations?token=", link, StringComparison.Ordinal);
        Assert.Contains("newcomer@example.com", invited.Text());

        // The link is shown once: the page after it does not carry it.
        var again = await owner.GetAsync($"/orgs/{orgId}/members");
        Assert.Null(again.Find("#invitation-link"));
        Assert.DoesNotContain(new Uri(link).Query["?token=".Length..], again.Body, StringComparison.Ordinal);

        using var newcomer = await _kit.SignUpAsync("newcomer@example.com");
        var accept = await newcomer.GetAsync(new Uri(link).PathAndQuery);
        Assert.Equal(new Uri(link).Query["?token=".Length..], Uri.EscapeDataString(accept.InputValue("Token")!));
        var joined = await newcomer.SubmitAsync(accept);
        Assert.Equal($"/orgs/{orgId}", joined.Location);
        var newcomerId = await UserIdAsync("newcomer@example.com");
        Assert.Equal(OrgRole.Viewer, await RoleAsync(orgId, newcomerId));

        var members = await owner.GetAsync($"/orgs/{orgId}/members");
        var changed = await owner.SubmitAsync(members, $"#role-form-{newcomerId}", new() { ["newRole"] = "billing" });
        Assert.Equal($"/orgs/{orgId}/members?done=role", changed.Location);
        Assert.Equal(OrgRole.Billing, await RoleAsync(orgId, newcomerId));
        Assert.Contains("Role changed.", (await owner.GetAsync(changed.Location!)).Find(".notice")!.TextContent);

        var removed = await owner.SubmitAsync(await owner.GetAsync($"/orgs/{orgId}/members"),
            $"#remove-form-{newcomerId}");
        Assert.Equal($"/orgs/{orgId}/members?done=removed", removed.Location);
        Assert.Null(await RoleAsync(orgId, newcomerId));
        Assert.Equal(HttpStatusCode.NotFound, (await newcomer.GetAsync($"/orgs/{orgId}/members")).Status);
    }

    [Fact]
    public async Task A_bad_invitation_shows_its_errors_beside_the_fields_keeps_the_input_and_creates_nothing()
    {
        var (owner, orgId) = await _kit.OwnerAsync("owner@example.com");
        using var _ = owner;
        var refused = await owner.SubmitAsync(await owner.GetAsync($"/orgs/{orgId}/members"), "#invite-form",
            new() { ["Email"] = "not an email", ["Role"] = "admin" });
        Assert.Equal(HttpStatusCode.OK, refused.Status);
        Assert.NotEmpty(refused.FieldError("Email"));
        Assert.Equal("not an email", refused.InputValue("Email"));
        Assert.Equal("admin", (refused.Find("select[name=Role]") as AngleSharp.Html.Dom.IHtmlSelectElement)!.Value);
        Assert.Null(refused.Find("#invitation-link"));

        var already = await owner.SubmitAsync(await owner.GetAsync($"/orgs/{orgId}/members"), "#invite-form",
            new() { ["Email"] = "owner@example.com" });
        Assert.Contains("already a member", already.FieldError("Email"));
        Assert.Equal(0, await InvitationsAsync(orgId));
    }

    [Fact]
    public async Task A_pending_invitation_is_listed_and_revoked_and_its_link_then_fails()
    {
        var (owner, orgId) = await _kit.OwnerAsync("owner@example.com");
        using var _ = owner;
        var invited = await owner.SubmitAsync(await owner.GetAsync($"/orgs/{orgId}/members"), "#invite-form",
            new() { ["Email"] = "later@example.com", ["Role"] = "member" });
        var link = new Uri(invited.Find("#invitation-link")!.TextContent.Trim());

        var page = await owner.GetAsync($"/orgs/{orgId}/members");
        Assert.Contains("later@example.com", page.Text());
        var revoked = await owner.SubmitAsync(page, "main form[id^=revoke-form]");
        Assert.Equal($"/orgs/{orgId}/members?done=revoked", revoked.Location);
        Assert.Contains("No invitation is waiting.", (await owner.GetAsync(revoked.Location!)).Text());

        using var later = await _kit.SignUpAsync("later@example.com");
        var accept = await later.SubmitAsync(await later.GetAsync(link.PathAndQuery));
        Assert.Equal(HttpStatusCode.OK, accept.Status);
        Assert.Contains("not a valid invitation", accept.FieldError("Token"));
    }

    [Fact]
    public async Task A_viewer_sees_the_members_without_buttons_and_a_forged_post_is_refused_and_changes_nothing()
    {
        var (owner, orgId) = await _kit.OwnerAsync("owner@example.com");
        using var _ = owner;
        using var viewer = await _kit.AddMemberAsync(owner, orgId, "viewer@example.com", "viewer");
        var ownerId = await UserIdAsync("owner@example.com");
        var invitations = await InvitationsAsync(orgId);

        var page = await viewer.GetAsync($"/orgs/{orgId}/members");
        Assert.Equal(HttpStatusCode.OK, page.Status);
        Assert.Empty(page.FindAll("main form"));
        Assert.NotNull(page.Find($"nav a[href='/orgs/{orgId}/members']"));

        var role = await viewer.ForgeAsync($"/orgs/{orgId}/members?handler=Role", new() { ["userId"] = ownerId.ToString(), ["newRole"] = "viewer" });
        var remove = await viewer.ForgeAsync($"/orgs/{orgId}/members?handler=Remove", new() { ["userId"] = ownerId.ToString() });
        var invite = await viewer.ForgeAsync($"/orgs/{orgId}/members?handler=Invite", new() { ["Email"] = "x@example.com", ["Role"] = "admin" });
        Assert.Equal((HttpStatusCode.Forbidden, HttpStatusCode.Forbidden, HttpStatusCode.Forbidden), (role.Status, remove.Status, invite.Status));
        Assert.Equal("text/html", role.ContentType);
        Assert.Equal(OrgRole.Owner, await RoleAsync(orgId, ownerId));
        Assert.Equal(invitations, await InvitationsAsync(orgId));

        using var stranger = await _kit.SignUpAsync("stranger@example.com");
        Assert.Equal(HttpStatusCode.NotFound, (await stranger.GetAsync($"/orgs/{orgId}/members")).Status);
    }

    [Fact]
    public async Task An_admin_cannot_demote_or_remove_an_owner_nor_make_one()
    {
        var (owner, orgId) = await _kit.OwnerAsync("owner@example.com");
        using var _ = owner;
        using var admin = await _kit.AddMemberAsync(owner, orgId, "admin@example.com", "admin");
        using var member = await _kit.AddMemberAsync(owner, orgId, "member@example.com", "member");
        var ownerId = await UserIdAsync("owner@example.com");
        var memberId = await UserIdAsync("member@example.com");

        var page = await admin.GetAsync($"/orgs/{orgId}/members");
        Assert.Null(page.Find($"#role-form-{ownerId}"));
        Assert.NotNull(page.Find($"#role-form-{memberId}"));
        Assert.Null(page.Find("option[value=owner]"));

        var demote = await admin.ForgeAsync($"/orgs/{orgId}/members?handler=Role", new() { ["userId"] = ownerId.ToString(), ["newRole"] = "viewer" });
        var promote = await admin.ForgeAsync($"/orgs/{orgId}/members?handler=Role", new() { ["userId"] = memberId.ToString(), ["newRole"] = "owner" });
        var remove = await admin.ForgeAsync($"/orgs/{orgId}/members?handler=Remove", new() { ["userId"] = ownerId.ToString() });
        Assert.Equal((HttpStatusCode.Forbidden, HttpStatusCode.Forbidden, HttpStatusCode.Forbidden), (demote.Status, promote.Status, remove.Status));
        Assert.Equal(OrgRole.Owner, await RoleAsync(orgId, ownerId));
        Assert.Equal(OrgRole.Member, await RoleAsync(orgId, memberId));
    }

    [Fact]
    public async Task The_last_owner_cannot_step_down_and_is_told_why_above_the_page()
    {
        var (owner, orgId) = await _kit.OwnerAsync("owner@example.com");
        using var _ = owner;
        var ownerId = await UserIdAsync("owner@example.com");
        var refused = await owner.SubmitAsync(await owner.GetAsync($"/orgs/{orgId}/members"),
            $"#role-form-{ownerId}", new() { ["newRole"] = "admin" });
        Assert.Equal(HttpStatusCode.OK, refused.Status);
        Assert.Contains("at least one owner", refused.FormErrors());
        Assert.Empty(refused.FieldError("Role"));
        Assert.Equal(OrgRole.Owner, await RoleAsync(orgId, ownerId));
    }

    private async Task<Guid> UserIdAsync(string email)
    {
        using var scope = _kit.Sluice.Services.CreateScope();
        return await scope.ServiceProvider.GetRequiredService<SluiceDbContext>().Users.Where(u => u.Email == email).Select(u => u.Id).SingleAsync();
    }

    private async Task<OrgRole?> RoleAsync(Guid orgId, Guid userId)
    {
        using var scope = _kit.Sluice.Services.CreateScope();
        return await scope.ServiceProvider.GetRequiredService<SluiceDbContext>().Memberships
            .Where(m => m.OrganizationId == orgId && m.UserId == userId).Select(m => (OrgRole?)m.Role).SingleOrDefaultAsync();
    }

    private async Task<int> InvitationsAsync(Guid orgId)
    {
        using var scope = _kit.Sluice.Services.CreateScope();
        return await scope.ServiceProvider.GetRequiredService<SluiceDbContext>().Invitations.CountAsync(i => i.OrganizationId == orgId);
    }
}

/// <summary>What the people pages' tests need beyond the kit: a post the page did not offer, with the session's own form token.</summary>
internal static class PeopleConsole
{
    /// <summary>Posts <paramref name="fields"/> to <paramref name="path"/> with a fresh valid token of the session (from the sign-out form of its account page): a forged post by someone who is signed in.</summary>
    public static async Task<ConsoleResponse> ForgeAsync(this ConsoleClient client, string path, Dictionary<string, string> fields)
    {
        var page = await client.GetAsync("/account");
        var token = page.Find("input[name=__RequestVerificationToken]")!.GetAttribute("value")!;
        return await client.PostAsync(path, [new("__RequestVerificationToken", token), .. fields]);
    }

    public static async Task<T> InScopeAsync<T>(this ConsoleKit kit, Func<SluiceDbContext, Task<T>> query)
    {
        using var scope = kit.Sluice.Services.CreateScope();
        return await query(scope.ServiceProvider.GetRequiredService<SluiceDbContext>());
    }
}
