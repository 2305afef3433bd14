using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Sluice.Storage;
using Sluice.Tests.TestSupport;

namespace Sluice.Tests.Identity;

/// <summary>
/// Passwords, API keys, session and invitation tokens never reach a log line (at any level) or the database in a
/// readable form, on the success paths and on the error paths that handle them.
/// </summary>
public abstract class CredentialCanaryTests(DatabaseProvider provider)
{
    [Fact]
    public async Task Credentials_never_appear_in_logs_or_storage()
    {
        await using var database = await TestDatabase.CreateAsync(provider);
        await using var sluice = new SluiceFactory(database);
        var password = "canary-pw-" + Guid.NewGuid().ToString("N");
        var newPassword = "canary-pw2-" + Guid.NewGuid().ToString("N");
        var wrongPassword = "canary-wrong-" + Guid.NewGuid().ToString("N");
        var overLong = "canary-long-" + new string('q', 80);
        var secrets = new List<string> { password, newPassword, wrongPassword, overLong };

        using var client = sluice.Anonymous();
        await client.PostAsJsonAsync("/api/v1/auth/signup", new { email = "c@example.com", name = "C", password = overLong, ageAttestation = true });
        await client.PostAsJsonAsync("/api/v1/auth/signup", new { email = "c@example.com", name = "C", password, ageAttestation = true });
        await client.PostAsJsonAsync("/api/v1/auth/login", new { email = "c@example.com", password = wrongPassword });
        await client.PostAsJsonAsync("/api/v1/auth/login", new { email = "nobody@example.com", password = wrongPassword });
        var login = await client.PostAsJsonAsync("/api/v1/auth/login", new { email = "c@example.com", password });
        secrets.Add(login.Headers.GetValues("Set-Cookie").Single().Split(';')[0]["sluice_session=".Length..]);
        var orgId = await SluiceFactory.CreateOrganizationAsync(client);
        var (keyId, key) = await SluiceFactory.CreateKeyAsync(client, orgId, "management:read");
        secrets.Add(key);
        var rotated = await (await client.PostAsJsonAsync($"/api/v1/orgs/{orgId}/keys/{keyId}/rotate", new { })).Content.ReadFromJsonAsync<JsonElement>();
        secrets.Add(rotated.GetProperty("key").GetString()!);
        using (var keyClient = sluice.WithKey(key))
        {
            Assert.Equal(HttpStatusCode.OK, (await keyClient.GetAsync($"/api/v1/orgs/{orgId}")).StatusCode);
        }

        var forged = key[..^6] + "000000";
        using (var forgedClient = sluice.WithKey(forged))
        {
            await forgedClient.GetAsync($"/api/v1/orgs/{orgId}");
        }

        var invitation = await (await client.PostAsJsonAsync($"/api/v1/orgs/{orgId}/invitations", new { email = "d@example.com", role = "member" }))
            .Content.ReadFromJsonAsync<JsonElement>();
        secrets.Add(invitation.GetProperty("token").GetString()!);
        await client.PostAsJsonAsync("/api/v1/invitations/accept", new { token = invitation.GetProperty("token").GetString() });
        await client.PostAsJsonAsync("/api/v1/me/password", new { currentPassword = wrongPassword, newPassword });
        await client.PostAsJsonAsync("/api/v1/me/password", new { currentPassword = password, newPassword });
        secrets.Add(Assert.Single(sluice.Credentials.Written).Secret);

        var logs = sluice.Logs.All;
        var stored = await Canary.DumpDatabaseAsync(database);
        Assert.Contains("signed in", logs, StringComparison.Ordinal); // the capture works
        Assert.Contains("c@example.com", stored, StringComparison.Ordinal); // the dump works
        foreach (var secret in secrets)
        {
            Canary.AssertAbsent(logs, secret, "the logs");
            Canary.AssertAbsent(stored, secret, "the database");
        }
    }
}

public sealed class SqliteCredentialCanaryTests() : CredentialCanaryTests(DatabaseProvider.Sqlite);

public sealed class PostgresCredentialCanaryTests() : CredentialCanaryTests(DatabaseProvider.Postgres);
