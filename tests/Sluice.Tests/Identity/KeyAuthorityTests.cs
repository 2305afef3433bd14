using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.EntityFrameworkCore;
using Sluice.Identity;
using Sluice.Storage;
using Sluice.Tests.TestSupport;

namespace Sluice.Tests.Identity;

/// <summary>
/// A key never carries more authority than the person who made it: its scopes are bounded at creation by the
/// creator's role, every use is checked against the creator's current role, and removing the creator stops the key
/// at once unless an admin reassigned it to the organization first.
/// </summary>
public abstract class KeyAuthorityTests(DatabaseProvider provider)
{
    [Fact]
    public async Task A_member_cannot_create_a_key_with_scopes_above_their_role()
    {
        await using var database = await TestDatabase.CreateAsync(provider);
        await using var sluice = new SluiceFactory(database);
        var (owner, _) = await sluice.SignUpAndLoginAsync("owner@example.com");
        var orgId = await SluiceFactory.CreateOrganizationAsync(owner);
        var member = await sluice.AddMemberAsync(owner, orgId, "member@example.com", "member");

        var refused = await member.PostAsJsonAsync($"/api/v1/orgs/{orgId}/keys", new { name = "escalate", scopes = new[] { "inference", "management:write" } });

        Assert.Equal(HttpStatusCode.Forbidden, refused.StatusCode);
        Assert.Equal("application/problem+json", refused.Content.Headers.ContentType?.MediaType);
        var problem = await refused.Content.ReadFromJsonAsync<JsonElement>();
        Assert.Contains("management:write", problem.GetProperty("errors").GetProperty("scopes")[0].GetString(), StringComparison.Ordinal);
        Assert.Contains("member", problem.GetProperty("detail").GetString(), StringComparison.Ordinal);
        await using (var db = database.CreateContext())
        {
            Assert.Equal(0, await db.ApiKeys.CountAsync());
        }

        // What the role allows is still granted; an admin may still grant management:write.
        await SluiceFactory.CreateKeyAsync(member, orgId, "inference", "management:read");
        var admin = await sluice.AddMemberAsync(owner, orgId, "admin@example.com", "admin");
        await SluiceFactory.CreateKeyAsync(admin, orgId, "management:write");
    }

    [Fact]
    public async Task A_demoted_members_inference_key_loses_what_the_new_role_may_not_grant_on_v1_too()
    {
        await using var database = await TestDatabase.CreateAsync(provider);
        await using var sluice = new SluiceFactory(database);
        var (owner, _) = await sluice.SignUpAndLoginAsync("owner@example.com");
        var orgId = await SluiceFactory.CreateOrganizationAsync(owner);
        var bob = await sluice.AddMemberAsync(owner, orgId, "bob@example.com", "member");
        var bobId = (await (await bob.GetAsync("/api/v1/me")).Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetGuid();
        var (_, bobKey) = await SluiceFactory.CreateKeyAsync(bob, orgId, "inference");
        using var key = sluice.WithKey(bobKey);
        Assert.Equal(HttpStatusCode.OK, (await key.GetAsync("/v1/models")).StatusCode); // verified and cached

        Assert.Equal(HttpStatusCode.OK, (await owner.PatchAsJsonAsync($"/api/v1/orgs/{orgId}/members/{bobId}", new { role = "viewer" })).StatusCode);

        Assert.Equal(HttpStatusCode.Forbidden, (await key.GetAsync("/v1/models")).StatusCode); // a viewer may grant no inference
        Assert.Equal(HttpStatusCode.OK, (await owner.PatchAsJsonAsync($"/api/v1/orgs/{orgId}/members/{bobId}", new { role = "member" })).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await key.GetAsync("/v1/models")).StatusCode); // and gets it back with the role
    }

    [Fact]
    public async Task A_key_acts_with_its_creators_current_role_so_a_demoted_admins_key_escalates_nothing()
    {
        await using var database = await TestDatabase.CreateAsync(provider);
        await using var sluice = new SluiceFactory(database);
        var (owner, _) = await sluice.SignUpAndLoginAsync("owner@example.com");
        var orgId = await SluiceFactory.CreateOrganizationAsync(owner);
        var (ownerKeyId, _) = await SluiceFactory.CreateKeyAsync(owner, orgId, "inference");
        var alice = await sluice.AddMemberAsync(owner, orgId, "alice@example.com", "admin");
        var aliceId = (await (await alice.GetAsync("/api/v1/me")).Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetGuid();
        var (_, aliceKey) = await SluiceFactory.CreateKeyAsync(alice, orgId, "management:read", "management:write", "inference");
        Assert.Equal(HttpStatusCode.OK, (await owner.PatchAsJsonAsync($"/api/v1/orgs/{orgId}/members/{aliceId}", new { role = "member" })).StatusCode);
        using var key = sluice.WithKey(aliceKey);

        var attempts = new (string What, HttpMethod Method, string Url, object? Body)[]
        {
            ("make themselves admin", HttpMethod.Patch, $"/api/v1/orgs/{orgId}/members/{aliceId}", new { role = "admin" }),
            ("invite an admin", HttpMethod.Post, $"/api/v1/orgs/{orgId}/invitations", new { email = "crony@example.com", role = "admin" }),
            ("revoke the owner's key", HttpMethod.Delete, $"/api/v1/orgs/{orgId}/keys/{ownerKeyId}", null),
            ("change the billing webhook", HttpMethod.Put, $"/api/v1/orgs/{orgId}/wallet/alert", new { thresholdMicros = 1000, url = "https://hooks.example.com/x" }),
            ("grant training consent", HttpMethod.Put, $"/api/v1/orgs/{orgId}/consents", new { purpose = "training", granted = true }),
            ("create a management key", HttpMethod.Post, $"/api/v1/orgs/{orgId}/keys", new { name = "again", scopes = new[] { "management:write" } }),
        };
        foreach (var (what, method, url, body) in attempts)
        {
            using var request = new HttpRequestMessage(method, url) { Content = body is null ? null : JsonContent.Create(body) };
            var response = await key.SendAsync(request);
            Assert.True(response.StatusCode == HttpStatusCode.Forbidden, $"a demoted admin's key could {what}: {(int)response.StatusCode}");
        }

        await using var db = database.CreateContext();
        Assert.Equal(OrgRole.Member, (await db.Memberships.SingleAsync(m => m.UserId == aliceId)).Role);
        Assert.False(await db.Invitations.AnyAsync(i => i.Email == "crony@example.com"));
        Assert.Null((await db.ApiKeys.SingleAsync(k => k.Id == ownerKeyId)).RevokedAt);
        var org = await db.Organizations.SingleAsync(o => o.Id == orgId);
        Assert.Null(org.LowBalanceWebhookUrl);
        Assert.False(org.TrainingConsent);

        // What the member role allows, the key still does.
        Assert.Equal(HttpStatusCode.OK, (await key.GetAsync($"/api/v1/orgs/{orgId}/members")).StatusCode);
    }

    [Fact]
    public async Task Removing_a_member_stops_their_keys_at_once_unless_an_admin_reassigned_them_first()
    {
        await using var database = await TestDatabase.CreateAsync(provider);
        await using var sluice = new SluiceFactory(database);
        var (owner, _) = await sluice.SignUpAndLoginAsync("owner@example.com");
        var orgId = await SluiceFactory.CreateOrganizationAsync(owner);
        var bob = await sluice.AddMemberAsync(owner, orgId, "bob@example.com", "member");
        var bobId = (await (await bob.GetAsync("/api/v1/me")).Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetGuid();
        var (_, personal) = await SluiceFactory.CreateKeyAsync(bob, orgId, "inference", "management:read");
        var (sharedId, shared) = await SluiceFactory.CreateKeyAsync(bob, orgId, "inference", "management:read");
        using var personalClient = sluice.WithKey(personal);
        using var sharedClient = sluice.WithKey(shared);
        Assert.Equal(HttpStatusCode.OK, (await personalClient.GetAsync("/v1/models")).StatusCode); // now cached
        Assert.Equal(HttpStatusCode.OK, (await sharedClient.GetAsync("/v1/models")).StatusCode);

        // Only an admin or owner reassigns; the member themselves cannot.
        Assert.Equal(HttpStatusCode.Forbidden, (await bob.PostAsync($"/api/v1/orgs/{orgId}/keys/{sharedId}/reassign", null)).StatusCode);
        var reassigned = await owner.PostAsync($"/api/v1/orgs/{orgId}/keys/{sharedId}/reassign", null);
        Assert.Equal(HttpStatusCode.OK, reassigned.StatusCode);
        Assert.Equal(JsonValueKind.Null, (await reassigned.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("createdBy").ValueKind);
        Assert.Equal(HttpStatusCode.NoContent, (await owner.DeleteAsync($"/api/v1/orgs/{orgId}/members/{bobId}")).StatusCode);

        Assert.Equal(HttpStatusCode.Unauthorized, (await personalClient.GetAsync("/v1/models")).StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, (await personalClient.GetAsync($"/api/v1/orgs/{orgId}")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await sharedClient.GetAsync("/v1/models")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await sharedClient.GetAsync($"/api/v1/orgs/{orgId}")).StatusCode);

        await using var db = database.CreateContext();
        var actions = await db.AuditEntries.AsNoTracking().OrderBy(e => e.Seq).Select(e => e.Action).ToListAsync();
        Assert.Contains("key.reassign", actions);
        Assert.True(actions.IndexOf("key.reassign") < actions.IndexOf("member.remove"));
    }

    [Fact]
    public async Task A_removed_members_key_stops_on_another_replica_within_the_change_watchers_window()
    {
        if (provider != DatabaseProvider.Postgres)
        {
            return; // replicas share PostgreSQL
        }

        await using var database = await TestDatabase.CreateAsync(provider);
        var settings = new Dictionary<string, string?> { ["Identity:KeyChangePollInterval"] = "00:00:01" };
        await using var replicaA = new SluiceFactory(database, settings);
        await using var replicaB = new SluiceFactory(database, settings);
        var (owner, _) = await replicaA.SignUpAndLoginAsync("owner@example.com");
        var orgId = await SluiceFactory.CreateOrganizationAsync(owner);
        var bob = await replicaA.AddMemberAsync(owner, orgId, "bob@example.com", "member");
        var bobId = (await (await bob.GetAsync("/api/v1/me")).Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetGuid();
        var (_, key) = await SluiceFactory.CreateKeyAsync(bob, orgId, "inference");
        using var onB = replicaB.WithKey(key);
        Assert.Equal(HttpStatusCode.OK, (await onB.GetAsync("/v1/models")).StatusCode); // cached on B

        Assert.Equal(HttpStatusCode.NoContent, (await owner.DeleteAsync($"/api/v1/orgs/{orgId}/members/{bobId}")).StatusCode);
        var clock = Stopwatch.StartNew();
        HttpStatusCode status;
        do
        {
            status = (await onB.GetAsync("/v1/models")).StatusCode;
        }
        while (status == HttpStatusCode.OK && clock.Elapsed < TimeSpan.FromSeconds(5));

        Assert.Equal(HttpStatusCode.Unauthorized, status);
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(2), $"replica B accepted the removed member's key for {clock.Elapsed}");
    }
}

public sealed class SqliteKeyAuthorityTests() : KeyAuthorityTests(DatabaseProvider.Sqlite);

public sealed class PostgresKeyAuthorityTests() : KeyAuthorityTests(DatabaseProvider.Postgres);
