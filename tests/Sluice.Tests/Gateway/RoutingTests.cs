using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Sluice.Storage;
using Sluice.Tests.TestSupport;
using static Sluice.Tests.TestSupport.GatewayKit;

namespace Sluice.Tests.Gateway;

/// <summary>Routing to real HTTP providers on loopback: rewriting, fallback, circuit breaking, streaming failures, privacy, limits.</summary>
public sealed class RoutingTests
{
    [Fact]
    public async Task Requests_reach_the_provider_with_its_model_name_its_decrypted_key_and_a_request_for_stream_usage()
    {
        await using var upstream = await FakeUpstream.StartAsync();
        upstream.SetCookie = "provider-session=first-tenant; Path=/";
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Sqlite);
        await using var sluice = new SluiceFactory(database);
        using var op = await OperatorAsync(sluice);
        await ProviderAsync(op, "vllm", upstream.BaseUrl, apiKey: "upstream-secret-123");
        var provider = (await (await op.GetAsync("/api/v1/providers")).Content.ReadFromJsonAsync<JsonElement>())[0].GetProperty("id").GetGuid();
        Assert.Equal(HttpStatusCode.OK, (await op.PatchAsJsonAsync($"/api/v1/providers/{provider}", new { headers = new Dictionary<string, string> { ["X-Tenant-Token"] = "header-secret-55" } })).StatusCode);
        await ModelAsync(op, "llama-3");
        await RouteAsync(op, "llama-3", "vllm", "meta-llama/Llama-3-8B");
        var (_, _, key) = await TenantAsync(sluice);
        using var client = sluice.WithKey(key);

        var whole = await client.PostAsync("/v1/chat/completions", Chat("llama-3", "hi"));
        var stream = await client.PostAsync("/v1/chat/completions", Chat("llama-3", "hi", stream: true));
        var embedding = await client.PostAsync("/v1/embeddings", Json("""{"model":"llama-3","input":"x"}"""));

        Assert.Equal(HttpStatusCode.OK, whole.StatusCode);
        Assert.Contains("Hello from upstream", await whole.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.OK, embedding.StatusCode);
        var requests = upstream.Requests.ToList();
        Assert.All(requests, r => Assert.Equal("Bearer upstream-secret-123", r.Headers.Authorization.ToString()));
        Assert.All(requests, r => Assert.Equal("header-secret-55", r.Headers["X-Tenant-Token"].ToString()));
        Assert.All(requests, r => Assert.False(r.Headers.ContainsKey("Cookie"))); // a provider's cookie never rides along on later requests
        Assert.All(requests, r => Assert.Equal("meta-llama/Llama-3-8B", JsonDocument.Parse(r.Body).RootElement.GetProperty("model").GetString()));
        Assert.True(JsonDocument.Parse(requests[1].Body).RootElement.GetProperty("stream_options").GetProperty("include_usage").GetBoolean());
        var events = Events(await stream.Content.ReadAsStringAsync());
        Assert.Equal("[DONE]", events[^1]);
        Assert.DoesNotContain(events, e => e.Contains("\"choices\":[]", StringComparison.Ordinal)); // the client did not ask for usage

        var usage = await UsageAsync(database, 3);
        Assert.Equal([(11L, 7L, 3L), (11L, 5L, 0L), (4L, 0L, 0L)], usage.Select(u => (u.PromptTokens, u.CompletionTokens, u.CachedTokens)));
        await using var db = database.CreateContext();
        var stored = await Canary.DumpDatabaseAsync(database);
        Assert.DoesNotContain("upstream-secret-123", stored, StringComparison.Ordinal);
        Assert.DoesNotContain("header-secret-55", stored, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Failures_before_anything_is_streamed_fall_back_to_the_next_priority()
    {
        await using var failing = await FakeUpstream.StartAsync();
        await using var healthy = await FakeUpstream.StartAsync();
        failing.FailWith = 503;
        healthy.Reply = "from the backup";
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Sqlite);
        await using var sluice = new SluiceFactory(database);
        using var op = await OperatorAsync(sluice);
        await ProviderAsync(op, "primary", failing.BaseUrl);
        await ProviderAsync(op, "gone", new Uri($"http://127.0.0.1:{SluiceProcess.FreePort()}/v1/"));
        await ProviderAsync(op, "backup", healthy.BaseUrl);
        await ModelAsync(op, "m");
        await RouteAsync(op, "m", "primary", "m1", priority: 0);
        await RouteAsync(op, "m", "gone", "m2", priority: 1);
        await RouteAsync(op, "m", "backup", "m3", priority: 2);
        var (_, _, key) = await TenantAsync(sluice);
        using var client = sluice.WithKey(key);

        var response = await client.PostAsync("/v1/chat/completions", Chat("m", "hi"));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Contains("from the backup", await response.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        Assert.Equal(1, failing.Hits);
        Assert.Equal(1, healthy.Hits);
        Assert.Equal(3, Assert.Single(await UsageAsync(database, 1)).Attempts);
    }

    [Fact]
    public async Task Client_errors_from_the_provider_pass_through_without_fallback()
    {
        await using var rejecting = await FakeUpstream.StartAsync();
        await using var backup = await FakeUpstream.StartAsync();
        rejecting.FailWith = 400;
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Sqlite);
        await using var sluice = new SluiceFactory(database);
        using var op = await OperatorAsync(sluice);
        await ProviderAsync(op, "a", rejecting.BaseUrl);
        await ProviderAsync(op, "b", backup.BaseUrl);
        await ModelAsync(op, "m");
        await RouteAsync(op, "m", "a", "m", priority: 0);
        await RouteAsync(op, "m", "b", "m", priority: 1);
        var (_, _, key) = await TenantAsync(sluice);
        using var client = sluice.WithKey(key);

        var response = await client.PostAsync("/v1/chat/completions", Chat("m", "hi"));

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Contains("fake_400", await response.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        Assert.Equal(0, backup.Hits);
    }

    [Fact]
    public async Task A_failing_route_opens_its_circuit_and_is_skipped_until_a_probe_succeeds()
    {
        await using var flaky = await FakeUpstream.StartAsync();
        await using var steady = await FakeUpstream.StartAsync();
        flaky.FailWith = 500;
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Sqlite);
        var clock = new ManualTimeProvider(DateTimeOffset.UtcNow); // the breaker reads the TimeProvider's wall time
        await using var sluice = new SluiceFactory(database, new Dictionary<string, string?>
        {
            ["Gateway:CircuitBreakerFailures"] = "2",
            ["Gateway:CircuitBreakerOpenDuration"] = "00:01:00",
        }, clock);
        using var op = await OperatorAsync(sluice);
        await ProviderAsync(op, "flaky", flaky.BaseUrl);
        await ProviderAsync(op, "steady", steady.BaseUrl);
        await ModelAsync(op, "m");
        await RouteAsync(op, "m", "flaky", "m", priority: 0);
        await RouteAsync(op, "m", "steady", "m", priority: 1);
        var (_, _, key) = await TenantAsync(sluice);
        using var client = sluice.WithKey(key);

        for (var i = 0; i < 4; i++)
        {
            Assert.Equal(HttpStatusCode.OK, (await client.PostAsync("/v1/chat/completions", Chat("m", "hi"))).StatusCode);
        }

        Assert.Equal(2, flaky.Hits); // opened after two failures; the next two requests went straight to the backup
        flaky.FailWith = null;
        clock.Advance(TimeSpan.FromSeconds(59));
        Assert.Equal(HttpStatusCode.OK, (await client.PostAsync("/v1/chat/completions", Chat("m", "hi"))).StatusCode);
        Assert.Equal(2, flaky.Hits); // still open just before the open duration ends
        clock.Advance(TimeSpan.FromSeconds(2));
        await client.PostAsync("/v1/chat/completions", Chat("m", "hi")); // the half-open probe succeeds
        await client.PostAsync("/v1/chat/completions", Chat("m", "hi"));
        Assert.Equal(4, flaky.Hits);
    }

    [Fact]
    public async Task A_provider_that_does_not_answer_in_time_is_abandoned_for_the_next()
    {
        await using var slow = await FakeUpstream.StartAsync();
        await using var fast = await FakeUpstream.StartAsync();
        slow.DelayBeforeHeaders = TimeSpan.FromSeconds(10);
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Sqlite);
        await using var sluice = new SluiceFactory(database, new Dictionary<string, string?> { ["Gateway:FirstByteTimeout"] = "00:00:00.500" });
        using var op = await OperatorAsync(sluice);
        await ProviderAsync(op, "slow", slow.BaseUrl);
        await ProviderAsync(op, "fast", fast.BaseUrl);
        await ModelAsync(op, "m");
        await RouteAsync(op, "m", "slow", "m", priority: 0);
        await RouteAsync(op, "m", "fast", "m", priority: 1);
        var (_, _, key) = await TenantAsync(sluice);
        using var client = sluice.WithKey(key);

        var response = await client.PostAsync("/v1/chat/completions", Chat("m", "hi"));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(1, fast.Hits);
    }

    [Fact]
    public async Task A_failure_mid_stream_ends_with_an_error_event_never_a_silent_success()
    {
        await using var upstream = await FakeUpstream.StartAsync();
        upstream.BreakStreamAfter = 2;
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Sqlite);
        await using var sluice = new SluiceFactory(database);
        using var op = await OperatorAsync(sluice);
        await ProviderAsync(op, "p", upstream.BaseUrl);
        await ModelAsync(op, "m");
        await RouteAsync(op, "m", "p", "m");
        var (_, _, key) = await TenantAsync(sluice);
        using var client = sluice.WithKey(key);

        var response = await client.PostAsync("/v1/chat/completions", Chat("m", "hi", stream: true));

        var raw = await response.Content.ReadAsStringAsync();
        var events = Events(raw);
        Assert.True(events.Count > 0, $"{(int)response.StatusCode}: {raw} / {string.Join(",", (await UsageAsync(database, 1)).Select(u => u.Status + u.ErrorType))}");
        Assert.Contains("upstream_stream_error", events[^1], StringComparison.Ordinal);
        Assert.DoesNotContain("[DONE]", events);
        var usage = Assert.Single(await UsageAsync(database, 1));
        Assert.Equal(502, usage.Status);
        Assert.Equal(Math.Max(2, Sluice.Gateway.Pipeline.TokenCounter.Count("w0 w1 ")), usage.CompletionTokens); // what was produced before the failure (Sluice's own count)
        Assert.True(usage.TokensCountedLocally);
    }

    [Fact]
    public async Task A_client_that_disconnects_mid_stream_cancels_the_upstream_and_is_metered()
    {
        await using var upstream = await FakeUpstream.StartAsync();
        upstream.Chunks = 200;
        upstream.DelayBetweenChunks = TimeSpan.FromMilliseconds(20);
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Sqlite);
        await using var sluice = new SluiceFactory(database);
        using var op = await OperatorAsync(sluice);
        await ProviderAsync(op, "p", upstream.BaseUrl);
        await ModelAsync(op, "m");
        await RouteAsync(op, "m", "p", "m");
        var (_, _, key) = await TenantAsync(sluice);
        using var client = sluice.WithKey(key);

        using (var cancel = new CancellationTokenSource())
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions") { Content = Chat("m", "hi", stream: true) };
            using var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cancel.Token);
            await using var body = await response.Content.ReadAsStreamAsync(cancel.Token);
            var buffer = new byte[256];
            _ = await body.ReadAsync(buffer, cancel.Token);
            await Task.Delay(100);
            await cancel.CancelAsync();
        }

        await upstream.StreamCancelled.Task.WaitAsync(TimeSpan.FromSeconds(10));
        var usage = Assert.Single(await UsageAsync(database, 1));
        Assert.Equal(499, usage.Status);
        Assert.True(usage.CompletionTokens > 0, "the tokens streamed before the disconnect are metered");
    }

    [Fact]
    public async Task An_organization_requiring_zero_retention_never_reaches_a_retaining_provider_and_fails_closed()
    {
        await using var retaining = await FakeUpstream.StartAsync();
        await using var compliant = await FakeUpstream.StartAsync();
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Sqlite);
        await using var sluice = new SluiceFactory(database);
        using var op = await OperatorAsync(sluice);
        await ProviderAsync(op, "retaining", retaining.BaseUrl);
        await ProviderAsync(op, "compliant", compliant.BaseUrl);
        await ModelAsync(op, "mixed");
        await ModelAsync(op, "retaining-only");
        await RouteAsync(op, "mixed", "retaining", "m", priority: 0, retainsData: true);
        await RouteAsync(op, "mixed", "compliant", "m", priority: 1);
        await RouteAsync(op, "retaining-only", "retaining", "m", trainsOnData: true, retainsData: true);
        var (owner, orgId, key) = await TenantAsync(sluice);
        using var client = sluice.WithKey(key);
        Assert.Equal(HttpStatusCode.OK, (await client.PostAsync("/v1/chat/completions", Chat("mixed", "hi"))).StatusCode); // the policy is cached now
        Assert.Equal(1, retaining.Hits);

        // The replica that saved the policy applies it to the very next request, cache or not.
        Assert.Equal(HttpStatusCode.OK, (await owner.PatchAsJsonAsync($"/api/v1/orgs/{orgId}", new { requireZeroRetention = true, requireNoTraining = true })).StatusCode);

        var mixed = await client.PostAsync("/v1/chat/completions", Chat("mixed", "hi"));
        var refused = await client.PostAsync("/v1/chat/completions", Chat("retaining-only", "hi"));

        Assert.Equal(HttpStatusCode.OK, mixed.StatusCode);
        Assert.Equal(HttpStatusCode.Forbidden, refused.StatusCode);
        Assert.Contains("no_compliant_route", await refused.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        Assert.Equal(1, retaining.Hits);
        Assert.Equal(1, compliant.Hits);
    }

    [Fact]
    public async Task Keys_and_organizations_are_rate_limited_with_Retry_After_and_ratelimit_headers()
    {
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Sqlite);
        await using var sluice = new SluiceFactory(database);
        var (owner, orgId, _) = await TenantAsync(sluice);
        var created = await owner.PostAsync($"/api/v1/orgs/{orgId}/keys", Json("""{"name":"limited","scopes":["inference"],"requestsPerMinute":2}"""));
        var limitedKey = JsonDocument.Parse(await created.Content.ReadAsStringAsync()).RootElement.GetProperty("key").GetString()!;
        using var client = sluice.WithKey(limitedKey);

        var first = await client.PostAsync("/v1/chat/completions", Chat("echo", "hi"));
        await client.PostAsync("/v1/chat/completions", Chat("echo", "hi"));
        var third = await client.PostAsync("/v1/chat/completions", Chat("echo", "hi"));

        Assert.Equal("2", first.Headers.GetValues("x-ratelimit-limit-requests").Single());
        Assert.Equal("1", first.Headers.GetValues("x-ratelimit-remaining-requests").Single());
        Assert.Equal(HttpStatusCode.TooManyRequests, third.StatusCode);
        Assert.True(third.Headers.RetryAfter?.Delta > TimeSpan.Zero);
        Assert.Contains("rate_limit_exceeded", await third.Content.ReadAsStringAsync(), StringComparison.Ordinal);

        using var op = await OperatorAsync(sluice);
        Assert.Equal(HttpStatusCode.OK, (await op.PatchAsJsonAsync($"/api/v1/admin/orgs/{orgId}/limits", new { requestsPerMinute = 1 })).StatusCode);
        var (_, another) = await SluiceFactory.CreateKeyAsync(owner, orgId, "inference");
        using var second = sluice.WithKey(another);
        Assert.Equal(HttpStatusCode.OK, (await second.PostAsync("/v1/chat/completions", Chat("echo", "hi"))).StatusCode);
        Assert.Equal(HttpStatusCode.TooManyRequests, (await second.PostAsync("/v1/chat/completions", Chat("echo", "hi"))).StatusCode);
        Assert.Contains(await UsageAsync(database, 5), u => u.Status == 429);
    }

    [Fact]
    public async Task Anthropic_speaks_chat_completions_both_ways_streaming_included()
    {
        await using var upstream = await FakeUpstream.StartAsync();
        upstream.Reply = "Bonjour";
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Sqlite);
        await using var sluice = new SluiceFactory(database);
        using var op = await OperatorAsync(sluice);
        await ProviderAsync(op, "anthropic", upstream.BaseUrl, kind: "anthropic", apiKey: "ant-key");
        await ModelAsync(op, "claude");
        await RouteAsync(op, "claude", "anthropic", "claude-3-5-haiku-latest");
        var (_, _, key) = await TenantAsync(sluice);
        using var client = sluice.WithKey(key);
        var body = Json("""{"model":"claude","messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"Hi"}],"max_tokens":50,"stop":"END"}""");

        using var whole = JsonDocument.Parse(await (await client.PostAsync("/v1/chat/completions", body)).Content.ReadAsStringAsync());
        var stream = Events(await (await client.PostAsync("/v1/chat/completions", Chat("claude", "Hi", stream: true, includeUsage: true))).Content.ReadAsStringAsync());
        var unsupported = await client.PostAsync("/v1/embeddings", Json("""{"model":"claude","input":"x"}"""));

        Assert.Equal("Bonjour", whole.RootElement.GetProperty("choices")[0].GetProperty("message").GetProperty("content").GetString());
        Assert.Equal(11, whole.RootElement.GetProperty("usage").GetProperty("prompt_tokens").GetInt32());
        Assert.Equal(2, whole.RootElement.GetProperty("usage").GetProperty("prompt_tokens_details").GetProperty("cached_tokens").GetInt32());
        var sent = JsonDocument.Parse(upstream.Requests.First().Body).RootElement;
        Assert.Equal("Be brief.", sent.GetProperty("system").GetString());
        Assert.Equal(50, sent.GetProperty("max_tokens").GetInt32());
        Assert.Equal("END", sent.GetProperty("stop_sequences")[0].GetString());
        Assert.Equal("ant-key", upstream.Requests.First().Headers["x-api-key"].ToString());
        var text = string.Concat(stream.Where(e => e.Contains("\"content\"", StringComparison.Ordinal))
            .Select(e => JsonDocument.Parse(e).RootElement.GetProperty("choices")[0].GetProperty("delta").GetProperty("content").GetString()));
        Assert.Equal("Hello from Claude", text);
        Assert.Equal("[DONE]", stream[^1]);
        Assert.Equal(3, JsonDocument.Parse(stream[^2]).RootElement.GetProperty("usage").GetProperty("completion_tokens").GetInt32());
        Assert.Equal(HttpStatusCode.BadRequest, unsupported.StatusCode);
    }

    [Fact]
    public async Task A_field_of_the_wrong_type_for_an_Anthropic_route_is_a_400_and_leaves_the_route_serving()
    {
        await using var upstream = await FakeUpstream.StartAsync();
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Sqlite);
        await using var sluice = new SluiceFactory(database);
        using var op = await OperatorAsync(sluice);
        await ProviderAsync(op, "anthropic", upstream.BaseUrl, kind: "anthropic", apiKey: "ant-key");
        await ModelAsync(op, "claude");
        await RouteAsync(op, "claude", "anthropic", "claude-3-5-haiku-latest");
        var (_, _, key) = await TenantAsync(sluice);
        using var client = sluice.WithKey(key);

        for (var i = 0; i < 8; i++) // more than the circuit breaker's threshold: client input must not count against the route
        {
            using var refused = await client.PostAsync("/v1/chat/completions", Json("""{"model":"claude","messages":[{"role":5,"content":"Hi"}]}"""));
            Assert.Equal(HttpStatusCode.BadRequest, refused.StatusCode);
            var error = JsonDocument.Parse(await refused.Content.ReadAsStringAsync()).RootElement.GetProperty("error");
            Assert.Equal("invalid_request_error", error.GetProperty("type").GetString());
            Assert.Equal("messages", error.GetProperty("param").GetString());
        }

        using var served = await client.PostAsync("/v1/chat/completions", Chat("claude", "Hi"));
        Assert.Equal(HttpStatusCode.OK, served.StatusCode);
        Assert.Single(upstream.Requests);
        Assert.Equal(8, (await UsageAsync(database, 9)).Count(u => u.Status == 400));
    }
}

public sealed class LoadBalancingTests
{
    [Fact]
    public async Task Routes_of_equal_priority_share_concurrent_load()
    {
        await using var a = await FakeUpstream.StartAsync();
        await using var b = await FakeUpstream.StartAsync();
        a.DelayBeforeHeaders = b.DelayBeforeHeaders = TimeSpan.FromMilliseconds(300);
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Sqlite);
        await using var sluice = new SluiceFactory(database);
        using var op = await OperatorAsync(sluice);
        await ProviderAsync(op, "a", a.BaseUrl);
        await ProviderAsync(op, "b", b.BaseUrl);
        await ModelAsync(op, "m");
        await RouteAsync(op, "m", "a", "m");
        await RouteAsync(op, "m", "b", "m");
        var (_, _, key) = await TenantAsync(sluice);
        using var client = sluice.WithKey(key);

        var responses = await Task.WhenAll(Enumerable.Range(0, 10).Select(_ => client.PostAsync("/v1/chat/completions", Chat("m", "hi"))));

        Assert.All(responses, r => Assert.Equal(HttpStatusCode.OK, r.StatusCode));
        Assert.InRange(a.Hits, 3, 7); // fewest outstanding requests first: concurrent requests spread over both
        Assert.Equal(10, a.Hits + b.Hits);
    }
}
