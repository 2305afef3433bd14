using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Sluice.Gateway;
using Sluice.Storage;
using Sluice.Tests.TestSupport;
using static Sluice.Tests.TestSupport.GatewayKit;

namespace Sluice.Tests.Gateway.Protocols.Anthropic;

/// <summary>
/// <c>POST /v1/messages</c> and <c>/v1/messages/count_tokens</c> in Anthropic's shapes: to the echo model, translated to
/// an OpenAI-compatible provider (tools round trip), passed through to an Anthropic provider, and refused in Anthropic's
/// error shape, naming the field, never metered as a success.
/// </summary>
public sealed class AnthropicMessagesTests
{
    internal static HttpRequestMessage Messages(string json, string? version = "2023-06-01", string? beta = null, string path = "/v1/messages")
    {
        var request = new HttpRequestMessage(HttpMethod.Post, path) { Content = Json(json) };
        if (version is not null)
        {
            request.Headers.Add("anthropic-version", version);
        }

        if (beta is not null)
        {
            request.Headers.Add("anthropic-beta", beta);
        }

        return request;
    }

    internal static HttpClient AnthropicClient(SluiceFactory sluice, string key)
    {
        var client = sluice.Anonymous();
        client.DefaultRequestHeaders.Add("x-api-key", key);
        return client;
    }

    /// <summary>(event name, data) of each event in an SSE body.</summary>
    internal static List<(string Event, JsonElement Data)> NamedEvents(string body) =>
        body.Split("\n\n", StringSplitOptions.RemoveEmptyEntries).Select(block =>
        {
            var lines = block.Split('\n');
            var name = lines.Single(l => l.StartsWith("event: ", StringComparison.Ordinal))["event: ".Length..];
            var data = lines.Single(l => l.StartsWith("data: ", StringComparison.Ordinal))["data: ".Length..];
            return (name, JsonDocument.Parse(data).RootElement.Clone());
        }).ToList();

    [Fact]
    public async Task A_message_to_echo_answers_in_Anthropics_shape_with_request_id_and_is_metered_as_messages()
    {
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Sqlite);
        await using var sluice = new SluiceFactory(database);
        var (_, orgId, key) = await TenantAsync(sluice);
        using var client = AnthropicClient(sluice, key);

        using var response = await client.SendAsync(Messages("""{"model":"echo","max_tokens":100,"system":[{"type":"text","text":"Be brief."}],"messages":[{"role":"user","content":"Hello there, world!"}]}"""));

        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.OK, text);
        Assert.Equal(response.Headers.GetValues("x-request-id").Single(), response.Headers.GetValues("request-id").Single());
        var root = JsonDocument.Parse(text).RootElement;
        Assert.StartsWith("msg_", root.GetProperty("id").GetString(), StringComparison.Ordinal);
        Assert.Equal(("message", "assistant", "echo"), (root.GetProperty("type").GetString(), root.GetProperty("role").GetString(), root.GetProperty("model").GetString()));
        var block = Assert.Single(root.GetProperty("content").EnumerateArray());
        Assert.Equal(("text", "Echo: Hello there, world!"), (block.GetProperty("type").GetString(), block.GetProperty("text").GetString()));
        Assert.Equal("end_turn", root.GetProperty("stop_reason").GetString());
        Assert.Equal(JsonValueKind.Null, root.GetProperty("stop_sequence").ValueKind);
        var usage = root.GetProperty("usage");
        Assert.Equal(7, usage.GetProperty("output_tokens").GetInt32());
        Assert.True(usage.GetProperty("input_tokens").GetInt32() > 0);
        Assert.Equal(0, usage.GetProperty("cache_read_input_tokens").GetInt32());

        var metered = Assert.Single(await UsageAsync(database, 1));
        Assert.Equal((orgId, "messages", "echo", 200, 7L), (metered.OrganizationId!.Value, metered.Endpoint, metered.Model!, metered.Status, metered.CompletionTokens));
        Assert.Equal(usage.GetProperty("input_tokens").GetInt64(), metered.PromptTokens);
    }

    [Fact]
    public async Task A_streamed_message_to_echo_sends_Anthropics_events_in_order()
    {
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Sqlite);
        await using var sluice = new SluiceFactory(database);
        var (_, _, key) = await TenantAsync(sluice);
        using var client = sluice.WithKey(key); // Bearer works as well as x-api-key

        using var response = await client.SendAsync(Messages("""{"model":"echo","max_tokens":100,"stream":true,"messages":[{"role":"user","content":[{"type":"text","text":"one two three"}]}]}"""));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("text/event-stream", response.Content.Headers.ContentType?.MediaType);
        var events = NamedEvents(await response.Content.ReadAsStringAsync());
        Assert.Equal(
            ["message_start", "content_block_start", "content_block_delta", "content_block_delta", "content_block_delta", "content_block_delta", "content_block_delta",
             "content_block_stop", "message_delta", "message_stop"],
            events.Select(e => e.Event));
        Assert.All(events, e => Assert.Equal(e.Event, e.Data.GetProperty("type").GetString()));
        var start = events[0].Data.GetProperty("message");
        Assert.Equal(("message", "assistant", "echo"), (start.GetProperty("type").GetString(), start.GetProperty("role").GetString(), start.GetProperty("model").GetString()));
        Assert.Equal("text", events[1].Data.GetProperty("content_block").GetProperty("type").GetString());
        Assert.Equal("Echo: one two three", string.Concat(events.Where(e => e.Event == "content_block_delta").Select(e => e.Data.GetProperty("delta").GetProperty("text").GetString())));
        Assert.All(events.Where(e => e.Event.StartsWith("content_block", StringComparison.Ordinal)), e => Assert.Equal(0, e.Data.GetProperty("index").GetInt32()));
        var delta = events[^2].Data;
        Assert.Equal("end_turn", delta.GetProperty("delta").GetProperty("stop_reason").GetString());
        Assert.Equal(5, delta.GetProperty("usage").GetProperty("output_tokens").GetInt32());

        var metered = Assert.Single(await UsageAsync(database, 1));
        Assert.Equal(("messages", 200, true, 5L), (metered.Endpoint, metered.Status, metered.Stream, metered.CompletionTokens));
    }

    private const string ToolConversation = """
        {"model":"m","max_tokens":300,"system":"You look up weather.","metadata":{"user_id":"u-42"},"stop_sequences":["END"],"temperature":0.5,"top_k":40,
         "thinking":{"type":"enabled","budget_tokens":4000},
         "tools":[{"name":"get_weather","description":"Weather for a city","input_schema":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}}],
         "tool_choice":{"type":"any","disable_parallel_tool_use":true},
         "messages":[
           {"role":"user","content":[{"type":"text","text":"Weather in Paris?"},{"type":"image","source":{"type":"base64","media_type":"image/png","data":"iVBORw0KGgo="}},{"type":"image","source":{"type":"url","url":"https://example.com/a.png"}}]},
           {"role":"assistant","content":[{"type":"thinking","thinking":"I should call the tool.","signature":"sig"},{"type":"text","text":"Let me check."},{"type":"tool_use","id":"toolu_01","name":"get_weather","input":{"city":"Paris"}}]},
           {"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_01","content":[{"type":"text","text":"18C, sunny"}]},{"type":"tool_result","tool_use_id":"toolu_02","content":"timeout","is_error":true},{"type":"text","text":"And Lyon?"}]}
         ]STREAM}
        """;

    [Fact]
    public async Task Tools_round_trip_through_an_OpenAI_compatible_provider_whole_and_streamed()
    {
        await using var upstream = await FakeUpstream.StartAsync();
        upstream.ToolCallWithId = ("call_abc", "get_weather", """{"city":"Lyon"}""");
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Sqlite);
        await using var sluice = new SluiceFactory(database);
        using (var op = await OperatorAsync(sluice))
        {
            await ModelOnAsync(op, upstream.BaseUrl);
        }

        var (_, _, key) = await TenantAsync(sluice);
        using var client = AnthropicClient(sluice, key);

        using var whole = await client.SendAsync(Messages(ToolConversation.Replace("STREAM", "", StringComparison.Ordinal)));

        var text = await whole.Content.ReadAsStringAsync();
        Assert.True(whole.StatusCode == HttpStatusCode.OK, text);
        var sent = JsonDocument.Parse(upstream.Requests.First().Body).RootElement;
        Assert.Equal("m", sent.GetProperty("model").GetString());
        Assert.Equal(300, sent.GetProperty("max_tokens").GetInt32());
        Assert.Equal("u-42", sent.GetProperty("user").GetString());
        Assert.Equal("END", sent.GetProperty("stop")[0].GetString());
        Assert.Equal(40, sent.GetProperty("top_k").GetInt32());
        Assert.Equal(0.5, sent.GetProperty("temperature").GetDouble());
        Assert.Equal("medium", sent.GetProperty("reasoning_effort").GetString());
        Assert.Equal("required", sent.GetProperty("tool_choice").GetString());
        Assert.False(sent.GetProperty("parallel_tool_calls").GetBoolean());
        var function = sent.GetProperty("tools")[0];
        Assert.Equal(("function", "get_weather", "object"), (function.GetProperty("type").GetString(), function.GetProperty("function").GetProperty("name").GetString(),
            function.GetProperty("function").GetProperty("parameters").GetProperty("type").GetString()));
        var messages = sent.GetProperty("messages").EnumerateArray().ToList();
        Assert.Equal(["system", "user", "assistant", "tool", "tool", "user"], messages.Select(m => m.GetProperty("role").GetString()));
        Assert.Equal("You look up weather.", messages[0].GetProperty("content").GetString());
        var parts = messages[1].GetProperty("content");
        Assert.Equal("data:image/png;base64,iVBORw0KGgo=", parts[1].GetProperty("image_url").GetProperty("url").GetString());
        Assert.Equal("https://example.com/a.png", parts[2].GetProperty("image_url").GetProperty("url").GetString());
        Assert.Equal("Let me check.", messages[2].GetProperty("content").GetString());
        Assert.Equal("I should call the tool.", messages[2].GetProperty("reasoning_content").GetString());
        var call = messages[2].GetProperty("tool_calls")[0];
        Assert.Equal(("toolu_01", "get_weather"), (call.GetProperty("id").GetString(), call.GetProperty("function").GetProperty("name").GetString()));
        Assert.Equal("Paris", JsonDocument.Parse(call.GetProperty("function").GetProperty("arguments").GetString()!).RootElement.GetProperty("city").GetString());
        Assert.Equal(("toolu_01", "18C, sunny"), (messages[3].GetProperty("tool_call_id").GetString(), messages[3].GetProperty("content").GetString()));
        Assert.Equal(("toolu_02", "Error: timeout"), (messages[4].GetProperty("tool_call_id").GetString(), messages[4].GetProperty("content").GetString()));

        var answer = JsonDocument.Parse(text).RootElement;
        Assert.Equal("tool_use", answer.GetProperty("stop_reason").GetString());
        var use = Assert.Single(answer.GetProperty("content").EnumerateArray());
        Assert.Equal(("tool_use", "call_abc", "get_weather", "Lyon"),
            (use.GetProperty("type").GetString(), use.GetProperty("id").GetString(), use.GetProperty("name").GetString(), use.GetProperty("input").GetProperty("city").GetString()));
        Assert.Equal((11, 7), (answer.GetProperty("usage").GetProperty("input_tokens").GetInt32(), answer.GetProperty("usage").GetProperty("output_tokens").GetInt32()));

        using var streamed = await client.SendAsync(Messages(ToolConversation.Replace("STREAM", ""","stream":true""", StringComparison.Ordinal)));

        Assert.Equal(HttpStatusCode.OK, streamed.StatusCode);
        var events = NamedEvents(await streamed.Content.ReadAsStringAsync());
        Assert.Equal(["message_start", "content_block_start", "content_block_delta", "content_block_delta", "content_block_stop", "message_delta", "message_stop"], events.Select(e => e.Event));
        var block = events[1].Data.GetProperty("content_block");
        Assert.Equal(("tool_use", "call_abc", "get_weather"), (block.GetProperty("type").GetString(), block.GetProperty("id").GetString(), block.GetProperty("name").GetString()));
        var json = string.Concat(events.Where(e => e.Event == "content_block_delta").Select(e =>
        {
            Assert.Equal("input_json_delta", e.Data.GetProperty("delta").GetProperty("type").GetString());
            return e.Data.GetProperty("delta").GetProperty("partial_json").GetString();
        }));
        Assert.Equal("""{"city":"Lyon"}""", json);
        Assert.Equal("tool_use", events[^2].Data.GetProperty("delta").GetProperty("stop_reason").GetString());
        Assert.Equal((11, 6), (events[^2].Data.GetProperty("usage").GetProperty("input_tokens").GetInt32(), events[^2].Data.GetProperty("usage").GetProperty("output_tokens").GetInt32()));
        var sentStream = JsonDocument.Parse(upstream.Requests.Last().Body).RootElement;
        Assert.True(sentStream.GetProperty("stream").GetBoolean() && sentStream.GetProperty("stream_options").GetProperty("include_usage").GetBoolean());

        var metered = await UsageAsync(database, 2);
        Assert.All(metered, e => Assert.Equal(("messages", 200, "m"), (e.Endpoint, e.Status, e.Model!)));
    }

    [Fact]
    public async Task An_anthropic_provider_gets_the_callers_body_and_headers_and_its_answer_passes_through_metered_and_charged()
    {
        await using var upstream = await FakeUpstream.StartAsync();
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Sqlite);
        await using var sluice = new SluiceFactory(database);
        Guid orgId;
        using (var op = await OperatorAsync(sluice))
        {
            await ProviderAsync(op, "claude", upstream.BaseUrl, kind: "anthropic", apiKey: "sk-ant-provider");
            await ModelAsync(op, "sonnet");
            var route = await RouteAsync(op, "sonnet", "claude", "claude-sonnet-4-5");
            var price = await op.PostAsJsonAsync($"/api/v1/catalog/routes/{route}/prices", new { inputPerMillionMicros = 1_000_000, outputPerMillionMicros = 1_000_000, cachedInputPerMillionMicros = 1_000_000 });
            Assert.True(price.IsSuccessStatusCode, await price.Content.ReadAsStringAsync());
            await sluice.Services.GetRequiredService<Catalog>().RefreshAsync(default);
            (_, orgId, var tenantKey) = await TenantAsync(sluice);
            var credit = await op.PostAsJsonAsync($"/api/v1/admin/orgs/{orgId}/wallet/credits", new { amountMicros = 1_000_000, reason = "test funds" });
            Assert.True(credit.IsSuccessStatusCode, await credit.Content.ReadAsStringAsync());
            using var client = AnthropicClient(sluice, tenantKey);

            const string body = """{"model":"sonnet","max_tokens":64,"top_k":5,"messages":[{"role":"user","content":[{"type":"text","text":"hi","cache_control":{"type":"ephemeral"}}]}]}""";
            using var whole = await client.SendAsync(Messages(body, beta: "prompt-caching-2024-07-31"));
            using var streamed = await client.SendAsync(Messages(body.Replace("\"top_k\":5", "\"top_k\":5,\"stream\":true", StringComparison.Ordinal)));

            var text = await whole.Content.ReadAsStringAsync();
            Assert.True(whole.StatusCode == HttpStatusCode.OK, text);
            var answer = JsonDocument.Parse(text).RootElement;
            Assert.Equal(("msg_1", "claude-sonnet-4-5", "Hello from upstream"), (answer.GetProperty("id").GetString(), answer.GetProperty("model").GetString(), answer.GetProperty("content")[0].GetProperty("text").GetString()));
            var (_, sentBody, headers) = upstream.Requests.First();
            var sent = JsonDocument.Parse(sentBody).RootElement;
            Assert.Equal(("claude-sonnet-4-5", 64, 5), (sent.GetProperty("model").GetString(), sent.GetProperty("max_tokens").GetInt32(), sent.GetProperty("top_k").GetInt32()));
            Assert.Equal("ephemeral", sent.GetProperty("messages")[0].GetProperty("content")[0].GetProperty("cache_control").GetProperty("type").GetString());
            Assert.Equal(("2023-06-01", "prompt-caching-2024-07-31", "sk-ant-provider"), (headers["anthropic-version"].ToString(), headers["anthropic-beta"].ToString(), headers["x-api-key"].ToString()));
            Assert.DoesNotContain(tenantKey, headers.Select(h => h.Value.ToString()));

            var events = NamedEvents(await streamed.Content.ReadAsStringAsync());
            Assert.Equal("message_start", events[0].Event);
            Assert.Equal("message_stop", events[^1].Event);
            Assert.Equal("Hello from Claude", string.Concat(events.Where(e => e.Event == "content_block_delta").Select(e => e.Data.GetProperty("delta").GetProperty("text").GetString())));
        }

        var metered = await UsageAsync(database, 2);
        var plain = metered.Single(e => !e.Stream);
        var stream = metered.Single(e => e.Stream);
        Assert.Equal(("messages", 200, 11L, 4L, 2L, 15L, false), (plain.Endpoint, plain.Status, plain.PromptTokens, plain.CompletionTokens, plain.CachedTokens, plain.CostMicros, plain.TokensCountedLocally));
        Assert.Equal(("messages", 200, 9L, 3L, 12L, false), (stream.Endpoint, stream.Status, stream.PromptTokens, stream.CompletionTokens, stream.CostMicros, stream.TokensCountedLocally));
    }

    [Fact]
    public async Task Count_tokens_answers_Sluices_estimate_in_Anthropics_shape_unmetered_and_refuses_like_messages()
    {
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Sqlite);
        await using var sluice = new SluiceFactory(database);
        var (_, _, key) = await TenantAsync(sluice);
        using var client = AnthropicClient(sluice, key);
        const string small = """{"model":"echo","messages":[{"role":"user","content":"Hello"}]}""";
        const string larger = """{"model":"echo","system":"You are a careful assistant.","messages":[{"role":"user","content":"Hello, how are you today?"}],"tools":[{"name":"lookup","input_schema":{"type":"object"}}]}""";

        using var one = await client.SendAsync(Messages(small, path: "/v1/messages/count_tokens"));
        using var two = await client.SendAsync(Messages(larger, path: "/v1/messages/count_tokens"));
        using var unknownModel = await client.SendAsync(Messages(small.Replace("echo", "nope", StringComparison.Ordinal), path: "/v1/messages/count_tokens"));
        using var noVersion = await client.SendAsync(Messages(small, version: null, path: "/v1/messages/count_tokens"));
        using var withMaxTokens = await client.SendAsync(Messages(small.Replace("{", """{"max_tokens":5,""", StringComparison.Ordinal), path: "/v1/messages/count_tokens"));
        using var tooDeep = await client.SendAsync(Messages($$"""{"model":"echo","messages":[{"role":"user","content":"hi"}],"tools":[{"name":"f","input_schema":{{Responses.ResponsesTests.Nested(61)}}}]}""", path: "/v1/messages/count_tokens"));
        using var repeated = await client.SendAsync(Messages("""{"model":"echo","messages":[{"role":"user","role":"user","content":"hi"}]}""", path: "/v1/messages/count_tokens"));
        using var anonymous = sluice.Anonymous();
        using var noKey = await anonymous.SendAsync(Messages(small, path: "/v1/messages/count_tokens"));

        Assert.Equal(HttpStatusCode.OK, one.StatusCode);
        var first = JsonDocument.Parse(await one.Content.ReadAsStringAsync()).RootElement;
        Assert.Equal(["input_tokens"], first.EnumerateObject().Select(p => p.Name));
        var count = first.GetProperty("input_tokens").GetInt32();
        Assert.True(count > 0);
        Assert.True(JsonDocument.Parse(await two.Content.ReadAsStringAsync()).RootElement.GetProperty("input_tokens").GetInt32() > count + 5);
        await AssertAnthropicErrorAsync(unknownModel, HttpStatusCode.NotFound, "not_found_error", "model");
        await AssertAnthropicErrorAsync(noVersion, HttpStatusCode.BadRequest, "invalid_request_error", "anthropic-version");
        await AssertAnthropicErrorAsync(withMaxTokens, HttpStatusCode.BadRequest, "invalid_request_error", "max_tokens");
        await AssertAnthropicErrorAsync(tooDeep, HttpStatusCode.BadRequest, "invalid_request_error", "JSON");
        await AssertAnthropicErrorAsync(repeated, HttpStatusCode.BadRequest, "invalid_request_error", "repeated");
        await AssertAnthropicErrorAsync(noKey, HttpStatusCode.Unauthorized, "authentication_error", "API key");

        // Nothing is metered: a chat call afterwards is the only usage event.
        Assert.Equal(HttpStatusCode.OK, (await client.PostAsync("/v1/chat/completions", Chat("echo", "hi"))).StatusCode);
        Assert.Equal("chat.completions", Assert.Single(await UsageAsync(database, 1)).Endpoint);
    }

    internal static async Task AssertAnthropicErrorAsync(HttpResponseMessage response, HttpStatusCode status, string type, string named)
    {
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == status, $"{response.StatusCode}: {text}");
        var root = JsonDocument.Parse(text).RootElement;
        Assert.Equal(["type", "error"], root.EnumerateObject().Select(p => p.Name));
        Assert.Equal("error", root.GetProperty("type").GetString());
        Assert.Equal(type, root.GetProperty("error").GetProperty("type").GetString());
        Assert.Contains(named, root.GetProperty("error").GetProperty("message").GetString(), StringComparison.Ordinal);
        Assert.True(response.Headers.Contains("request-id"), "no request-id header");
        Assert.Equal(response.Headers.GetValues("x-request-id").Single(), response.Headers.GetValues("request-id").Single());
    }

    public static TheoryData<string, string?, string?, string> BadRequests => new()
    {
        { """{"model":"echo","max_tokens":10,"messages":[{"role":"user","content":[{"type":"hologram","text":"x"}]}]}""", "2023-06-01", null, "messages[0].content[0].type" },
        { """{"model":"echo","max_tokens":10,"messages":[{"role":"user","content":[{"type":"document","source":{"type":"text","media_type":"text/plain","data":"d"},"context":"c"}]}]}""", "2023-06-01", null, "messages[0].content[0].context" },
        { """{"model":"echo","max_tokens":10,"messages":[{"role":"user","content":[]}]}""", "2023-06-01", null, "messages[0].content" },
        { """{"model":"echo","max_tokens":10,"messages":[{"role":"user","content":"hi"}]}""", null, null, "anthropic-version" },
        { """{"model":"echo","max_tokens":10,"messages":[{"role":"user","content":"hi"}]}""", "2024-99-99", null, "anthropic-version" },
        { """{"model":"echo","max_tokens":10,"messages":[{"role":"user","content":"hi"}]}""", "2022-12-31", null, "anthropic-version" },
        { """{"model":"echo","max_tokens":10,"messages":[{"role":"user","content":"hi"}]}""", "latest", null, "anthropic-version" },
        { """{"model":"echo","max_tokens":10,"messages":[{"role":"user","content":"hi"}]}""", "2023-06-01", "no-such-beta-2030-01-01", "anthropic-beta" },
        { """{"model":"echo","max_tokens":10,"stream":true,"messages":[{"role":"user","content":"hi"}]}""", "2023-01-01", null, "stream" },
        { """{"model":"echo","max_tokens":10,"tools":[{"type":"web_search_20250305","name":"web_search"}],"messages":[{"role":"user","content":"hi"}]}""", "2023-06-01", null, "tools[0].type" },
        { """{"model":"echo","max_tokens":10,"tools":[{"type":"bash_20250124","name":"bash"}],"messages":[{"role":"user","content":"hi"}]}""", "2023-06-01", null, "tools[0].type" },
        { """{"model":"echo","max_tokens":10,"tools":[{"type":"computer_20250124","name":"computer","display_width_px":1,"display_height_px":1}],"messages":[{"role":"user","content":"hi"}]}""", "2023-06-01", null, "tools[0].type" },
        { """{"model":"echo","messages":[{"role":"user","content":"hi"}]}""", "2023-06-01", null, "max_tokens" },
        { """{"model":"echo","max_tokens":"ten","messages":[{"role":"user","content":"hi"}]}""", "2023-06-01", null, "max_tokens" },
        { """{"model":"echo","max_tokens":10,"messages":"hi"}""", "2023-06-01", null, "messages" },
        { """{"model":"echo","max_tokens":10,"messages":[{"role":"user","content":42}]}""", "2023-06-01", null, "messages[0].content" },
        { """{"model":"echo","max_tokens":10,"messages":[{"role":"system","content":"hi"}]}""", "2023-06-01", null, "messages[0].role" },
        { """{"model":"echo","max_tokens":10,"temperature":"hot","messages":[{"role":"user","content":"hi"}]}""", "2023-06-01", null, "temperature" },
        { """{"model":"echo","max_tokens":10,"frequency_penalty":1,"messages":[{"role":"user","content":"hi"}]}""", "2023-06-01", null, "frequency_penalty" },
        { """{"model":"echo","max_tokens":10,"messages":[{"role":"assistant","content":[{"type":"redacted_thinking","data":"xyz"}]},{"role":"user","content":"hi"}]}""", "2023-06-01", null, "messages[0].content[0].type" },
        { """{"model":"echo","max_tokens":10,"messages":[{"role":"user","content":[{"type":"document","source":{"type":"base64","media_type":"application/pdf","data":"JVBER"}}]}]}""", "2023-06-01", null, "messages[0].content[0].type" },
        { """{"model":"echo","max_tokens":10,"messages":[{"role":"user","content":[{"type":"text","text":"hi","mystery":1}]}]}""", "2023-06-01", null, "messages[0].content[0].mystery" },
        { """{"model":"echo","max_tokens":10,"tool_choice":{"type":"sometimes"},"messages":[{"role":"user","content":"hi"}]}""", "2023-06-01", null, "tool_choice.type" },
        { """{"model":"echo","max_tokens":10,"service_tier":"priority","messages":[{"role":"user","content":"hi"}]}""", "2023-06-01", null, "service_tier" },
        { """{"model":"echo","max_tokens":10,"messages":[{"role":"user","content":"hi"}]""", "2023-06-01", null, "JSON" },
        { """{"max_tokens":10,"messages":[{"role":"user","content":"hi"}]}""", "2023-06-01", null, "model" },
        { """{"model":"echo","max_tokens":10,"max_tokens":11,"messages":[{"role":"user","content":"hi"}]}""", "2023-06-01", null, "repeated" },
        { $$"""{"model":"echo","max_tokens":10,"messages":[{"role":"user","content":"hi"}],"tools":[{"name":"f","input_schema":{{Responses.ResponsesTests.Nested(61)}}}]}""", "2023-06-01", null, "JSON" },
        { """{"model":"echo","max_tokens":10,"messages":[{"role":"user","content":[{"type":"tool_result","tool_use_id":"t","content":[{"type":"image","source":{"type":"url","url":"https://x"}}]}]}]}""", "2023-06-01", null, "messages[0].content[0].content[0].type" },
    };

    [Theory]
    [MemberData(nameof(BadRequests))]
    public async Task Bad_input_is_a_400_in_Anthropics_shape_naming_the_field_and_nothing_is_metered_as_success(string body, string? version, string? beta, string named)
    {
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Sqlite);
        await using var sluice = new SluiceFactory(database);
        var (_, _, key) = await TenantAsync(sluice);
        using var client = AnthropicClient(sluice, key);

        using var response = await client.SendAsync(Messages(body, version, beta));

        await AssertAnthropicErrorAsync(response, HttpStatusCode.BadRequest, "invalid_request_error", named);
        var metered = Assert.Single(await UsageAsync(database, 1));
        Assert.Equal(("messages", 400, 0L, 0L, 0L), (metered.Endpoint, metered.Status, metered.PromptTokens, metered.CompletionTokens, metered.CostMicros));
    }

    [Fact]
    public async Task Refusals_on_every_path_take_Anthropics_shape_and_status()
    {
        await using var failing = await FakeUpstream.StartAsync();
        failing.FailWith = 500;
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Sqlite);
        await using var sluice = new SluiceFactory(database);
        using (var op = await OperatorAsync(sluice))
        {
            await ModelOnAsync(op, failing.BaseUrl);
        }

        var (owner, orgId, key) = await TenantAsync(sluice);
        var limited = JsonDocument.Parse(await (await owner.PostAsync($"/api/v1/orgs/{orgId}/keys", Json("""{"name":"l","scopes":["inference"],"requestsPerMinute":1}"""))).Content.ReadAsStringAsync())
            .RootElement.GetProperty("key").GetString()!;
        var (_, filesOnly) = await SluiceFactory.CreateKeyAsync(owner, orgId, "batch");
        using var client = AnthropicClient(sluice, key);
        using var limitedClient = AnthropicClient(sluice, limited);
        using var wrongScope = AnthropicClient(sluice, filesOnly);
        using var anonymous = sluice.Anonymous();
        using var badKey = AnthropicClient(sluice, "sk-sluice-not-a-real-key");
        const string hi = """{"model":"MODEL","max_tokens":10,"messages":[{"role":"user","content":"hi"}]}""";
        string For(string model) => hi.Replace("MODEL", model, StringComparison.Ordinal);

        await AssertAnthropicErrorAsync(await anonymous.SendAsync(Messages(For("echo"))), HttpStatusCode.Unauthorized, "authentication_error", "API key");
        await AssertAnthropicErrorAsync(await badKey.SendAsync(Messages(For("echo"))), HttpStatusCode.Unauthorized, "authentication_error", "API key");
        await AssertAnthropicErrorAsync(await wrongScope.SendAsync(Messages(For("echo"))), HttpStatusCode.Forbidden, "permission_error", "scope");
        await AssertAnthropicErrorAsync(await client.SendAsync(Messages(For("no-such-model"))), HttpStatusCode.NotFound, "not_found_error", "model");
        await AssertAnthropicErrorAsync(await client.SendAsync(Messages(For("m"))), HttpStatusCode.BadGateway, "api_error", "provider");
        Assert.Equal(HttpStatusCode.OK, (await limitedClient.SendAsync(Messages(For("echo")))).StatusCode);
        using var limitedResponse = await limitedClient.SendAsync(Messages(For("echo")));
        await AssertAnthropicErrorAsync(limitedResponse, HttpStatusCode.TooManyRequests, "rate_limit_error", "Rate limit");
        Assert.True(limitedResponse.Headers.RetryAfter is not null);

        var metered = await UsageAsync(database, 4);
        Assert.Equal([404, 502, 200, 429], metered.Select(e => e.Status));
        Assert.All(metered, e => Assert.Equal("messages", e.Endpoint));
    }

    [Fact]
    public void A_native_usage_count_that_is_not_an_integer_is_ignored_not_a_server_error()
    {
        using var counts = JsonDocument.Parse("""{"input_tokens":1.5,"output_tokens":2e30,"cache_read_input_tokens":3}""");

        var usage = global::Sluice.Gateway.Protocols.Anthropic.AnthropicMessagesProtocol.NativeUsage(counts.RootElement, default);

        Assert.Equal(3, usage.Cached);
    }
}
