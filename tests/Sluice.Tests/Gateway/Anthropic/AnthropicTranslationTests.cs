using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Sluice.Billing;
using Sluice.Gateway;
using Sluice.Storage;
using Sluice.Tests.TestSupport;
using static Sluice.Tests.TestSupport.GatewayKit;

namespace Sluice.Tests.Gateway.Anthropic;

/// <summary>
/// A chat completion routed to an <c>anthropic</c> provider, against the recorded examples of Anthropic's documentation
/// (Fixtures/README.md): the exact Messages request Sluice sends, the chat answer and stream it gives back, the fields it
/// refuses rather than drops, and the cache-write tokens it charges.
/// </summary>
public sealed class AnthropicTranslationTests
{
    private const string UpstreamModel = "claude-sonnet-4-5";

    private static string Fixture(string name) =>
        File.ReadAllText(Path.Combine(SharedFiles.RepositoryRoot(), "tests", "Sluice.Tests", "Gateway", "Anthropic", "Fixtures", name));

    /// <summary>An Anthropic provider on a fake, model <c>claude</c> routed to it (priced when asked), and a tenant's client.</summary>
    private sealed class Kit : IAsyncDisposable
    {
        public required FakeUpstream Upstream { get; init; }

        public required TestDatabase Database { get; init; }

        public required SluiceFactory Sluice { get; init; }

        public required HttpClient Client { get; init; }

        public Guid OrgId { get; init; }

        public static async Task<Kit> StartAsync(object? price = null, long fundMicros = 10_000_000)
        {
            var upstream = await FakeUpstream.StartAsync();
            var database = await TestDatabase.CreateAsync(DatabaseProvider.Sqlite);
            var sluice = new SluiceFactory(database);
            using var op = await OperatorAsync(sluice);
            await ProviderAsync(op, "anthropic", upstream.BaseUrl, kind: "anthropic", apiKey: "ant-key");
            await ModelAsync(op, "claude");
            var route = await RouteAsync(op, "claude", "anthropic", UpstreamModel);
            var (_, orgId, key) = await TenantAsync(sluice);
            if (price is not null)
            {
                var priced = await op.PostAsJsonAsync($"/api/v1/catalog/routes/{route}/prices", price);
                Assert.True(priced.IsSuccessStatusCode, await priced.Content.ReadAsStringAsync());
                await sluice.Services.GetRequiredService<Catalog>().RefreshAsync(default);
                var credit = await op.PostAsJsonAsync($"/api/v1/admin/orgs/{orgId}/wallet/credits", new { amountMicros = fundMicros, reason = "test funds" });
                Assert.True(credit.IsSuccessStatusCode, await credit.Content.ReadAsStringAsync());
            }

            return new Kit { Upstream = upstream, Database = database, Sluice = sluice, Client = sluice.WithKey(key), OrgId = orgId };
        }

        public async ValueTask DisposeAsync()
        {
            Client.Dispose();
            await Sluice.DisposeAsync();
            await Database.DisposeAsync();
            await Upstream.DisposeAsync();
        }
    }

    /// <summary>Sends a case's chat request; asserts the exact Messages request the provider got; returns the chat answer.</summary>
    private static async Task<JsonElement> ExchangeAsync(Kit kit, string name)
    {
        kit.Upstream.AnthropicAnswer = Fixture($"{name}.response.json");
        var before = kit.Upstream.Hits;
        using var response = await kit.Client.PostAsync("/v1/chat/completions", Json(Fixture($"{name}.chat.json")));
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.OK, $"{name}: {(int)response.StatusCode} {text}");
        Assert.Equal(before + 1, kit.Upstream.Hits);
        var sent = JsonNode.Parse(kit.Upstream.Requests.Last().Body);
        var expected = JsonNode.Parse(Fixture($"{name}.request.json"));
        Assert.True(JsonNode.DeepEquals(expected, sent), $"{name}: Sluice sent\n{sent}\nexpected\n{expected}");
        return JsonDocument.Parse(text).RootElement.Clone();
    }

    private static JsonElement Message(JsonElement answer) => answer.GetProperty("choices")[0].GetProperty("message");

    private static string? Finish(JsonElement answer) => answer.GetProperty("choices")[0].GetProperty("finish_reason").GetString();

    [Fact]
    public async Task Documented_requests_are_sent_exactly_and_their_answers_come_back_as_chat_completions()
    {
        await using var kit = await Kit.StartAsync();

        var toolUse = await ExchangeAsync(kit, "tool-use");
        var call = Message(toolUse).GetProperty("tool_calls")[0];
        Assert.Equal("tool_calls", Finish(toolUse));
        Assert.Equal("<thinking>I need to use the get_weather, and the user wants SF, which is likely San Francisco, CA.</thinking>", Message(toolUse).GetProperty("content").GetString());
        Assert.Equal(("toolu_01A09q90qw90lq917835lq9", "function", "get_weather"), (call.GetProperty("id").GetString(), call.GetProperty("type").GetString(), call.GetProperty("function").GetProperty("name").GetString()));
        Assert.True(JsonNode.DeepEquals(JsonNode.Parse("""{"location":"San Francisco, CA","unit":"celsius"}"""), JsonNode.Parse(call.GetProperty("function").GetProperty("arguments").GetString()!)));
        Assert.Equal((384, 87, 471), (toolUse.GetProperty("usage").GetProperty("prompt_tokens").GetInt32(), toolUse.GetProperty("usage").GetProperty("completion_tokens").GetInt32(), toolUse.GetProperty("usage").GetProperty("total_tokens").GetInt32()));

        var toolResult = await ExchangeAsync(kit, "tool-result");
        Assert.Equal("stop", Finish(toolResult)); // stop_sequence
        Assert.StartsWith("San Francisco is warmer", Message(toolResult).GetProperty("content").GetString(), StringComparison.Ordinal);
        Assert.False(Message(toolResult).TryGetProperty("tool_calls", out _));

        var images = await ExchangeAsync(kit, "images");
        Assert.Equal("stop", Finish(images));

        var json = await ExchangeAsync(kit, "json-schema");
        Assert.Equal("stop", Finish(json)); // the forced tool is the answer, not a call the client has to make
        Assert.False(Message(json).TryGetProperty("tool_calls", out _));
        using (var content = JsonDocument.Parse(Message(json).GetProperty("content").GetString()!))
        {
            Assert.Equal("San Francisco, CA", content.RootElement.GetProperty("location").GetString());
            Assert.Equal(15, content.RootElement.GetProperty("temperature").GetInt32());
        }

        var caching = await ExchangeAsync(kit, "prompt-caching");
        var usage = caching.GetProperty("usage");
        Assert.Equal(21 + 188086, usage.GetProperty("prompt_tokens").GetInt64()); // cache writes are input tokens too
        Assert.Equal(393, usage.GetProperty("completion_tokens").GetInt64());
        Assert.Equal(0, usage.GetProperty("prompt_tokens_details").GetProperty("cached_tokens").GetInt64());
        Assert.Equal(188086, usage.GetProperty("prompt_tokens_details").GetProperty("cache_write_tokens").GetInt64());

        var thinking = await ExchangeAsync(kit, "thinking");
        Assert.Equal("To approach this, let's think about what we know about prime numbers...", Message(thinking).GetProperty("reasoning_content").GetString());
        Assert.Equal("Yes, there are infinitely many prime numbers such that...", Message(thinking).GetProperty("content").GetString());
        Assert.DoesNotContain("signature", thinking.GetRawText(), StringComparison.Ordinal);

        var events = await UsageAsync(kit.Database, 6);
        Assert.Equal([(384L, 87L), (429L, 30L), (1551L, 71L), (412L, 41L), (188107L, 393L), (52L, 1480L)], events.Select(e => (e.PromptTokens, e.CompletionTokens)));
        Assert.All(events, e => Assert.False(e.TokensCountedLocally));
    }

    private static async Task<List<string>> StreamAsync(Kit kit, string events, string body)
    {
        kit.Upstream.AnthropicEvents = events;
        using var response = await kit.Client.PostAsync("/v1/chat/completions", Json(body));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        return Events(await response.Content.ReadAsStringAsync());
    }

    private static IEnumerable<JsonElement> Deltas(List<string> chunks) => chunks
        .Where(c => c.StartsWith('{') && !c.Contains("\"error\"", StringComparison.Ordinal))
        .Select(c => JsonDocument.Parse(c).RootElement)
        .Where(c => c.GetProperty("choices").GetArrayLength() > 0)
        .Select(c => c.GetProperty("choices")[0]);

    private static string Concat(List<string> chunks, string field) => string.Concat(Deltas(chunks)
        .Select(c => c.GetProperty("delta").TryGetProperty(field, out var value) ? value.GetString() : ""));

    [Fact]
    public async Task Streams_give_tool_call_deltas_reasoning_deltas_cache_usage_and_mid_stream_errors()
    {
        await using var kit = await Kit.StartAsync();
        const string Ask = """{"model":"claude","messages":[{"role":"user","content":"What's the weather like in San Francisco?"}],"stream":true,"stream_options":{"include_usage":true}}""";

        var tool = await StreamAsync(kit, Fixture("stream-tool-use.sse"), Ask);
        Assert.True(JsonNode.Parse(kit.Upstream.Requests.Last().Body)!["stream"]!.GetValue<bool>());
        Assert.Equal("Okay, let's check the weather for San Francisco, CA:", Concat(tool, "content"));
        var calls = Deltas(tool).Where(c => c.GetProperty("delta").TryGetProperty("tool_calls", out _)).Select(c => c.GetProperty("delta").GetProperty("tool_calls")[0]).ToList();
        var first = calls[0];
        Assert.Equal((0, "toolu_01T1x1fJ34qAmk2tNTrN7Up6", "function", "get_weather"),
            (first.GetProperty("index").GetInt32(), first.GetProperty("id").GetString(), first.GetProperty("type").GetString(), first.GetProperty("function").GetProperty("name").GetString()));
        Assert.All(calls.Skip(1), c => Assert.False(c.TryGetProperty("id", out _))); // the id and name come once, then argument fragments
        Assert.All(calls, c => Assert.Equal(0, c.GetProperty("index").GetInt32()));
        Assert.Equal("{\"location\": \"San Francisco, CA\", \"unit\": \"fahrenheit\"}", string.Concat(calls.Select(c => c.GetProperty("function").GetProperty("arguments").GetString())));
        Assert.Equal("tool_calls", Deltas(tool).Last().GetProperty("finish_reason").GetString());
        Assert.DoesNotContain(Deltas(tool), c => c.GetProperty("delta").EnumerateObject().Any() is false && c.GetProperty("finish_reason").ValueKind == JsonValueKind.Null); // the ping made nothing
        Assert.Equal("[DONE]", tool[^1]);
        var toolUsage = JsonDocument.Parse(tool[^2]).RootElement.GetProperty("usage");
        Assert.Equal((472, 89), (toolUsage.GetProperty("prompt_tokens").GetInt32(), toolUsage.GetProperty("completion_tokens").GetInt32()));

        var thinking = await StreamAsync(kit, Fixture("stream-thinking.sse"), Ask);
        Assert.Equal("Let me solve this step by step:\n\n1. First break down 27 * 453\n2. 453 = 400 + 50 + 3", Concat(thinking, "reasoning_content"));
        Assert.Equal("27 * 453 = 12,231", Concat(thinking, "content"));
        Assert.DoesNotContain(thinking, c => c.Contains("EqQBCgIYAhIM", StringComparison.Ordinal)); // signatures are Anthropic's, not the client's
        Assert.Equal("stop", Deltas(thinking).Last().GetProperty("finish_reason").GetString());
        var thinkingUsage = JsonDocument.Parse(thinking[^2]).RootElement.GetProperty("usage");
        Assert.Equal(21 + 188086 + 1200, thinkingUsage.GetProperty("prompt_tokens").GetInt64());
        Assert.Equal(65, thinkingUsage.GetProperty("completion_tokens").GetInt64());
        Assert.Equal(1200, thinkingUsage.GetProperty("prompt_tokens_details").GetProperty("cached_tokens").GetInt64());
        Assert.Equal(188086, thinkingUsage.GetProperty("prompt_tokens_details").GetProperty("cache_write_tokens").GetInt64());

        var failed = await StreamAsync(kit, Fixture("stream-error.sse"), Ask);
        Assert.Equal("Hello", Concat(failed, "content"));
        Assert.DoesNotContain("[DONE]", failed);
        Assert.Equal("upstream_stream_error", JsonDocument.Parse(failed[^1]).RootElement.GetProperty("error").GetProperty("code").GetString());

        var events = await UsageAsync(kit.Database, 3);
        Assert.Equal([(472L, 89L, 0L, 200), (189307L, 65L, 1200L, 200), (12L, 1L, 0L, 502)], events.Select(e => (e.PromptTokens, e.CompletionTokens, e.CachedTokens, e.Status)));
    }

    private static readonly (string Json, string Param)[] Untranslatable =
    [
        (""" "n":2""", "n"),
        (""" "logprobs":true""", "logprobs"),
        (""" "top_logprobs":3""", "top_logprobs"),
        (""" "logit_bias":{"50256":-100}""", "logit_bias"),
        (""" "presence_penalty":0.5""", "presence_penalty"),
        (""" "frequency_penalty":0.5""", "frequency_penalty"),
        (""" "seed":7""", "seed"),
        (""" "audio":{"voice":"alloy","format":"mp3"}""", "audio"),
        (""" "modalities":["text","audio"]""", "modalities"),
        (""" "prediction":{"type":"content","content":"x"}""", "prediction"),
        (""" "web_search_options":{}""", "web_search_options"),
        (""" "verbosity":"low" """, "verbosity"),
        (""" "service_tier":"flex" """, "service_tier"),
        (""" "functions":[{"name":"f"}]""", "functions"),
        (""" "some_vendor_field":1""", "some_vendor_field"),
        (""" "tools":[{"type":"custom","custom":{"name":"c"}}]""", "tools[0].type"),
        (""" "tool_choice":{"type":"allowed_tools","allowed_tools":{"mode":"auto","tools":[]}}""", "tool_choice"),
        (""" "tools":[{"type":"function","function":{"name":"f"}}],"response_format":{"type":"json_object"}""", "response_format"),
        (""" "response_format":{"type":"grammar"}""", "response_format.type"),
        (""" "reasoning_effort":"ultra" """, "reasoning_effort"),
        (""" "reasoning_effort":"low","max_completion_tokens":1000""", "max_completion_tokens"),
        (""" "reasoning_effort":"low","thinking":{"type":"enabled","budget_tokens":2000}""", "reasoning_effort"),
    ];

    private static readonly (string Json, string Param)[] UntranslatableMessages =
    [
        ("""[{"role":"user","content":[{"type":"input_audio","input_audio":{"data":"AAAA","format":"wav"}}]}]""", "messages[0].content[0].type"),
        ("""[{"role":"user","content":[{"type":"file","file":{"file_id":"file-1"}}]}]""", "messages[0].content[0].type"),
        ("""[{"role":"user","content":[{"type":"video","video":{}}]}]""", "messages[0].content[0].type"),
        ("""[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:application/pdf;base64,JVBERi0="}}]}]""", "messages[0].content[0].image_url.url"),
        ("""[{"role":"user","content":"hi","name":"alice"}]""", "messages[0].name"),
        ("""[{"role":"function","name":"f","content":"x"}]""", "messages[0].role"),
        ("""[{"role":"user","content":"hi"},{"role":"assistant","tool_calls":[{"id":"c1","type":"function","function":{"name":"f","arguments":"not json"}}]}]""", "messages[1].tool_calls[0].function.arguments"),
        ("""[{"role":"tool","content":"15 degrees"}]""", "messages[0].tool_call_id"),
    ];

    [Fact]
    public async Task Every_field_that_cannot_be_translated_is_a_400_naming_it_nothing_is_sent_and_nothing_charged()
    {
        await using var kit = await Kit.StartAsync(new { inputPerMillionMicros = 1_000_000, outputPerMillionMicros = 1_000_000 });
        var cases = Untranslatable
            .Select(c => ($$"""{"model":"claude","messages":[{"role":"user","content":"hi"}],{{c.Json}}}""", c.Param))
            .Concat(UntranslatableMessages.Select(c => ($$"""{"model":"claude","messages":{{c.Json}}}""", c.Param)))
            .ToList();

        foreach (var (body, param) in cases)
        {
            using var response = await kit.Client.PostAsync("/v1/chat/completions", Json(body));
            var text = await response.Content.ReadAsStringAsync();
            Assert.True(response.StatusCode == HttpStatusCode.BadRequest, $"{param}: {(int)response.StatusCode} {text}");
            var error = JsonDocument.Parse(text).RootElement.GetProperty("error");
            Assert.Equal("invalid_request_error", error.GetProperty("type").GetString());
            Assert.True(param == error.GetProperty("param").GetString(), $"{param}: {text}");
            Assert.Contains(param.Split('.')[^1].Split('[')[0], error.GetProperty("message").GetString(), StringComparison.Ordinal);
        }

        Assert.Equal(0, kit.Upstream.Hits); // refused before anything reached the provider
        var events = await UsageAsync(kit.Database, cases.Count);
        Assert.Equal(cases.Count, events.Count);
        Assert.All(events, e => Assert.Equal((400, 0L, 0L), (e.Status, e.CostMicros, e.PromptTokens + e.CompletionTokens)));
        var guard = kit.Sluice.Services.GetRequiredService<SpendGuard>();
        await guard.SettleAsync(returnUnused: true, default);
        await using var db = kit.Database.CreateContext();
        Assert.Equal(0, await db.LedgerAccounts.Where(a => a.Type == AccountTypes.Revenue).SumAsync(a => a.BalanceMicros));
    }

    [Fact]
    public async Task Cache_writes_are_charged_as_input_tokens_to_the_micro_unit_whole_and_streamed()
    {
        // 3 per input token, 0.3 per cached (read) token, 15 per output token.
        await using var kit = await Kit.StartAsync(new { inputPerMillionMicros = 3_000_000, cachedInputPerMillionMicros = 300_000, outputPerMillionMicros = 15_000_000 });
        kit.Upstream.AnthropicAnswer = """{"id":"msg_1","type":"message","role":"assistant","model":"claude-sonnet-4-5","content":[{"type":"text","text":"ok"}],"stop_reason":"end_turn","usage":{"input_tokens":50,"cache_creation_input_tokens":700,"cache_read_input_tokens":200,"output_tokens":40}}""";
        kit.Upstream.AnthropicEvents = string.Join("\n\n",
            """event: message_start""" + "\n" + """data: {"type":"message_start","message":{"id":"msg_2","usage":{"input_tokens":50,"cache_creation_input_tokens":700,"cache_read_input_tokens":200,"output_tokens":1}}}""",
            """event: content_block_delta""" + "\n" + """data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"ok"}}""",
            """event: message_delta""" + "\n" + """data: {"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":40}}""",
            """event: message_stop""" + "\n" + """data: {"type":"message_stop"}""") + "\n\n";
        var longSystem = new string('s', 1_500); // the hold's prompt bound is the body's size: room for the 950 prompt tokens
        var body = $$$"""{"model":"claude","max_tokens":100,"messages":[{"role":"system","content":[{"type":"text","text":"{{{longSystem}}}","cache_control":{"type":"ephemeral"}}]},{"role":"user","content":"hi"}]}""";

        using var whole = await kit.Client.PostAsync("/v1/chat/completions", Json(body));
        using var streamed = await kit.Client.PostAsync("/v1/chat/completions", Json(body.Replace("\"max_tokens\":100", "\"max_tokens\":100,\"stream\":true", StringComparison.Ordinal)));

        Assert.Equal(HttpStatusCode.OK, whole.StatusCode);
        Assert.Equal(HttpStatusCode.OK, streamed.StatusCode);
        Assert.Contains("[DONE]", await streamed.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        var usage = JsonDocument.Parse(await whole.Content.ReadAsStringAsync()).RootElement.GetProperty("usage");
        Assert.Equal(950, usage.GetProperty("prompt_tokens").GetInt64());
        Assert.Equal(700, usage.GetProperty("prompt_tokens_details").GetProperty("cache_write_tokens").GetInt64());

        // (50 + 700) × 3 + 200 × 0.3 + 40 × 15 = 2,910 each; without the cache writes it would be 810.
        const long Expected = 2_910;
        var events = await UsageAsync(kit.Database, 2);
        Assert.All(events, e => Assert.Equal((950L, 200L, 40L, Expected), (e.PromptTokens, e.CachedTokens, e.CompletionTokens, e.CostMicros)));
        await kit.Sluice.Services.GetRequiredService<SpendGuard>().SettleAsync(returnUnused: true, default);
        await using var db = kit.Database.CreateContext();
        Assert.Equal(2 * Expected, await db.LedgerAccounts.Where(a => a.Type == AccountTypes.Revenue).SumAsync(a => a.BalanceMicros));
        Assert.Equal(10_000_000 - (2 * Expected), await db.LedgerAccounts.Where(a => a.OrganizationId == kit.OrgId && a.Type == AccountTypes.CustomerWallet).Select(a => a.BalanceMicros).SingleAsync());
    }

    [Theory]
    [InlineData("end_turn", "stop")]
    [InlineData("stop_sequence", "stop")]
    [InlineData("pause_turn", "stop")]
    [InlineData("max_tokens", "length")]
    [InlineData("model_context_window_exceeded", "length")]
    [InlineData("tool_use", "tool_calls")]
    [InlineData("refusal", "content_filter")]
    public void Stop_reasons_map_to_finish_reasons(string stopReason, string finishReason)
    {
        var answer = AnthropicTranslation.Response(
            System.Text.Encoding.UTF8.GetBytes($$$"""{"id":"msg_1","content":[{"type":"text","text":"x"}],"stop_reason":"{{{stopReason}}}","usage":{"input_tokens":1,"output_tokens":1}}"""), "claude", 1);
        Assert.Equal(finishReason, JsonDocument.Parse(answer).RootElement.GetProperty("choices")[0].GetProperty("finish_reason").GetString());
    }

    [Fact]
    public async Task A_repeated_property_is_a_400_and_deep_schemas_and_arguments_are_sent_not_a_500()
    {
        await using var kit = await Kit.StartAsync();
        kit.Upstream.AnthropicAnswer = Fixture("tool-result.response.json");

        using var repeated = await kit.Client.PostAsync("/v1/chat/completions", Json("""{"model":"claude","messages":[{"role":"user","role":"user","content":"x"}]}"""));
        Assert.Equal(HttpStatusCode.BadRequest, repeated.StatusCode);
        Assert.Equal(0, kit.Upstream.Hits);

        // A schema as deep as /v1 reads (64 levels in all) and deep tool call arguments translate without a server error.
        var schema = Protocols.Responses.ResponsesTests.Nested(60);
        var arguments = JsonSerializer.Serialize(Protocols.Responses.ResponsesTests.Nested(58));
        var deep = $$$"""{"model":"claude","tools":[{"type":"function","function":{"name":"f","parameters":{{{schema}}}}}],"messages":[{"role":"user","content":"x"},{"role":"assistant","tool_calls":[{"id":"c1","type":"function","function":{"name":"f","arguments":{{{arguments}}}}}]},{"role":"tool","tool_call_id":"c1","content":"ok"}]}""";
        using var response = await kit.Client.PostAsync("/v1/chat/completions", Json(deep));
        Assert.True(response.StatusCode == HttpStatusCode.OK, await response.Content.ReadAsStringAsync());
        Assert.Equal(1, kit.Upstream.Hits);
    }

    [Fact]
    public async Task Parallel_tool_calls_false_without_tools_sends_no_tool_choice()
    {
        await using var kit = await Kit.StartAsync();
        kit.Upstream.AnthropicAnswer = Fixture("tool-result.response.json");

        using var response = await kit.Client.PostAsync("/v1/chat/completions", Json("""{"model":"claude","parallel_tool_calls":false,"messages":[{"role":"user","content":"x"}]}"""));

        Assert.True(response.StatusCode == HttpStatusCode.OK, await response.Content.ReadAsStringAsync());
        Assert.False(JsonNode.Parse(kit.Upstream.Requests.Last().Body)!.AsObject().ContainsKey("tool_choice"));
    }

    [Fact]
    public async Task An_earlier_refusal_in_the_history_is_sent_as_the_assistants_text_not_dropped()
    {
        await using var kit = await Kit.StartAsync();
        kit.Upstream.AnthropicAnswer = Fixture("tool-result.response.json");

        using var response = await kit.Client.PostAsync("/v1/chat/completions", Json(
            """{"model":"claude","messages":[{"role":"user","content":"x"},{"role":"assistant","content":null,"refusal":"I cannot help with that."},{"role":"user","content":"y"}]}"""));

        Assert.True(response.StatusCode == HttpStatusCode.OK, await response.Content.ReadAsStringAsync());
        var sent = JsonNode.Parse(kit.Upstream.Requests.Last().Body)!["messages"]!.AsArray();
        Assert.Equal("assistant", sent[1]!["role"]!.GetValue<string>());
        Assert.Contains("I cannot help with that.", sent[1]!["content"]!.ToJsonString(), StringComparison.Ordinal);
    }

    [Fact]
    public void A_providers_stream_error_text_never_reaches_the_exception_message()
    {
        var translator = new AnthropicTranslation.StreamTranslator("claude", 0);

        var failure = Assert.Throws<UpstreamStreamException>(() => translator.Translate("error", """{"type":"error","error":{"type":"overloaded_error","message":"secret prompt words"}}""").ToList());

        Assert.DoesNotContain("secret", failure.Message, StringComparison.Ordinal);
    }
}
