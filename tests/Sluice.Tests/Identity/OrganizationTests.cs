using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.EntityFrameworkCore;
using Sluice.Storage;
using Sluice.Tests.TestSupport;

namespace Sluice.Tests.Identity;

public sealed class OrganizationTests
{
    [Fact]
    public async Task The_creator_owns_a_new_organization_and_can_update_it()
    {
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Sqlite);
        await using var sluice = new SluiceFactory(database);
        var (owner, ownerId) = await sluice.SignUpAndLoginAsync("owner@example.com");
        var orgId = await SluiceFactory.CreateOrganizationAsync(owner, "Acme");

        var update = await owner.PatchAsJsonAsync($"/api/v1/orgs/{orgId}", new { name = "Acme Inc", billingEmail = "Billing@Acme.test" });
        var members = await owner.GetFromJsonAsync<JsonElement>($"/api/v1/orgs/{orgId}/members");
        var me = await owner.GetFromJsonAsync<JsonElement>("/api/v1/me");

        Assert.Equal(HttpStatusCode.OK, update.StatusCode);
        var updated = await update.Content.ReadFromJsonAsync<JsonElement>();
        Assert.Equal("Acme Inc", updated.GetProperty("name").GetString());
        Assert.Equal("billing@acme.test", updated.GetProperty("billingEmail").GetString());
        var member = Assert.Single(members.EnumerateArray());
        Assert.Equal(ownerId, member.GetProperty("userId").GetGuid());
        Assert.Equal("owner", member.GetProperty("role").GetString());
        Assert.Equal("owner", me.GetProperty("memberships")[0].GetProperty("role").GetString());
    }

    [Fact]
    public async Task Invalid_organization_input_names_the_field()
    {
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Sqlite);
        await using var sluice = new SluiceFactory(database);
        var (owner, _) = await sluice.SignUpAndLoginAsync("owner@example.com");

        var noName = await owner.PostAsJsonAsync("/api/v1/orgs", new { name = "  " });
        var badBilling = await owner.PostAsJsonAsync("/api/v1/orgs", new { name = "X", billingEmail = "nope" });

        Assert.Equal(HttpStatusCode.BadRequest, noName.StatusCode);
        Assert.True((await noName.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("errors").TryGetProperty("name", out _));
        Assert.True((await badBilling.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("errors").TryGetProperty("billingEmail", out _));
        await using var db = database.CreateContext();
        Assert.Equal(0, await db.Organizations.CountAsync());
    }

    [Fact]
    public async Task An_invitation_is_accepted_once_by_the_invited_person_with_the_offered_role()
    {
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Sqlite);
        await using var sluice = new SluiceFactory(database);
        var (owner, _) = await sluice.SignUpAndLoginAsync("owner@example.com");
        var (invitee, inviteeId) = await sluice.SignUpAndLoginAsync("invitee@example.com");
        var (stranger, _) = await sluice.SignUpAndLoginAsync("stranger@example.com");
        var orgId = await SluiceFactory.CreateOrganizationAsync(owner);

        var invite = await owner.PostAsJsonAsync($"/api/v1/orgs/{orgId}/invitations", new { email = "Invitee@example.com", role = "admin" });
        var token = (await invite.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("token").GetString();
        var pending = await owner.GetFromJsonAsync<JsonElement>($"/api/v1/orgs/{orgId}/invitations");
        var wrongPerson = await stranger.PostAsJsonAsync("/api/v1/invitations/accept", new { token });
        var accepted = await invitee.PostAsJsonAsync("/api/v1/invitations/accept", new { token });
        var again = await invitee.PostAsJsonAsync("/api/v1/invitations/accept", new { token });

        Assert.Equal(HttpStatusCode.Created, invite.StatusCode);
        Assert.DoesNotContain("token", Assert.Single(pending.EnumerateArray()).ToString(), StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.BadRequest, wrongPerson.StatusCode);
        Assert.Equal(HttpStatusCode.OK, accepted.StatusCode);
        Assert.Equal(HttpStatusCode.Conflict, again.StatusCode);
        var members = await owner.GetFromJsonAsync<JsonElement>($"/api/v1/orgs/{orgId}/members");
        Assert.Contains(members.EnumerateArray(), m => m.GetProperty("userId").GetGuid() == inviteeId && m.GetProperty("role").GetString() == "admin");
        await using var db = database.CreateContext();
        Assert.DoesNotContain(token!, string.Join("|", await db.Invitations.Select(i => i.TokenHash).ToListAsync()), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Expired_unknown_or_mistyped_invitations_are_refused_on_the_named_field()
    {
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Sqlite);
        await using var sluice = new SluiceFactory(database);
        var (owner, _) = await sluice.SignUpAndLoginAsync("owner@example.com");
        var (invitee, _) = await sluice.SignUpAndLoginAsync("invitee@example.com");
        var orgId = await SluiceFactory.CreateOrganizationAsync(owner);

        var unknownRole = await owner.PostAsJsonAsync($"/api/v1/orgs/{orgId}/invitations", new { email = "invitee@example.com", role = "emperor" });
        var badEmail = await owner.PostAsJsonAsync($"/api/v1/orgs/{orgId}/invitations", new { email = "nope", role = "member" });
        var invite = await owner.PostAsJsonAsync($"/api/v1/orgs/{orgId}/invitations", new { email = "invitee@example.com", role = "member" });
        var token = (await invite.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("token").GetString();
        await database.ExecuteAsync("UPDATE invitations SET expires_at = 0");
        var expired = await invitee.PostAsJsonAsync("/api/v1/invitations/accept", new { token });
        var unknown = await invitee.PostAsJsonAsync("/api/v1/invitations/accept", new { token = "not-a-token" });

        Assert.Equal("role", FirstErrorField(await unknownRole.Content.ReadFromJsonAsync<JsonElement>()));
        Assert.Equal("email", FirstErrorField(await badEmail.Content.ReadFromJsonAsync<JsonElement>()));
        Assert.Equal(HttpStatusCode.BadRequest, expired.StatusCode);
        Assert.Contains("expired", (await expired.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("errors").GetProperty("token")[0].GetString(), StringComparison.Ordinal);
        Assert.Equal("token", FirstErrorField(await unknown.Content.ReadFromJsonAsync<JsonElement>()));
        await using var db = database.CreateContext();
        Assert.Equal(1, await db.Memberships.CountAsync());
    }

    [Fact]
    public async Task Roles_limit_what_members_can_do_and_an_organization_keeps_an_owner()
    {
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Sqlite);
        await using var sluice = new SluiceFactory(database);
        var (owner, ownerId) = await sluice.SignUpAndLoginAsync("owner@example.com");
        var orgId = await SluiceFactory.CreateOrganizationAsync(owner);
        var (admin, _) = await JoinAsync(sluice, owner, orgId, "admin@example.com", "admin");
        var (member, _) = await JoinAsync(sluice, owner, orgId, "member@example.com", "member");
        var (viewer, viewerId) = await JoinAsync(sluice, owner, orgId, "viewer@example.com", "viewer");

        var (ownersKey, _) = await SluiceFactory.CreateKeyAsync(owner, orgId);
        var viewerCreatesKey = await viewer.PostAsJsonAsync($"/api/v1/orgs/{orgId}/keys", new { name = "v" });
        var viewerReadsKeys = await viewer.GetAsync($"/api/v1/orgs/{orgId}/keys");
        var (membersKey, _) = await SluiceFactory.CreateKeyAsync(member, orgId);
        var memberRevokesOwnersKey = await member.DeleteAsync($"/api/v1/orgs/{orgId}/keys/{ownersKey}");
        var memberRevokesOwnKey = await member.DeleteAsync($"/api/v1/orgs/{orgId}/keys/{membersKey}");
        var memberChangesRole = await member.PatchAsJsonAsync($"/api/v1/orgs/{orgId}/members/{viewerId}", new { role = "admin" });
        var adminMakesOwner = await admin.PatchAsJsonAsync($"/api/v1/orgs/{orgId}/members/{viewerId}", new { role = "owner" });
        var adminDemotesOwner = await admin.PatchAsJsonAsync($"/api/v1/orgs/{orgId}/members/{ownerId}", new { role = "member" });
        var lastOwnerStepsDown = await owner.PatchAsJsonAsync($"/api/v1/orgs/{orgId}/members/{ownerId}", new { role = "admin" });
        var unknownRole = await owner.PatchAsJsonAsync($"/api/v1/orgs/{orgId}/members/{viewerId}", new { role = "superuser" });
        var adminPromotesViewer = await admin.PatchAsJsonAsync($"/api/v1/orgs/{orgId}/members/{viewerId}", new { role = "member" });

        Assert.Equal(HttpStatusCode.Forbidden, viewerCreatesKey.StatusCode);
        Assert.Equal(HttpStatusCode.OK, viewerReadsKeys.StatusCode);
        Assert.Equal(HttpStatusCode.Forbidden, memberRevokesOwnersKey.StatusCode);
        Assert.Equal(HttpStatusCode.NoContent, memberRevokesOwnKey.StatusCode);
        Assert.Equal(HttpStatusCode.Forbidden, memberChangesRole.StatusCode);
        Assert.Equal(HttpStatusCode.Forbidden, adminMakesOwner.StatusCode);
        Assert.Equal(HttpStatusCode.Forbidden, adminDemotesOwner.StatusCode);
        Assert.Equal(HttpStatusCode.Conflict, lastOwnerStepsDown.StatusCode);
        Assert.Equal(HttpStatusCode.BadRequest, unknownRole.StatusCode);
        Assert.Equal(HttpStatusCode.OK, adminPromotesViewer.StatusCode);
    }

    internal static async Task<(HttpClient Client, Guid UserId)> JoinAsync(SluiceFactory sluice, HttpClient owner, Guid orgId, string email, string role)
    {
        var (client, userId) = await sluice.SignUpAndLoginAsync(email);
        var invite = await owner.PostAsJsonAsync($"/api/v1/orgs/{orgId}/invitations", new { email, role });
        var token = (await invite.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("token").GetString();
        var accepted = await client.PostAsJsonAsync("/api/v1/invitations/accept", new { token });
        Assert.Equal(HttpStatusCode.OK, accepted.StatusCode);
        return (client, userId);
    }

    private static string FirstErrorField(JsonElement problem) => problem.GetProperty("errors").EnumerateObject().First().Name;
}
