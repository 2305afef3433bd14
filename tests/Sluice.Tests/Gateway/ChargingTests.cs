using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Sluice.Gateway;
using Sluice.Gateway.Pipeline;
using Sluice.Storage;
using Sluice.Tests.TestSupport;
using static Sluice.Tests.TestSupport.GatewayKit;

namespace Sluice.Tests.Gateway;

/// <summary>Every answer is charged for what it used: the provider is told the limit that was held, usage it omits is counted, malformed answers are free 502s.</summary>
public sealed class ChargingTests
{
    /// <summary>A priced model <c>m</c> (1 micro-unit per token each way) on <paramref name="upstream"/>, and a funded tenant's client.</summary>
    private static async Task<(HttpClient Client, Guid OrgId)> PricedAsync(SluiceFactory sluice, FakeUpstream upstream, long fundMicros = 1_000_000)
    {
        using var op = await OperatorAsync(sluice);
        var route = await ModelOnAsync(op, upstream.BaseUrl);
        var price = await op.PostAsJsonAsync($"/api/v1/catalog/routes/{route}/prices", new { inputPerMillionMicros = 1_000_000, outputPerMillionMicros = 1_000_000 });
        Assert.True(price.IsSuccessStatusCode, await price.Content.ReadAsStringAsync());
        await sluice.Services.GetRequiredService<Catalog>().RefreshAsync(default); // this replica sees the price now
        var (_, orgId, key) = await TenantAsync(sluice);
        var credit = await op.PostAsJsonAsync($"/api/v1/admin/orgs/{orgId}/wallet/credits", new { amountMicros = fundMicros, reason = "test funds" });
        Assert.True(credit.IsSuccessStatusCode, await credit.Content.ReadAsStringAsync());
        return (sluice.WithKey(key), orgId);
    }

    [Fact]
    public async Task Conflicting_limits_are_held_at_the_larger_the_provider_is_told_it_and_what_was_delivered_is_charged()
    {
        await using var upstream = await FakeUpstream.StartAsync();
        upstream.Usage = (11, 500); // the provider delivers 500 tokens, as max_completion_tokens allowed
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Sqlite);
        await using var sluice = new SluiceFactory(database);
        var (client, _) = await PricedAsync(sluice, upstream);
        using var _client = client;

        var response = await client.PostAsync("/v1/chat/completions", Json("""{"model":"m","messages":[{"role":"user","content":"hi"}],"max_completion_tokens":500,"max_tokens":1}"""));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var sent = JsonDocument.Parse(Assert.Single(upstream.Requests).Body).RootElement;
        Assert.Equal(500, sent.GetProperty("max_tokens").GetInt32());
        Assert.Equal(500, sent.GetProperty("max_completion_tokens").GetInt32());
        var usage = Assert.Single(await UsageAsync(database, 1));
        Assert.Equal((11L, 500L, 511L, false), (usage.PromptTokens, usage.CompletionTokens, usage.CostMicros, usage.TokensCountedLocally));
    }

    [Fact]
    public async Task A_request_without_a_limit_sends_the_provider_the_default_that_was_held()
    {
        await using var upstream = await FakeUpstream.StartAsync();
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Sqlite);
        await using var sluice = new SluiceFactory(database, new Dictionary<string, string?> { ["Billing:DefaultMaxTokens"] = "321" });
        var (client, _) = await PricedAsync(sluice, upstream);
        using var _client = client;

        Assert.Equal(HttpStatusCode.OK, (await client.PostAsync("/v1/chat/completions", Chat("m", "hi"))).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await client.PostAsync("/v1/completions", Json("""{"model":"m","prompt":"hi"}"""))).StatusCode);

        var sent = upstream.Requests.Select(r => JsonDocument.Parse(r.Body).RootElement).ToList();
        Assert.Equal(321, sent[0].GetProperty("max_completion_tokens").GetInt32());
        Assert.False(sent[0].TryGetProperty("max_tokens", out _));
        Assert.Equal(321, sent[1].GetProperty("max_tokens").GetInt32()); // the legacy endpoint's field
    }

    [Theory]
    [InlineData(DatabaseProvider.Sqlite)]
    [InlineData(DatabaseProvider.Postgres)]
    public async Task An_answer_without_usage_is_charged_from_Sluices_own_count_and_says_so(DatabaseProvider provider)
    {
        await using var upstream = await FakeUpstream.StartAsync();
        upstream.OmitUsage = true;
        upstream.Reply = "The answer to that is forty-two, as everybody knows.";
        await using var database = await TestDatabase.CreateAsync(provider);
        await using var sluice = new SluiceFactory(database);
        var (client, _) = await PricedAsync(sluice, upstream);
        using var _client = client;

        var whole = await client.PostAsync("/v1/chat/completions", Chat("m", "What is six times seven?"));
        var stream = await client.PostAsync("/v1/chat/completions", Chat("m", "What is six times seven?", stream: true));

        Assert.Equal(HttpStatusCode.OK, whole.StatusCode);
        Assert.Equal(HttpStatusCode.OK, stream.StatusCode);
        Assert.Equal("[DONE]", Events(await stream.Content.ReadAsStringAsync())[^1]);
        var usage = await UsageAsync(database, 2);
        var prompt = TokenCounter.Count("user\nWhat is six times seven?\n");
        Assert.All(usage, u => Assert.True(u.TokensCountedLocally));
        Assert.All(usage, u => Assert.Equal(prompt, u.PromptTokens));
        Assert.Equal(TokenCounter.Count(upstream.Reply), usage.Single(u => !u.Stream).CompletionTokens);
        Assert.Equal(Math.Max(5, TokenCounter.Count("w0 w1 w2 w3 w4 ")), usage.Single(u => u.Stream).CompletionTokens); // each chunk at least one token
        Assert.All(usage, u => Assert.Equal(u.PromptTokens + u.CompletionTokens, u.CostMicros));
        Assert.All(usage, u => Assert.True(u.CostMicros > 0));
    }

    [Fact]
    public async Task A_malformed_answer_is_a_502_in_OpenAIs_shape_and_charged_nothing()
    {
        await using var upstream = await FakeUpstream.StartAsync();
        upstream.RawAnswer = """{"id":"up-1","choices":[{"message":{"content":"half an ans""";
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Sqlite);
        await using var sluice = new SluiceFactory(database);
        var (client, _) = await PricedAsync(sluice, upstream);
        using var _client = client;

        var response = await client.PostAsync("/v1/chat/completions", Chat("m", "hi"));

        Assert.Equal(HttpStatusCode.BadGateway, response.StatusCode);
        var error = (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("error");
        Assert.Equal("upstream_malformed", error.GetProperty("code").GetString());
        var usage = Assert.Single(await UsageAsync(database, 1));
        Assert.Equal((502, 0L, 0L, 0L), (usage.Status, usage.PromptTokens, usage.CompletionTokens, usage.CostMicros));
    }

    [Fact]
    public async Task A_provider_that_cuts_the_connection_mid_answer_is_a_502_charged_nothing()
    {
        await using var upstream = await FakeUpstream.StartAsync();
        upstream.CutAnswerAfterBytes = 40;
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Sqlite);
        await using var sluice = new SluiceFactory(database);
        var (client, _) = await PricedAsync(sluice, upstream);
        using var _client = client;

        var response = await client.PostAsync("/v1/chat/completions", Chat("m", "hi"));

        Assert.Equal(HttpStatusCode.BadGateway, response.StatusCode);
        Assert.Equal("upstream_incomplete", (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("error").GetProperty("code").GetString());
        Assert.True(response.Headers.Contains("x-request-id"));
        var usage = Assert.Single(await UsageAsync(database, 1));
        Assert.Equal((502, 0L), (usage.Status, usage.CostMicros));
    }
}
