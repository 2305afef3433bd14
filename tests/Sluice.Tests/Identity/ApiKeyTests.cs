using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.EntityFrameworkCore;
using Sluice.Crypto;
using Sluice.Storage;
using Sluice.Tests.TestSupport;

namespace Sluice.Tests.Identity;

public sealed class ApiKeyTests
{
    [Fact]
    public async Task A_key_is_shown_once_stored_as_bcrypt_and_carries_its_settings()
    {
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Sqlite);
        await using var sluice = new SluiceFactory(database, new Dictionary<string, string?> { ["Identity:ApiKeyHashCost"] = "11" });
        var (owner, ownerId) = await sluice.SignUpAndLoginAsync("owner@example.com");
        var orgId = await SluiceFactory.CreateOrganizationAsync(owner);
        var expires = DateTimeOffset.UtcNow.AddDays(30);

        var created = await owner.PostAsJsonAsync($"/api/v1/orgs/{orgId}/keys", new
        {
            name = "deploy",
            scopes = new[] { "inference", "management:read" },
            models = new[] { "llama-3-8b", "echo" },
            expiresAt = expires,
            spendLimits = new { dailyMicros = 5_000_000, monthlyMicros = 100_000_000, totalMicros = 1_000_000_000 },
            requestsPerMinute = 60,
            tokensPerMinute = 90_000,
        });
        var body = await created.Content.ReadFromJsonAsync<JsonElement>();
        var key = body.GetProperty("key").GetString()!;
        var keyId = body.GetProperty("details").GetProperty("id").GetGuid();
        var listed = await owner.GetStringAsync($"/api/v1/orgs/{orgId}/keys");

        Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        Assert.Matches("^sk-sluice-", key);
        Assert.DoesNotContain(key, listed, StringComparison.Ordinal);
        Assert.Contains(key[..18], listed, StringComparison.Ordinal); // the public prefix is shown
        await using var db = database.CreateContext();
        var row = await db.ApiKeys.SingleAsync(k => k.Id == keyId);
        Assert.StartsWith("$2b$11$", row.SecretHash, StringComparison.Ordinal);
        Assert.True(Bcrypt.Verify(key, row.SecretHash));
        Assert.Equal(ownerId, row.CreatedByUserId);
        Assert.Equal("llama-3-8b echo", row.AllowedModels);
        Assert.Equal((5_000_000L, 100_000_000L, 1_000_000_000L, 60, 90_000), (row.SpendLimitDailyMicros!.Value, row.SpendLimitMonthlyMicros!.Value, row.SpendLimitTotalMicros!.Value, row.RequestsPerMinute!.Value, row.TokensPerMinute!.Value));
        Assert.Equal(expires.ToUnixTimeSeconds(), row.ExpiresAt!.Value.ToUnixTimeSeconds());
    }

    [Theory]
    [InlineData("""{"name":""}""", "name")]
    [InlineData("""{"name":"k","scopes":["root"]}""", "scopes")]
    [InlineData("""{"name":"k","scopes":[]}""", "scopes")]
    [InlineData("""{"name":"k","models":["has space"]}""", "models")]
    [InlineData("""{"name":"k","expiresAt":"2001-01-01T00:00:00Z"}""", "expiresAt")]
    [InlineData("""{"name":"k","spendLimits":{"dailyMicros":-5}}""", "spendLimits.dailyMicros")]
    [InlineData("""{"name":"k","requestsPerMinute":0}""", "requestsPerMinute")]
    public async Task Invalid_key_requests_name_the_field_and_create_nothing(string body, string field)
    {
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Sqlite);
        await using var sluice = new SluiceFactory(database);
        var (owner, _) = await sluice.SignUpAndLoginAsync("owner@example.com");
        var orgId = await SluiceFactory.CreateOrganizationAsync(owner);

        var response = await owner.PostAsync($"/api/v1/orgs/{orgId}/keys", new StringContent(body, System.Text.Encoding.UTF8, "application/json"));

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.True((await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("errors").TryGetProperty(field, out _));
        await using var db = database.CreateContext();
        Assert.Equal(0, await db.ApiKeys.CountAsync());
    }

    [Fact]
    public async Task Key_scopes_decide_what_a_key_may_do_in_its_own_organization()
    {
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Sqlite);
        await using var sluice = new SluiceFactory(database);
        var (owner, _) = await sluice.SignUpAndLoginAsync("owner@example.com");
        var orgId = await SluiceFactory.CreateOrganizationAsync(owner);
        var (_, reader) = await SluiceFactory.CreateKeyAsync(owner, orgId, "management:read");
        var (_, writer) = await SluiceFactory.CreateKeyAsync(owner, orgId, "management:write");
        var (_, inference) = await SluiceFactory.CreateKeyAsync(owner, orgId, "inference");

        using var readerClient = sluice.WithKey(reader);
        using var writerClient = sluice.WithKey(writer);
        using var inferenceClient = sluice.WithKey(inference);
        using var headerClient = sluice.CreateClient();
        headerClient.DefaultRequestHeaders.Add("x-api-key", reader);

        Assert.Equal(HttpStatusCode.OK, (await readerClient.GetAsync($"/api/v1/orgs/{orgId}/keys")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await headerClient.GetAsync($"/api/v1/orgs/{orgId}")).StatusCode);
        Assert.Equal(HttpStatusCode.Forbidden, (await readerClient.PostAsJsonAsync($"/api/v1/orgs/{orgId}/keys", new { name = "x" })).StatusCode);
        Assert.Equal(HttpStatusCode.Created, (await writerClient.PostAsJsonAsync($"/api/v1/orgs/{orgId}/keys", new { name = "x" })).StatusCode);
        Assert.Equal(HttpStatusCode.Forbidden, (await inferenceClient.GetAsync($"/api/v1/orgs/{orgId}/keys")).StatusCode);
        Assert.Equal(HttpStatusCode.Forbidden, (await writerClient.GetAsync("/api/v1/me")).StatusCode);
        Assert.Equal(HttpStatusCode.Forbidden, (await writerClient.PostAsJsonAsync("/api/v1/orgs", new { name = "Via key" })).StatusCode);
        using var bogus = sluice.WithKey("sk-sluice-" + new string('A', 38));
        Assert.Equal(HttpStatusCode.Unauthorized, (await bogus.GetAsync($"/api/v1/orgs/{orgId}")).StatusCode);
    }

    [Fact]
    public async Task Revocation_takes_effect_at_once_and_rotation_keeps_the_old_secret_for_the_grace_period()
    {
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Sqlite);
        await using var sluice = new SluiceFactory(database);
        var (owner, _) = await sluice.SignUpAndLoginAsync("owner@example.com");
        var orgId = await SluiceFactory.CreateOrganizationAsync(owner);
        var (revokedId, revoked) = await SluiceFactory.CreateKeyAsync(owner, orgId, "management:read");
        var (graceId, graced) = await SluiceFactory.CreateKeyAsync(owner, orgId, "management:read");
        var (abruptId, abrupt) = await SluiceFactory.CreateKeyAsync(owner, orgId, "management:read");
        using var revokedClient = sluice.WithKey(revoked);
        Assert.Equal(HttpStatusCode.OK, (await revokedClient.GetAsync($"/api/v1/orgs/{orgId}")).StatusCode);

        Assert.Equal(HttpStatusCode.NoContent, (await owner.DeleteAsync($"/api/v1/orgs/{orgId}/keys/{revokedId}")).StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, (await revokedClient.GetAsync($"/api/v1/orgs/{orgId}")).StatusCode);
        Assert.Equal(HttpStatusCode.Conflict, (await owner.PostAsJsonAsync($"/api/v1/orgs/{orgId}/keys/{revokedId}/rotate", new { })).StatusCode);

        var rotated = await (await owner.PostAsJsonAsync($"/api/v1/orgs/{orgId}/keys/{graceId}/rotate", new { gracePeriodSeconds = 3600 })).Content.ReadFromJsonAsync<JsonElement>();
        var newSecret = rotated.GetProperty("key").GetString()!;
        Assert.Equal(graceId, rotated.GetProperty("details").GetProperty("id").GetGuid());
        Assert.NotEqual(graced, newSecret);
        using var oldClient = sluice.WithKey(graced);
        using var newClient = sluice.WithKey(newSecret);
        Assert.Equal(HttpStatusCode.OK, (await oldClient.GetAsync($"/api/v1/orgs/{orgId}")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await newClient.GetAsync($"/api/v1/orgs/{orgId}")).StatusCode);

        using var abruptClient = sluice.WithKey(abrupt);
        Assert.Equal(HttpStatusCode.OK, (await abruptClient.GetAsync($"/api/v1/orgs/{orgId}")).StatusCode);
        await owner.PostAsJsonAsync($"/api/v1/orgs/{orgId}/keys/{abruptId}/rotate", new { gracePeriodSeconds = 0 });
        Assert.Equal(HttpStatusCode.Unauthorized, (await abruptClient.GetAsync($"/api/v1/orgs/{orgId}")).StatusCode);
    }

    [Fact]
    public async Task Keys_record_when_they_were_last_used()
    {
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Sqlite);
        await using var sluice = new SluiceFactory(database);
        var (owner, _) = await sluice.SignUpAndLoginAsync("owner@example.com");
        var orgId = await SluiceFactory.CreateOrganizationAsync(owner);
        var (keyId, key) = await SluiceFactory.CreateKeyAsync(owner, orgId, "management:read");
        using var client = sluice.WithKey(key);
        await client.GetAsync($"/api/v1/orgs/{orgId}");

        await ((Sluice.Identity.ApiKeyUsageRecorder)sluice.Services.GetService(typeof(Sluice.Identity.ApiKeyUsageRecorder))!).FlushAsync(default);

        var listed = await owner.GetFromJsonAsync<JsonElement>($"/api/v1/orgs/{orgId}/keys/{keyId}");
        Assert.Equal(JsonValueKind.String, listed.GetProperty("lastUsedAt").ValueKind);
    }
}

/// <summary>Revocation and rotation on one replica reach another replica sharing the PostgreSQL database within two seconds.</summary>
public sealed class ApiKeyReplicaTests
{
    [Fact]
    public async Task A_key_revoked_on_one_replica_stops_working_on_another_within_two_seconds()
    {
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Postgres);
        var settings = new Dictionary<string, string?> { ["Identity:KeyChangePollInterval"] = "00:00:01" };
        await using var replicaA = new SluiceFactory(database, settings);
        await using var replicaB = new SluiceFactory(database, settings);
        var (owner, _) = await replicaA.SignUpAndLoginAsync("owner@example.com");
        var orgId = await SluiceFactory.CreateOrganizationAsync(owner);
        var (keyId, key) = await SluiceFactory.CreateKeyAsync(owner, orgId, "management:read");
        using var onB = replicaB.WithKey(key);
        Assert.Equal(HttpStatusCode.OK, (await onB.GetAsync($"/api/v1/orgs/{orgId}")).StatusCode); // now cached on B

        Assert.Equal(HttpStatusCode.NoContent, (await owner.DeleteAsync($"/api/v1/orgs/{orgId}/keys/{keyId}")).StatusCode);
        var clock = Stopwatch.StartNew();
        HttpStatusCode status;
        do
        {
            status = (await onB.GetAsync($"/api/v1/orgs/{orgId}")).StatusCode;
        }
        while (status == HttpStatusCode.OK && clock.Elapsed < TimeSpan.FromSeconds(5));

        Assert.Equal(HttpStatusCode.Unauthorized, status);
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(2), $"replica B accepted the revoked key for {clock.Elapsed}");
    }
}
