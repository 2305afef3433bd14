using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Sluice.Storage;
using Sluice.Tests.TestSupport;

namespace Sluice.Tests.Identity;

/// <summary>
/// A member or key of one organization can neither read nor change anything of another: every org-scoped endpoint
/// answers 404, exactly as for an id that does not exist, and the other organization is left as it was.
/// </summary>
public abstract class TenantIsolationTests(DatabaseProvider provider)
{
    [Fact]
    public async Task Nothing_of_another_organization_can_be_read_or_changed_by_its_id()
    {
        await using var database = await TestDatabase.CreateAsync(provider);
        await using var sluice = new SluiceFactory(database);
        var (ownerA, _) = await sluice.SignUpAndLoginAsync("a@example.com");
        var (ownerB, ownerBId) = await sluice.SignUpAndLoginAsync("b@example.com");
        var orgA = await SluiceFactory.CreateOrganizationAsync(ownerA, "A");
        var orgB = await SluiceFactory.CreateOrganizationAsync(ownerB, "B");
        var (_, keyA) = await SluiceFactory.CreateKeyAsync(ownerA, orgA, "management:read", "management:write", "inference");
        var (keyBId, keyB) = await SluiceFactory.CreateKeyAsync(ownerB, orgB, "management:read");
        var invitationB = (await (await ownerB.PostAsJsonAsync($"/api/v1/orgs/{orgB}/invitations", new { email = "x@example.com", role = "member" }))
            .Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetGuid();
        using var keyAClient = sluice.WithKey(keyA);

        var attempts = new (HttpMethod Method, string Url, object? Body)[]
        {
            (HttpMethod.Get, $"/api/v1/orgs/{orgB}", null),
            (HttpMethod.Patch, $"/api/v1/orgs/{orgB}", new { name = "Taken over" }),
            (HttpMethod.Get, $"/api/v1/orgs/{orgB}/members", null),
            (HttpMethod.Patch, $"/api/v1/orgs/{orgB}/members/{ownerBId}", new { role = "viewer" }),
            (HttpMethod.Delete, $"/api/v1/orgs/{orgB}/members/{ownerBId}", null),
            (HttpMethod.Get, $"/api/v1/orgs/{orgB}/invitations", null),
            (HttpMethod.Post, $"/api/v1/orgs/{orgB}/invitations", new { email = "spy@example.com", role = "owner" }),
            (HttpMethod.Delete, $"/api/v1/orgs/{orgB}/invitations/{invitationB}", null),
            (HttpMethod.Get, $"/api/v1/orgs/{orgB}/keys", null),
            (HttpMethod.Post, $"/api/v1/orgs/{orgB}/keys", new { name = "backdoor" }),
            (HttpMethod.Get, $"/api/v1/orgs/{orgB}/keys/{keyBId}", null),
            (HttpMethod.Delete, $"/api/v1/orgs/{orgB}/keys/{keyBId}", null),
            (HttpMethod.Post, $"/api/v1/orgs/{orgB}/keys/{keyBId}/rotate", new { }),
            // B's key id under A's org: the org check passes, the key lookup must not.
            (HttpMethod.Get, $"/api/v1/orgs/{orgA}/keys/{keyBId}", null),
            (HttpMethod.Delete, $"/api/v1/orgs/{orgA}/keys/{keyBId}", null),
            (HttpMethod.Post, $"/api/v1/orgs/{orgA}/keys/{keyBId}/rotate", new { }),
            (HttpMethod.Patch, $"/api/v1/orgs/{orgA}/members/{ownerBId}", new { role = "viewer" }),
            (HttpMethod.Delete, $"/api/v1/orgs/{orgA}/members/{ownerBId}", null),
            (HttpMethod.Delete, $"/api/v1/orgs/{orgA}/invitations/{invitationB}", null),
        };

        foreach (var (callerName, caller) in new[] { ("owner of A", ownerA), ("management key of A", keyAClient) })
        {
            foreach (var (method, url, body) in attempts)
            {
                using var request = new HttpRequestMessage(method, url) { Content = body is null ? null : JsonContent.Create(body) };
                var response = await caller.SendAsync(request);
                Assert.True(response.StatusCode == HttpStatusCode.NotFound, $"{callerName}: {method} {url} answered {(int)response.StatusCode}");
            }
        }

        // B is untouched: its name, its owner, its key and its invitation.
        var orgBNow = await ownerB.GetFromJsonAsync<JsonElement>($"/api/v1/orgs/{orgB}");
        Assert.Equal("B", orgBNow.GetProperty("name").GetString());
        var membersB = await ownerB.GetFromJsonAsync<JsonElement>($"/api/v1/orgs/{orgB}/members");
        Assert.Equal("owner", Assert.Single(membersB.EnumerateArray()).GetProperty("role").GetString());
        Assert.Single((await ownerB.GetFromJsonAsync<JsonElement>($"/api/v1/orgs/{orgB}/keys")).EnumerateArray());
        Assert.Single((await ownerB.GetFromJsonAsync<JsonElement>($"/api/v1/orgs/{orgB}/invitations")).EnumerateArray());
        using var keyBClient = sluice.WithKey(keyB);
        Assert.Equal(HttpStatusCode.OK, (await keyBClient.GetAsync($"/api/v1/orgs/{orgB}")).StatusCode);

        // And listings show each caller only its own organization.
        var listedByA = await ownerA.GetFromJsonAsync<JsonElement>("/api/v1/orgs");
        var listedByKeyA = await keyAClient.GetFromJsonAsync<JsonElement>("/api/v1/orgs");
        Assert.Equal(orgA, Assert.Single(listedByA.EnumerateArray()).GetProperty("id").GetGuid());
        Assert.Equal(orgA, Assert.Single(listedByKeyA.EnumerateArray()).GetProperty("id").GetGuid());
    }

    [Fact]
    public async Task Operator_endpoints_are_closed_to_everyone_else()
    {
        await using var database = await TestDatabase.CreateAsync(provider);
        await using var sluice = new SluiceFactory(database);
        var (person, _) = await sluice.SignUpAndLoginAsync("a@example.com");
        var orgId = await SluiceFactory.CreateOrganizationAsync(person);
        var (_, key) = await SluiceFactory.CreateKeyAsync(person, orgId, "management:write");
        using var keyClient = sluice.WithKey(key);
        using var anonymous = sluice.Anonymous();

        foreach (var client in new[] { person, keyClient })
        {
            Assert.Equal(HttpStatusCode.Forbidden, (await client.GetAsync("/api/v1/operators")).StatusCode);
            Assert.Equal(HttpStatusCode.Forbidden, (await client.GetAsync("/api/v1/admin/orgs")).StatusCode);
            Assert.Equal(HttpStatusCode.Forbidden, (await client.PostAsJsonAsync("/api/v1/operators", new { email = "a@example.com" })).StatusCode);
        }

        Assert.Equal(HttpStatusCode.Unauthorized, (await anonymous.GetAsync("/api/v1/operators")).StatusCode);
    }
}

public sealed class SqliteTenantIsolationTests() : TenantIsolationTests(DatabaseProvider.Sqlite);

public sealed class PostgresTenantIsolationTests() : TenantIsolationTests(DatabaseProvider.Postgres);
