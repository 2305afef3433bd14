using System.Net;
using System.Text.Json;
using Sluice.Storage;
using Sluice.Tests.TestSupport;
using static Sluice.Tests.TestSupport.GatewayKit;

namespace Sluice.Tests.Identity;

/// <summary>The /v1 API's one-step key check (<c>ApiKeyGate</c>): keys only, either header, scopes, OpenAI's error shape.</summary>
public sealed class ApiKeyGateTests
{
    [Fact]
    public async Task The_v1_API_takes_keys_only_by_either_header_and_refuses_sessions_revoked_keys_and_missing_scopes_in_OpenAIs_shape()
    {
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Sqlite);
        await using var sluice = new SluiceFactory(database);
        var (owner, orgId, key) = await TenantAsync(sluice); // owner: a signed-in person with a session cookie
        var (batchOnlyId, batchOnly) = await SluiceFactory.CreateKeyAsync(owner, orgId, "batch");
        using var byHeader = sluice.CreateClient();
        byHeader.DefaultRequestHeaders.Add("x-api-key", key);
        using var batchClient = sluice.WithKey(batchOnly);

        var viaHeader = await byHeader.PostAsync("/v1/chat/completions", Chat("echo", "hi"));
        var session = await owner.PostAsync("/v1/chat/completions", Chat("echo", "hi"));
        var sessionFiles = await owner.GetAsync("/v1/files");
        var batchOnChat = await batchClient.PostAsync("/v1/chat/completions", Chat("echo", "hi"));
        var batchOnFiles = await batchClient.GetAsync("/v1/files");
        Assert.Equal(HttpStatusCode.NoContent, (await owner.DeleteAsync($"/api/v1/orgs/{orgId}/keys/{batchOnlyId}")).StatusCode);
        var revoked = await batchClient.GetAsync("/v1/files");

        Assert.Equal(HttpStatusCode.OK, viaHeader.StatusCode);
        Assert.Equal(HttpStatusCode.OK, batchOnFiles.StatusCode);
        foreach (var (response, status, code) in new[]
        {
            (session, HttpStatusCode.Unauthorized, "invalid_api_key"),
            (sessionFiles, HttpStatusCode.Unauthorized, "invalid_api_key"),
            (revoked, HttpStatusCode.Unauthorized, "invalid_api_key"),
            (batchOnChat, HttpStatusCode.Forbidden, "insufficient_scope"),
        })
        {
            Assert.Equal(status, response.StatusCode);
            using var error = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
            Assert.Equal(code, error.RootElement.GetProperty("error").GetProperty("code").GetString());
            Assert.Equal("invalid_request_error", error.RootElement.GetProperty("error").GetProperty("type").GetString());
        }

        using var scopeError = JsonDocument.Parse(await batchOnChat.Content.ReadAsStringAsync());
        Assert.Contains("'inference'", scopeError.RootElement.GetProperty("error").GetProperty("message").GetString(), StringComparison.Ordinal);
    }
}
