using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Sluice.Gateway;
using Sluice.Storage;
using Sluice.Tests.TestSupport;
using static Sluice.Tests.Gateway.Protocols.Anthropic.AnthropicMessagesTests;
using static Sluice.Tests.Gateway.Protocols.Responses.ResponsesTests;
using static Sluice.Tests.TestSupport.GatewayKit;

namespace Sluice.Tests.Gateway.Protocols;

/// <summary>
/// What a call through /v1/messages or /v1/responses is metered and charged when the provider fails in its own words:
/// an error event in a native stream, an error object in a chat stream, an answer the protocol cannot express.
/// </summary>
public sealed class ProtocolChargingTests
{
    private const string MessagesBody = """{"model":"m","max_tokens":64,"messages":[{"role":"user","content":"hi"}]}""";

    /// <summary>A priced tenant key and its org, with the provider of <paramref name="kind"/> serving model <c>m</c>.</summary>
    private static async Task<HttpClient> PricedAsync(SluiceFactory sluice, FakeUpstream upstream, string kind = "openai-compatible", bool responses = false)
    {
        using var op = await OperatorAsync(sluice);
        var created = await op.PostAsJsonAsync("/api/v1/providers", new { name = "p", kind, baseUrl = upstream.BaseUrl.ToString(), apiKey = "sk-provider", responses });
        Assert.True(created.StatusCode == HttpStatusCode.Created, await created.Content.ReadAsStringAsync());
        await ModelAsync(op, "m");
        var route = await RouteAsync(op, "m", "p", "up-m");
        var price = await op.PostAsJsonAsync($"/api/v1/catalog/routes/{route}/prices", new { inputPerMillionMicros = 1_000_000, outputPerMillionMicros = 1_000_000, cachedInputPerMillionMicros = 1_000_000 });
        Assert.True(price.IsSuccessStatusCode, await price.Content.ReadAsStringAsync());
        await sluice.Services.GetRequiredService<Catalog>().RefreshAsync(default);
        var (_, orgId, key) = await TenantAsync(sluice);
        var credit = await op.PostAsJsonAsync($"/api/v1/admin/orgs/{orgId}/wallet/credits", new { amountMicros = 1_000_000, reason = "test funds" });
        Assert.True(credit.IsSuccessStatusCode, await credit.Content.ReadAsStringAsync());
        var client = AnthropicClient(sluice, key);
        client.DefaultRequestHeaders.Authorization = new("Bearer", key);
        return client;
    }

    [Fact]
    public async Task An_anthropic_stream_ending_in_an_error_event_is_a_502_charged_nothing()
    {
        await using var upstream = await FakeUpstream.StartAsync();
        upstream.AnthropicEvents = """
            event: message_start
            data: {"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","model":"up-m","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":9,"output_tokens":1}}}

            event: error
            data: {"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}


            """;
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Sqlite);
        await using var sluice = new SluiceFactory(database);
        using var client = await PricedAsync(sluice, upstream, kind: "anthropic");

        using var streamed = await client.SendAsync(Messages(MessagesBody.Replace("\"max_tokens\":64", "\"max_tokens\":64,\"stream\":true", StringComparison.Ordinal)));

        var events = NamedEvents(await streamed.Content.ReadAsStringAsync());
        Assert.Equal(["message_start", "error"], events.Select(e => e.Event));
        Assert.Equal("overloaded_error", events[1].Data.GetProperty("error").GetProperty("type").GetString());
        var metered = Assert.Single(await UsageAsync(database, 1));
        Assert.Equal((502, "upstream_stream_error", 0L, 0L, 0L), (metered.Status, metered.ErrorType, metered.PromptTokens, metered.CompletionTokens, metered.CostMicros));
    }

    [Fact]
    public async Task A_responses_stream_ending_in_error_or_response_failed_is_a_502_charged_only_what_the_provider_reported()
    {
        await using var upstream = await FakeUpstream.StartAsync();
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Sqlite);
        await using var sluice = new SluiceFactory(database);
        using var client = await PricedAsync(sluice, upstream, responses: true);
        const string created = """
            event: response.created
            data: {"type":"response.created","sequence_number":0,"response":{"id":"resp_1","object":"response","status":"in_progress","output":[],"usage":null}}


            """;

        upstream.RawEvents = created + """
            event: error
            data: {"type":"error","sequence_number":1,"code":"server_error","message":"The server had an error","param":null}


            """;
        using var errored = await client.PostAsync("/v1/responses", Json("""{"model":"m","input":"hi","stream":true}"""));
        Assert.Equal(["response.created", "error"], TypedEvents(await errored.Content.ReadAsStringAsync()).Select(e => e.Event));
        var first = Assert.Single(await UsageAsync(database, 1));
        Assert.Equal((502, "upstream_stream_error", 0L, 0L, 0L), (first.Status, first.ErrorType, first.PromptTokens, first.CompletionTokens, first.CostMicros));

        upstream.RawEvents = created + """
            event: response.failed
            data: {"type":"response.failed","sequence_number":1,"response":{"id":"resp_1","object":"response","status":"failed","error":{"code":"server_error","message":"failed"},"output":[],"usage":{"input_tokens":13,"input_tokens_details":{"cached_tokens":0},"output_tokens":0,"output_tokens_details":{"reasoning_tokens":0},"total_tokens":13}}}


            """;
        using var failed = await client.PostAsync("/v1/responses", Json("""{"model":"m","input":"hi","stream":true}"""));
        Assert.Equal("response.failed", TypedEvents(await failed.Content.ReadAsStringAsync())[^1].Event);
        var second = (await UsageAsync(database, 2))[^1];
        Assert.Equal((502, "upstream_stream_error", 13L, 0L, 13L, false), (second.Status, second.ErrorType, second.PromptTokens, second.CompletionTokens, second.CostMicros, second.TokensCountedLocally));
    }

    [Fact]
    public async Task An_error_object_in_a_chat_stream_ends_every_protocols_stream_as_a_failure_not_a_success()
    {
        await using var upstream = await FakeUpstream.StartAsync();
        upstream.RawEvents = """
            data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"up-m","choices":[{"index":0,"delta":{"role":"assistant","content":"Hi"},"finish_reason":null}]}

            data: {"error":{"message":"engine crashed","type":"InternalServerError","param":null,"code":500}}

            data: [DONE]


            """;
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Sqlite);
        await using var sluice = new SluiceFactory(database);
        using var client = await PricedAsync(sluice, upstream);

        using var messages = await client.SendAsync(Messages(MessagesBody.Replace("\"max_tokens\":64", "\"max_tokens\":64,\"stream\":true", StringComparison.Ordinal)));
        using var responses = await client.PostAsync("/v1/responses", Json("""{"model":"m","input":"hi","stream":true}"""));
        using var chat = await client.PostAsync("/v1/chat/completions", Json("""{"model":"m","messages":[{"role":"user","content":"hi"}],"stream":true}"""));

        var messageEvents = NamedEvents(await messages.Content.ReadAsStringAsync());
        Assert.Equal("error", messageEvents[^1].Event);
        Assert.DoesNotContain(messageEvents, e => e.Event == "message_stop");
        var responseEvents = TypedEvents(await responses.Content.ReadAsStringAsync());
        Assert.Equal("error", responseEvents[^1].Event);
        Assert.DoesNotContain(responseEvents, e => e.Event == "response.completed");
        var chatEvents = Events(await chat.Content.ReadAsStringAsync());
        Assert.DoesNotContain("[DONE]", chatEvents);
        Assert.Equal("upstream_stream_error", JsonDocument.Parse(chatEvents[^1]).RootElement.GetProperty("error").GetProperty("code").GetString());
        var metered = await UsageAsync(database, 3);
        Assert.Equal(3, metered.Count);
        Assert.All(metered, e => Assert.Equal((502, "upstream_stream_error"), (e.Status, e.ErrorType)));
    }

    [Fact]
    public async Task An_answer_the_protocol_cannot_express_is_a_502_charged_nothing()
    {
        await using var upstream = await FakeUpstream.StartAsync();
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Sqlite);
        await using var sluice = new SluiceFactory(database);
        using var client = await PricedAsync(sluice, upstream);

        // TGI-style arguments given as an object, not a string.
        upstream.RawAnswer = """{"id":"c1","object":"chat.completion","created":1,"model":"up-m","choices":[{"index":0,"message":{"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"f","arguments":{"a":1}}}]},"finish_reason":"tool_calls"}],"usage":{"prompt_tokens":11,"completion_tokens":7,"total_tokens":18}}""";
        using var responses = await client.PostAsync("/v1/responses", Json("""{"model":"m","input":"hi"}"""));
        // Arguments that are not JSON, with no length limit to explain them.
        upstream.RawAnswer = """{"id":"c2","object":"chat.completion","created":1,"model":"up-m","choices":[{"index":0,"message":{"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"f","arguments":"{\"a\":"}}]},"finish_reason":"tool_calls"}],"usage":{"prompt_tokens":11,"completion_tokens":7,"total_tokens":18}}""";
        using var messages = await client.SendAsync(Messages(MessagesBody));

        Assert.Equal(HttpStatusCode.BadGateway, responses.StatusCode);
        Assert.Equal("upstream_malformed", JsonDocument.Parse(await responses.Content.ReadAsStringAsync()).RootElement.GetProperty("error").GetProperty("code").GetString());
        Assert.Equal(HttpStatusCode.BadGateway, messages.StatusCode);
        Assert.Equal("error", JsonDocument.Parse(await messages.Content.ReadAsStringAsync()).RootElement.GetProperty("type").GetString());
        var metered = await UsageAsync(database, 2);
        Assert.Equal(2, metered.Count);
        Assert.All(metered, e => Assert.Equal((502, 0L, 0L), (e.Status, e.PromptTokens, e.CostMicros)));
    }

    [Fact]
    public async Task A_tool_call_cut_off_by_the_length_limit_is_answered_as_max_tokens_with_the_text_so_far()
    {
        await using var upstream = await FakeUpstream.StartAsync();
        upstream.RawAnswer = """{"id":"c1","object":"chat.completion","created":1,"model":"up-m","choices":[{"index":0,"message":{"role":"assistant","content":"Let me look.","tool_calls":[{"id":"call_1","type":"function","function":{"name":"f","arguments":"{\"city\":\"Pa"}}]},"finish_reason":"length"}],"usage":{"prompt_tokens":11,"completion_tokens":7,"total_tokens":18}}""";
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Sqlite);
        await using var sluice = new SluiceFactory(database);
        using var client = await PricedAsync(sluice, upstream);

        using var messages = await client.SendAsync(Messages(MessagesBody));

        var text = await messages.Content.ReadAsStringAsync();
        Assert.True(messages.StatusCode == HttpStatusCode.OK, text);
        var answer = JsonDocument.Parse(text).RootElement;
        Assert.Equal("max_tokens", answer.GetProperty("stop_reason").GetString());
        var block = Assert.Single(answer.GetProperty("content").EnumerateArray());
        Assert.Equal(("text", "Let me look."), (block.GetProperty("type").GetString(), block.GetProperty("text").GetString()));
        var metered = Assert.Single(await UsageAsync(database, 1));
        Assert.Equal((200, 11L, 7L, 18L), (metered.Status, metered.PromptTokens, metered.CompletionTokens, metered.CostMicros));
    }

    [Fact]
    public async Task An_answer_without_usage_shows_the_caller_the_counts_the_ledger_charges()
    {
        await using var upstream = await FakeUpstream.StartAsync();
        upstream.RawAnswer = """{"id":"c1","object":"chat.completion","created":1,"model":"up-m","choices":[{"index":0,"message":{"role":"assistant","content":"Hello there, friend."},"finish_reason":"stop"}]}""";
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Sqlite);
        await using var sluice = new SluiceFactory(database);
        using var client = await PricedAsync(sluice, upstream);

        using var messages = await client.SendAsync(Messages(MessagesBody));
        using var responses = await client.PostAsync("/v1/responses", Json("""{"model":"m","input":"hi"}"""));

        var messageUsage = JsonDocument.Parse(await messages.Content.ReadAsStringAsync()).RootElement.GetProperty("usage");
        var responseUsage = JsonDocument.Parse(await responses.Content.ReadAsStringAsync()).RootElement.GetProperty("usage");
        var metered = await UsageAsync(database, 2);
        var (forMessages, forResponses) = (metered.Single(e => e.Endpoint == "messages"), metered.Single(e => e.Endpoint == "responses"));
        Assert.True(forMessages.TokensCountedLocally && forMessages.PromptTokens > 0 && forMessages.CompletionTokens > 0);
        Assert.Equal((forMessages.PromptTokens, forMessages.CompletionTokens), (messageUsage.GetProperty("input_tokens").GetInt64(), messageUsage.GetProperty("output_tokens").GetInt64()));
        Assert.Equal((forResponses.PromptTokens, forResponses.CompletionTokens), (responseUsage.GetProperty("input_tokens").GetInt64(), responseUsage.GetProperty("output_tokens").GetInt64()));
    }
}
