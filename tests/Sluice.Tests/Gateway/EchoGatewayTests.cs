using System.Net;
using System.Text.Json;
using Sluice.Storage;
using Sluice.Tests.TestSupport;
using static Sluice.Tests.TestSupport.GatewayKit;

namespace Sluice.Tests.Gateway;

/// <summary>The OpenAI-compatible API against the built-in echo model: shapes, streaming, errors, metering.</summary>
public sealed class EchoGatewayTests
{
    [Fact]
    public async Task Chat_completion_has_OpenAIs_shape_real_usage_and_the_gateway_headers()
    {
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Sqlite);
        await using var sluice = new SluiceFactory(database);
        var (_, orgId, key) = await TenantAsync(sluice);
        using var client = sluice.WithKey(key);

        var response = await client.PostAsync("/v1/chat/completions", Chat("echo", "Hello there, world!"));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.StartsWith("req_", response.Headers.GetValues("x-request-id").Single(), StringComparison.Ordinal);
        Assert.True(long.Parse(response.Headers.GetValues("x-sluice-overhead-us").Single(), System.Globalization.CultureInfo.InvariantCulture) >= 0);
        using var body = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        var root = body.RootElement;
        Assert.Equal("chat.completion", root.GetProperty("object").GetString());
        Assert.Equal("Echo: Hello there, world!", root.GetProperty("choices")[0].GetProperty("message").GetProperty("content").GetString());
        Assert.Equal("stop", root.GetProperty("choices")[0].GetProperty("finish_reason").GetString());
        Assert.Equal(5, root.GetProperty("usage").GetProperty("prompt_tokens").GetInt32());
        Assert.Equal(7, root.GetProperty("usage").GetProperty("completion_tokens").GetInt32());

        var usage = Assert.Single(await UsageAsync(database, 1));
        Assert.Equal((orgId, "chat.completions", "echo", 200, 5L, 7L), (usage.OrganizationId!.Value, usage.Endpoint, usage.Model!, usage.Status, usage.PromptTokens, usage.CompletionTokens));
        Assert.Equal(response.Headers.GetValues("x-request-id").Single(), usage.RequestId);
        Assert.True(usage.LatencyMicros > 0 && usage.RequestBytes > 0 && usage.ResponseBytes > 0);
    }

    [Fact]
    public async Task Streams_end_with_DONE_and_carry_usage_only_when_the_client_asks()
    {
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Sqlite);
        await using var sluice = new SluiceFactory(database);
        var (_, _, key) = await TenantAsync(sluice);
        using var client = sluice.WithKey(key);

        var plain = await client.PostAsync("/v1/chat/completions", Chat("echo", "one two three", stream: true));
        var withUsage = await client.PostAsync("/v1/chat/completions", Chat("echo", "one two three", stream: true, includeUsage: true));

        Assert.Equal("text/event-stream", plain.Content.Headers.ContentType?.MediaType);
        var plainEvents = Events(await plain.Content.ReadAsStringAsync());
        var usageEvents = Events(await withUsage.Content.ReadAsStringAsync());
        Assert.Equal("[DONE]", plainEvents[^1]);
        Assert.DoesNotContain(plainEvents, e => e.Contains("\"prompt_tokens\"", StringComparison.Ordinal));
        var text = string.Concat(plainEvents.SkipLast(1).Select(e => JsonDocument.Parse(e).RootElement.GetProperty("choices"))
            .Where(c => c.GetArrayLength() > 0).Select(c => c[0].GetProperty("delta").TryGetProperty("content", out var t) ? t.GetString() : ""));
        Assert.Equal("Echo: one two three", text);
        using var usageChunk = JsonDocument.Parse(usageEvents[^2]);
        Assert.Equal(0, usageChunk.RootElement.GetProperty("choices").GetArrayLength());
        Assert.Equal(5, usageChunk.RootElement.GetProperty("usage").GetProperty("completion_tokens").GetInt32());

        var metered = await UsageAsync(database, 2);
        Assert.All(metered, e => Assert.True(e.Stream && e.CompletionTokens == 5 && e.TimeToFirstTokenMicros > 0));
    }

    [Fact]
    public async Task Completions_embeddings_and_models_answer_in_OpenAIs_shapes()
    {
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Sqlite);
        await using var sluice = new SluiceFactory(database);
        var (_, _, key) = await TenantAsync(sluice);
        using var client = sluice.WithKey(key);

        using var completion = JsonDocument.Parse(await (await client.PostAsync("/v1/completions", Json("""{"model":"echo","prompt":"Say this"}"""))).Content.ReadAsStringAsync());
        using var embeddings = JsonDocument.Parse(await (await client.PostAsync("/v1/embeddings", Json("""{"model":"echo","input":["a","b"]}"""))).Content.ReadAsStringAsync());
        using var models = JsonDocument.Parse(await client.GetStringAsync("/v1/models"));
        using var model = JsonDocument.Parse(await client.GetStringAsync("/v1/models/echo"));

        Assert.Equal("text_completion", completion.RootElement.GetProperty("object").GetString());
        Assert.Equal("Echo: Say this", completion.RootElement.GetProperty("choices")[0].GetProperty("text").GetString());
        Assert.Equal(2, embeddings.RootElement.GetProperty("data").GetArrayLength());
        var vector = embeddings.RootElement.GetProperty("data")[0].GetProperty("embedding").EnumerateArray().Select(v => v.GetDouble()).ToList();
        Assert.Equal(1.0, Math.Sqrt(vector.Sum(v => v * v)), 3);
        Assert.Equal("list", models.RootElement.GetProperty("object").GetString());
        var echo = Assert.Single(models.RootElement.GetProperty("data").EnumerateArray(), m => m.GetProperty("id").GetString() == "echo");
        Assert.Equal("sluice-test-model", echo.GetProperty("owned_by").GetString());
        Assert.True(echo.GetProperty("test_model").GetBoolean());
        Assert.Equal("model", model.RootElement.GetProperty("object").GetString());
        Assert.Equal(HttpStatusCode.NotFound, (await client.GetAsync("/v1/models/nope")).StatusCode);
    }

    public static TheoryData<string, string, int, string> BadRequests => new()
    {
        { "/v1/chat/completions", """{"model":"echo","messages":[{"role":"user","content":"x"}""", 400, "invalid_json" },
        { "/v1/chat/completions", """{"messages":[{"role":"user","content":"x"}]}""", 400, "missing_model" },
        { "/v1/chat/completions", """{"model":"echo","messages":"hello"}""", 400, "invalid_type" },
        { "/v1/chat/completions", """{"model":"echo","messages":[]}""", 400, "" },
        { "/v1/chat/completions", """{"model":"echo","messages":[{"role":"user","content":"x"}],"stream":"yes"}""", 400, "invalid_type" },
        { "/v1/chat/completions", """{"model":"echo","messages":[{"role":"user","content":"x"}],"max_tokens":-3}""", 400, "invalid_type" },
        { "/v1/chat/completions", """[1,2,3]""", 400, "" },
        { "/v1/chat/completions", """{"model":"gpt-nope","messages":[{"role":"user","content":"x"}]}""", 404, "model_not_found" },
        { "/v1/embeddings", """{"model":"echo"}""", 400, "" },
        { "/v1/completions", """{"model":"echo","prompt":42}""", 400, "invalid_type" },
    };

    [Theory]
    [MemberData(nameof(BadRequests))]
    public async Task Bad_requests_get_OpenAI_errors_and_are_still_metered(string path, string body, int status, string code)
    {
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Sqlite);
        await using var sluice = new SluiceFactory(database);
        var (_, _, key) = await TenantAsync(sluice);
        using var client = sluice.WithKey(key);

        var response = await client.PostAsync(path, Json(body));

        Assert.Equal(status, (int)response.StatusCode);
        using var error = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        var details = error.RootElement.GetProperty("error");
        Assert.False(string.IsNullOrEmpty(details.GetProperty("message").GetString()));
        Assert.Equal(JsonValueKind.String, details.GetProperty("type").ValueKind);
        if (code.Length > 0)
        {
            Assert.Equal(code, details.GetProperty("code").GetString());
        }

        var usage = Assert.Single(await UsageAsync(database, 1));
        Assert.Equal(status, usage.Status);
    }

    [Fact]
    public async Task A_body_over_the_limit_is_413()
    {
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Sqlite);
        await using var sluice = new SluiceFactory(database, new Dictionary<string, string?> { ["Gateway:MaxRequestBytes"] = "2048" });
        var (_, _, key) = await TenantAsync(sluice);
        using var client = sluice.WithKey(key);

        var response = await client.PostAsync("/v1/chat/completions", Chat("echo", new string('x', 5000)));

        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, response.StatusCode);
        Assert.Contains("request_too_large", await response.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        Assert.Equal(413, Assert.Single(await UsageAsync(database, 1)).Status);
    }

    [Fact]
    public async Task Keys_need_the_inference_scope_and_may_be_limited_to_models()
    {
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Sqlite);
        await using var sluice = new SluiceFactory(database);
        var (owner, orgId, _) = await TenantAsync(sluice);
        var (_, managementOnly) = await SluiceFactory.CreateKeyAsync(owner, orgId, "management:read");
        var restricted = await owner.PostAsync($"/api/v1/orgs/{orgId}/keys", Json("""{"name":"r","scopes":["inference"],"models":["llama-3"]}"""));
        var restrictedKey = JsonDocument.Parse(await restricted.Content.ReadAsStringAsync()).RootElement.GetProperty("key").GetString()!;
        using var noScope = sluice.WithKey(managementOnly);
        using var limited = sluice.WithKey(restrictedKey);
        using var anonymous = sluice.CreateClient();
        using var wrongKey = sluice.WithKey("sk-sluice-" + new string('Z', 38));

        var forbidden = await noScope.PostAsync("/v1/chat/completions", Chat("echo", "hi"));
        var notAllowed = await limited.PostAsync("/v1/chat/completions", Chat("echo", "hi"));
        var listed = JsonDocument.Parse(await limited.GetStringAsync("/v1/models"));
        var unauthenticated = await anonymous.PostAsync("/v1/chat/completions", Chat("echo", "hi"));
        var invalid = await wrongKey.GetAsync("/v1/models");

        Assert.Equal(HttpStatusCode.Forbidden, forbidden.StatusCode);
        Assert.Contains("insufficient_scope", await forbidden.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.Forbidden, notAllowed.StatusCode);
        Assert.Contains("model_not_allowed", await notAllowed.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        Assert.Equal(0, listed.RootElement.GetProperty("data").GetArrayLength());
        Assert.Equal(HttpStatusCode.Unauthorized, unauthenticated.StatusCode);
        Assert.Contains("invalid_api_key", await unauthenticated.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.Unauthorized, invalid.StatusCode);
    }
}
