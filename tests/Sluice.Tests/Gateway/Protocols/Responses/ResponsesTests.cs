using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Sluice.Gateway;
using Sluice.Storage;
using Sluice.Tests.TestSupport;
using static Sluice.Tests.TestSupport.GatewayKit;

namespace Sluice.Tests.Gateway.Protocols.Responses;

/// <summary><c>POST /v1/responses</c>: translated to and from chat completions, or passed through to providers that speak it.</summary>
public sealed class ResponsesTests
{
    internal static List<(string Event, JsonElement Data)> TypedEvents(string body) =>
        body.Split("\n\n", StringSplitOptions.RemoveEmptyEntries)
            .Select(block =>
            {
                var lines = block.Split('\n');
                var name = lines.FirstOrDefault(l => l.StartsWith("event: ", StringComparison.Ordinal))?["event: ".Length..] ?? "";
                var data = string.Concat(lines.Where(l => l.StartsWith("data: ", StringComparison.Ordinal)).Select(l => l["data: ".Length..]));
                return (name, JsonDocument.Parse(data).RootElement.Clone());
            })
            .ToList();

    private static async Task<(SluiceFactory Sluice, HttpClient Client, HttpClient Operator)> StartAsync(TestDatabase database)
    {
        var sluice = new SluiceFactory(database);
        var op = await OperatorAsync(sluice);
        var (_, _, key) = await TenantAsync(sluice);
        return (sluice, sluice.WithKey(key), op);
    }

    [Fact]
    public async Task A_plain_request_to_the_echo_model_answers_a_response_object_with_the_text_and_usage_chat_gives()
    {
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Sqlite);
        var (sluice, client, op) = await StartAsync(database);
        await using var _ = sluice;
        using var __ = client;
        using var ___ = op;

        var response = await client.PostAsync("/v1/responses", Json("""{"model":"echo","input":"Hello there","instructions":"Be brief.","temperature":0.5,"metadata":{"k":"v"}}"""));
        var chat = await client.PostAsync("/v1/chat/completions", Json("""{"model":"echo","messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"Hello there"}]}"""));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var body = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement;
        var chatBody = JsonDocument.Parse(await chat.Content.ReadAsStringAsync()).RootElement;
        Assert.StartsWith("resp_", body.GetProperty("id").GetString());
        Assert.Equal("response", body.GetProperty("object").GetString());
        Assert.Equal("completed", body.GetProperty("status").GetString());
        Assert.Equal("echo", body.GetProperty("model").GetString());
        Assert.False(body.GetProperty("store").GetBoolean());
        Assert.Equal("Be brief.", body.GetProperty("instructions").GetString());
        Assert.Equal(0.5, body.GetProperty("temperature").GetDouble());
        Assert.Equal("v", body.GetProperty("metadata").GetProperty("k").GetString());
        Assert.Equal(JsonValueKind.Null, body.GetProperty("previous_response_id").ValueKind);
        var item = Assert.Single(body.GetProperty("output").EnumerateArray());
        Assert.Equal("message", item.GetProperty("type").GetString());
        Assert.StartsWith("msg_", item.GetProperty("id").GetString());
        Assert.Equal("assistant", item.GetProperty("role").GetString());
        var part = Assert.Single(item.GetProperty("content").EnumerateArray());
        Assert.Equal("output_text", part.GetProperty("type").GetString());
        Assert.Equal(0, part.GetProperty("annotations").GetArrayLength());
        Assert.Equal(chatBody.GetProperty("choices")[0].GetProperty("message").GetProperty("content").GetString(), part.GetProperty("text").GetString());
        Assert.Equal("Echo: Hello there", part.GetProperty("text").GetString());
        var usage = body.GetProperty("usage");
        Assert.Equal(chatBody.GetProperty("usage").GetProperty("prompt_tokens").GetInt32(), usage.GetProperty("input_tokens").GetInt32());
        Assert.Equal(4, usage.GetProperty("output_tokens").GetInt32());
        Assert.Equal(usage.GetProperty("input_tokens").GetInt32() + 4, usage.GetProperty("total_tokens").GetInt32());
        Assert.Equal(0, usage.GetProperty("input_tokens_details").GetProperty("cached_tokens").GetInt32());
        Assert.Equal(0, usage.GetProperty("output_tokens_details").GetProperty("reasoning_tokens").GetInt32());

        var events = await UsageAsync(database, 2);
        Assert.Equal(["chat.completions", "responses"], events.Select(e => e.Endpoint).Order().ToArray());
        var metered = events.Single(e => e.Endpoint == "responses");
        Assert.Equal((200, 4L), (metered.Status, metered.CompletionTokens));
    }

    [Fact]
    public async Task A_streamed_request_answers_the_typed_events_in_order_with_consecutive_sequence_numbers()
    {
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Sqlite);
        var (sluice, client, op) = await StartAsync(database);
        await using var _ = sluice;
        using var __ = client;
        using var ___ = op;

        var response = await client.PostAsync("/v1/responses", Json("""{"model":"echo","input":[{"role":"user","content":[{"type":"input_text","text":"stream me"}]}],"stream":true}"""));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("text/event-stream", response.Content.Headers.ContentType?.MediaType);
        var events = TypedEvents(await response.Content.ReadAsStringAsync());
        var types = events.Select(e => e.Data.GetProperty("type").GetString()).ToList();
        Assert.Equal(events.Select(e => e.Event), types); // the SSE event name is the data's type
        Assert.Equal(
            ["response.created", "response.in_progress", "response.output_item.added", "response.content_part.added",
             "response.output_text.delta", "response.output_text.delta", "response.output_text.delta", "response.output_text.delta",
             "response.output_text.done", "response.content_part.done", "response.output_item.done", "response.completed"],
            types);
        Assert.Equal(Enumerable.Range(0, events.Count), events.Select(e => e.Data.GetProperty("sequence_number").GetInt32()));
        var text = string.Concat(events.Where(e => e.Event == "response.output_text.delta").Select(e => e.Data.GetProperty("delta").GetString()));
        Assert.Equal("Echo: stream me", text);
        Assert.Equal(text, events.Single(e => e.Event == "response.output_text.done").Data.GetProperty("text").GetString());
        var created = events[0].Data.GetProperty("response");
        Assert.Equal("in_progress", created.GetProperty("status").GetString());
        var completed = events[^1].Data.GetProperty("response");
        Assert.Equal(created.GetProperty("id").GetString(), completed.GetProperty("id").GetString());
        Assert.Equal("completed", completed.GetProperty("status").GetString());
        Assert.False(completed.GetProperty("store").GetBoolean());
        var itemId = events[2].Data.GetProperty("item").GetProperty("id").GetString();
        Assert.Equal(itemId, completed.GetProperty("output")[0].GetProperty("id").GetString());
        Assert.All(events.Where(e => e.Event.StartsWith("response.output_text", StringComparison.Ordinal)), e => Assert.Equal(itemId, e.Data.GetProperty("item_id").GetString()));
        Assert.Equal(text, completed.GetProperty("output")[0].GetProperty("content")[0].GetProperty("text").GetString());
        Assert.Equal(4, completed.GetProperty("usage").GetProperty("output_tokens").GetInt32());
        var metered = Assert.Single(await UsageAsync(database, 1));
        Assert.Equal(("responses", true, 4L), (metered.Endpoint, metered.Stream, metered.CompletionTokens));
    }

    [Fact]
    public async Task A_limit_reached_makes_the_response_incomplete_for_max_output_tokens()
    {
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Sqlite);
        var (sluice, client, op) = await StartAsync(database);
        await using var _ = sluice;
        using var __ = client;
        using var ___ = op;

        var response = await client.PostAsync("/v1/responses", Json("""{"model":"echo","input":"one two three four","max_output_tokens":2}"""));
        var streamed = await client.PostAsync("/v1/responses", Json("""{"model":"echo","input":"one two three four","max_output_tokens":2,"stream":true}"""));

        var body = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement;
        Assert.Equal("incomplete", body.GetProperty("status").GetString());
        Assert.Equal("max_output_tokens", body.GetProperty("incomplete_details").GetProperty("reason").GetString());
        Assert.Equal(2, body.GetProperty("max_output_tokens").GetInt32());
        var last = TypedEvents(await streamed.Content.ReadAsStringAsync())[^1];
        Assert.Equal("response.incomplete", last.Event);
        Assert.Equal("max_output_tokens", last.Data.GetProperty("response").GetProperty("incomplete_details").GetProperty("reason").GetString());
    }

    [Fact]
    public async Task Tools_and_history_are_translated_to_chat_and_tool_calls_come_back_as_function_call_items()
    {
        await using var upstream = await FakeUpstream.StartAsync();
        upstream.ToolCall = ("get_weather", """{"city":"Paris"}""");
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Sqlite);
        var (sluice, client, op) = await StartAsync(database);
        await using var _ = sluice;
        using var __ = client;
        using var ___ = op;
        await ModelOnAsync(op, upstream.BaseUrl);
        var request = """
            {"model":"m","instructions":"Use tools.","max_output_tokens":300,"parallel_tool_calls":false,"top_p":0.9,"user":"u1",
             "reasoning":{"effort":"low"},
             "text":{"format":{"type":"json_schema","name":"w","schema":{"type":"object"},"strict":true}},
             "tools":[{"type":"function","name":"get_weather","description":"Weather","parameters":{"type":"object","properties":{"city":{"type":"string"}}},"strict":false}],
             "tool_choice":{"type":"function","name":"get_weather"},
             "input":[
               {"type":"message","role":"developer","content":"Be exact."},
               {"role":"user","content":[{"type":"input_text","text":"Weather?"},{"type":"input_image","image_url":"data:image/png;base64,AAAA","detail":"low"}]},
               {"type":"function_call","call_id":"call_0","name":"get_weather","arguments":"{\"city\":\"Rome\"}"},
               {"type":"function_call_output","call_id":"call_0","output":"sunny"},
               {"role":"assistant","content":[{"type":"output_text","text":"Rome is sunny.","annotations":[]}]},
               {"role":"user","content":"And Paris?"}
             ]%STREAM%}
            """;

        var whole = await client.PostAsync("/v1/responses", Json(request.Replace("%STREAM%", "")));
        var streamed = await client.PostAsync("/v1/responses", Json(request.Replace("%STREAM%", ""","stream":true""")));

        Assert.Equal(HttpStatusCode.OK, whole.StatusCode);
        var sent = JsonDocument.Parse(upstream.Requests.First().Body).RootElement;
        Assert.Equal("/v1/chat/completions", upstream.Requests.First().Path);
        var messages = sent.GetProperty("messages");
        Assert.Equal(["system", "developer", "user", "assistant", "tool", "assistant", "user"], messages.EnumerateArray().Select(m => m.GetProperty("role").GetString()));
        Assert.Equal("Use tools.", messages[0].GetProperty("content").GetString());
        Assert.Equal("image_url", messages[2].GetProperty("content")[1].GetProperty("type").GetString());
        Assert.Equal("data:image/png;base64,AAAA", messages[2].GetProperty("content")[1].GetProperty("image_url").GetProperty("url").GetString());
        Assert.Equal("low", messages[2].GetProperty("content")[1].GetProperty("image_url").GetProperty("detail").GetString());
        var history = messages[3].GetProperty("tool_calls")[0];
        Assert.Equal(("call_0", "get_weather", """{"city":"Rome"}"""), (history.GetProperty("id").GetString(), history.GetProperty("function").GetProperty("name").GetString(), history.GetProperty("function").GetProperty("arguments").GetString()));
        Assert.Equal(("call_0", "sunny"), (messages[4].GetProperty("tool_call_id").GetString(), messages[4].GetProperty("content").GetString()));
        Assert.Equal("Rome is sunny.", messages[5].GetProperty("content")[0].GetProperty("text").GetString());
        Assert.Equal("get_weather", sent.GetProperty("tools")[0].GetProperty("function").GetProperty("name").GetString());
        Assert.Equal("object", sent.GetProperty("tools")[0].GetProperty("function").GetProperty("parameters").GetProperty("type").GetString());
        Assert.Equal("get_weather", sent.GetProperty("tool_choice").GetProperty("function").GetProperty("name").GetString());
        Assert.Equal("json_schema", sent.GetProperty("response_format").GetProperty("type").GetString());
        Assert.True(sent.GetProperty("response_format").GetProperty("json_schema").GetProperty("strict").GetBoolean());
        Assert.Equal(300, sent.GetProperty("max_completion_tokens").GetInt32());
        Assert.Equal("low", sent.GetProperty("reasoning_effort").GetString());
        Assert.False(sent.GetProperty("parallel_tool_calls").GetBoolean());
        Assert.Equal(0.9, sent.GetProperty("top_p").GetDouble());
        Assert.Equal("u1", sent.GetProperty("user").GetString());

        var body = JsonDocument.Parse(await whole.Content.ReadAsStringAsync()).RootElement;
        var call = Assert.Single(body.GetProperty("output").EnumerateArray());
        Assert.Equal("function_call", call.GetProperty("type").GetString());
        Assert.StartsWith("fc_", call.GetProperty("id").GetString());
        Assert.Equal(("call_1", "get_weather", """{"city":"Paris"}""", "completed"),
            (call.GetProperty("call_id").GetString(), call.GetProperty("name").GetString(), call.GetProperty("arguments").GetString(), call.GetProperty("status").GetString()));
        Assert.Equal("get_weather", body.GetProperty("tools")[0].GetProperty("name").GetString()); // the request's tools echoed in its own shape
        Assert.Equal("function", body.GetProperty("tool_choice").GetProperty("type").GetString());
        Assert.Equal("json_schema", body.GetProperty("text").GetProperty("format").GetProperty("type").GetString());
        Assert.Equal(("low", false), (body.GetProperty("reasoning").GetProperty("effort").GetString(), body.GetProperty("parallel_tool_calls").GetBoolean()));
        Assert.Equal((11, 7, 3), (body.GetProperty("usage").GetProperty("input_tokens").GetInt32(), body.GetProperty("usage").GetProperty("output_tokens").GetInt32(),
            body.GetProperty("usage").GetProperty("input_tokens_details").GetProperty("cached_tokens").GetInt32()));

        var events = TypedEvents(await streamed.Content.ReadAsStringAsync());
        Assert.Equal(
            ["response.created", "response.in_progress", "response.output_item.added", "response.function_call_arguments.delta", "response.function_call_arguments.delta",
             "response.function_call_arguments.done", "response.output_item.done", "response.completed"],
            events.Select(e => e.Event));
        Assert.Equal(Enumerable.Range(0, events.Count), events.Select(e => e.Data.GetProperty("sequence_number").GetInt32()));
        Assert.Equal("function_call", events[2].Data.GetProperty("item").GetProperty("type").GetString());
        Assert.Equal("""{"city":"Paris"}""", string.Concat(events.Where(e => e.Event == "response.function_call_arguments.delta").Select(e => e.Data.GetProperty("delta").GetString())));
        Assert.Equal(("get_weather", """{"city":"Paris"}"""), (events[5].Data.GetProperty("name").GetString(), events[5].Data.GetProperty("arguments").GetString()));
        var completed = events[^1].Data.GetProperty("response");
        Assert.Equal("call_1", completed.GetProperty("output")[0].GetProperty("call_id").GetString());
        Assert.Equal(9, completed.GetProperty("usage").GetProperty("output_tokens").GetInt32());
    }

    [Fact]
    public async Task A_provider_that_speaks_the_Responses_API_gets_the_callers_body_with_the_model_limit_and_store_rewritten()
    {
        await using var upstream = await FakeUpstream.StartAsync();
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Sqlite);
        var (sluice, client, op) = await StartAsync(database);
        await using var _ = sluice;
        using var __ = client;
        using var ___ = op;
        var created = await op.PostAsJsonAsync("/api/v1/providers", new { name = "native", kind = "openai-compatible", baseUrl = upstream.BaseUrl.ToString(), responses = true });
        Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        var nativeProvider = JsonDocument.Parse(await created.Content.ReadAsStringAsync()).RootElement;
        Assert.True(nativeProvider.GetProperty("responses").GetBoolean());
        var refused = await op.PostAsJsonAsync("/api/v1/providers", new { name = "claude", kind = "anthropic", baseUrl = upstream.BaseUrl.ToString(), responses = true });
        Assert.Equal(HttpStatusCode.BadRequest, refused.StatusCode);
        Assert.Contains("responses", await refused.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        await ModelAsync(op, "n");
        await RouteAsync(op, "n", "native", "upstream-model");
        await ProviderAsync(op, "plain", upstream.BaseUrl);
        await ModelAsync(op, "t");
        await RouteAsync(op, "t", "plain", "upstream-model");

        var whole = await client.PostAsync("/v1/responses", Json("""{"model":"n","input":[{"role":"user","content":"hi"}],"max_output_tokens":50,"store":false,"metadata":{"a":"b"}}"""));
        var streamed = await client.PostAsync("/v1/responses", Json("""{"model":"n","input":"hi","stream":true}"""));
        var translated = await client.PostAsync("/v1/responses", Json("""{"model":"t","input":"hi"}"""));

        Assert.Equal(HttpStatusCode.OK, whole.StatusCode);
        var requests = upstream.Requests.ToList();
        Assert.Equal(["/v1/responses", "/v1/responses", "/v1/chat/completions"], requests.Select(r => r.Path));
        var sent = JsonDocument.Parse(requests[0].Body).RootElement;
        Assert.Equal("upstream-model", sent.GetProperty("model").GetString());
        Assert.False(sent.GetProperty("store").GetBoolean());
        Assert.Equal(50, sent.GetProperty("max_output_tokens").GetInt32());
        Assert.Equal("hi", sent.GetProperty("input")[0].GetProperty("content").GetString());
        Assert.Equal("b", sent.GetProperty("metadata").GetProperty("a").GetString()); // the caller's own fields go through
        var streamSent = JsonDocument.Parse(requests[1].Body).RootElement;
        Assert.False(streamSent.TryGetProperty("max_output_tokens", out var ignored)); // none sent, none held (the route is free)
        Assert.False(streamSent.GetProperty("store").GetBoolean());

        var body = JsonDocument.Parse(await whole.Content.ReadAsStringAsync()).RootElement;
        Assert.Equal("resp_fake1", body.GetProperty("id").GetString()); // passed through untouched
        var events = TypedEvents(await streamed.Content.ReadAsStringAsync());
        Assert.Equal("response.completed", events[^1].Event);
        Assert.Equal("w0 w1 w2 w3 w4 ", string.Concat(events.Where(e => e.Event == "response.output_text.delta").Select(e => e.Data.GetProperty("delta").GetString())));
        Assert.Equal("resp_", JsonDocument.Parse(await translated.Content.ReadAsStringAsync()).RootElement.GetProperty("id").GetString()![..5]);

        var usage = await UsageAsync(database, 3);
        Assert.All(usage, e => Assert.Equal("responses", e.Endpoint));
        var native = usage.Where(e => e.Model == "n").OrderBy(e => e.Stream).ToList();
        Assert.Equal((13L, 6L, 2L, false), (native[0].PromptTokens, native[0].CompletionTokens, native[0].CachedTokens, native[0].TokensCountedLocally));
        Assert.Equal((13L, 5L, false), (native[1].PromptTokens, native[1].CompletionTokens, native[1].TokensCountedLocally));

        // Turned off: the same model's Responses calls are translated to chat completions again.
        var patched = await op.PatchAsJsonAsync($"/api/v1/providers/{nativeProvider.GetProperty("id").GetString()}", new { responses = false });
        Assert.Equal(HttpStatusCode.OK, patched.StatusCode);
        Assert.False(JsonDocument.Parse(await patched.Content.ReadAsStringAsync()).RootElement.GetProperty("responses").GetBoolean());
        Assert.Equal(HttpStatusCode.OK, (await client.PostAsync("/v1/responses", Json("""{"model":"n","input":"hi"}"""))).StatusCode);
        Assert.Equal("/v1/chat/completions", upstream.Requests.Last().Path);
    }

    [Fact]
    public async Task A_priced_route_charges_the_responses_call_what_it_used_and_holds_the_limit()
    {
        await using var upstream = await FakeUpstream.StartAsync();
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Sqlite);
        var (sluice, client, op) = await StartAsync(database);
        await using var _ = sluice;
        using var __ = client;
        using var ___ = op;
        var route = await ModelOnAsync(op, upstream.BaseUrl);
        var price = await op.PostAsJsonAsync($"/api/v1/catalog/routes/{route}/prices", new { inputPerMillionMicros = 1_000_000, outputPerMillionMicros = 1_000_000 });
        Assert.True(price.IsSuccessStatusCode, await price.Content.ReadAsStringAsync());
        await sluice.Services.GetRequiredService<Catalog>().RefreshAsync(default);
        var (_, orgId, key) = await TenantAsync(sluice, "payer@example.com");
        var credit = await op.PostAsJsonAsync($"/api/v1/admin/orgs/{orgId}/wallet/credits", new { amountMicros = 1_000_000, reason = "test funds" });
        Assert.True(credit.IsSuccessStatusCode, await credit.Content.ReadAsStringAsync());
        using var payer = sluice.WithKey(key);

        var response = await payer.PostAsync("/v1/responses", Json("""{"model":"m","input":"hi","max_output_tokens":40}"""));
        var refused = await payer.PostAsync("/v1/responses", Json("""{"model":"m","input":"hi","store":true}"""));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(HttpStatusCode.BadRequest, refused.StatusCode);
        Assert.Equal(40, JsonDocument.Parse(Assert.Single(upstream.Requests).Body).RootElement.GetProperty("max_completion_tokens").GetInt32());
        var events = await UsageAsync(database, 2);
        var charged = events.Single(e => e.Status == 200);
        Assert.Equal(("responses", 11L, 7L, 18L), (charged.Endpoint, charged.PromptTokens, charged.CompletionTokens, charged.CostMicros));
        Assert.All(events.Where(e => e.Status != 200), e => Assert.Equal((400, 0L), (e.Status, e.CostMicros)));
    }

    [Fact]
    public async Task A_provider_failing_mid_stream_ends_the_stream_with_an_error_event_in_the_Responses_shape()
    {
        await using var upstream = await FakeUpstream.StartAsync();
        upstream.BreakStreamAfter = 2;
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Sqlite);
        var (sluice, client, op) = await StartAsync(database);
        await using var _ = sluice;
        using var __ = client;
        using var ___ = op;
        await ModelOnAsync(op, upstream.BaseUrl);

        var response = await client.PostAsync("/v1/responses", Json("""{"model":"m","input":"hi","stream":true}"""));

        var events = TypedEvents(await response.Content.ReadAsStringAsync());
        Assert.Equal("error", events[^1].Event);
        Assert.Equal("error", events[^1].Data.GetProperty("type").GetString());
        Assert.Equal("upstream_stream_error", events[^1].Data.GetProperty("code").GetString());
        Assert.Equal(Enumerable.Range(0, events.Count), events.Select(e => e.Data.GetProperty("sequence_number").GetInt32()));
        Assert.DoesNotContain(events, e => e.Event == "response.completed");
        Assert.Equal(2, events.Count(e => e.Event == "response.output_text.delta"));
        var metered = Assert.Single(await UsageAsync(database, 1));
        Assert.Equal(502, metered.Status);
    }

    private static readonly (string Body, string Field)[] BadRequests =
    [
        ("""{"model":"echo","input":"hi","store":true}""", "store"),
        ("""{"model":"echo","input":"hi","previous_response_id":"resp_123"}""", "previous_response_id"),
        ("""{"model":"echo","input":"hi","conversation":"conv_123"}""", "conversation"),
        ("""{"model":"echo","input":"hi","background":true}""", "background"),
        ("""{"model":"echo","input":"hi","tools":[{"type":"web_search_preview"}]}""", "tools[0].type"),
        ("""{"model":"echo","input":"hi","tools":[{"type":"function","name":"f"},{"type":"file_search","vector_store_ids":["vs_1"]}]}""", "tools[1].type"),
        ("""{"model":"echo","input":"hi","tools":[{"type":"computer_use_preview","display_width":1,"display_height":1,"environment":"browser"}]}""", "tools[0].type"),
        ("""{"model":"echo","input":"hi","tools":[{"type":"code_interpreter","container":"auto"}]}""", "tools[0].type"),
        ("""{"model":"echo","input":"hi","tools":[{"type":"function","name":"f","frob":1}]}""", "tools[0].frob"),
        ("""{"model":"echo","input":"hi","tool_choice":{"type":"web_search_preview"}}""", "tool_choice"),
        ("""{"model":"echo","input":"hi","frobnicate":1}""", "frobnicate"),
        ("""{"model":"echo","input":"hi","top_logprobs":2}""", "top_logprobs"),
        ("""{"model":"echo","input":"hi","include":["reasoning.encrypted_content"]}""", "include"),
        ("""{"model":"echo","input":"hi","truncation":"auto"}""", "truncation"),
        ("""{"model":"echo","input":"hi","reasoning":{"effort":"low","summary":"auto"}}""", "reasoning.summary"),
        ("""{"model":"echo","input":"hi","text":{"format":{"type":"grammar"}}}""", "text.format.type"),
        ("""{"model":"echo","input":"hi","max_output_tokens":"lots"}""", "max_output_tokens"),
        ("""{"model":"echo","input":[{"type":"item_reference","id":"msg_1"}]}""", "input[0].type"),
        ("""{"model":"echo","input":[{"type":"reasoning","summary":[]}]}""", "input[0].type"),
        ("""{"model":"echo","input":[{"role":"user","content":[{"type":"input_file","file_id":"file-1"}]}]}""", "input[0].content[0].type"),
        ("""{"model":"echo","input":[{"role":"user","content":[{"type":"input_image","file_id":"file-1"}]}]}""", "input[0].content[0].file_id"),
        ("""{"model":"echo","input":[{"role":"user","content":"hi","extra":1}]}""", "input[0].extra"),
        ("""{"model":"echo","input":[{"role":"critic","content":"hi"}]}""", "input[0].role"),
        ("""{"model":"echo","input":[]}""", "input"),
        ("""{"model":"echo"}""", "input"),
        ("""{"input":"hi"}""", "model"),
    ];

    [Fact]
    public async Task An_untranslatable_or_stateful_request_is_a_400_in_OpenAIs_shape_naming_the_field_and_nothing_is_charged()
    {
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Sqlite);
        var (sluice, client, op) = await StartAsync(database);
        await using var _ = sluice;
        using var __ = client;
        using var ___ = op;

        foreach (var (body, field) in BadRequests)
        {
            var response = await client.PostAsync("/v1/responses", Json(body));
            var streamed = await client.PostAsync("/v1/responses", Json(body.Replace("{\"model\"", "{\"stream\":true,\"model\"").Replace("{\"input\"", "{\"stream\":true,\"input\"")));

            foreach (var answer in new[] { response, streamed })
            {
                var text = await answer.Content.ReadAsStringAsync();
                Assert.True(answer.StatusCode == HttpStatusCode.BadRequest, $"{field}: {(int)answer.StatusCode} {text}");
                Assert.Equal("application/json", answer.Content.Headers.ContentType?.MediaType);
                var error = JsonDocument.Parse(text).RootElement.GetProperty("error");
                Assert.Equal("invalid_request_error", error.GetProperty("type").GetString());
                Assert.Equal(field, error.GetProperty("param").GetString());
                Assert.Contains(field, error.GetProperty("message").GetString(), StringComparison.Ordinal);
                Assert.DoesNotContain("resp_123", error.GetProperty("message").GetString(), StringComparison.Ordinal); // names fields, never quotes values
            }

            if (field is "store" or "previous_response_id" or "conversation")
            {
                var message = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.GetProperty("error").GetProperty("message").GetString();
                Assert.Contains("keeps no content", message, StringComparison.Ordinal);
                Assert.Contains("'input'", message, StringComparison.Ordinal);
            }
        }

        var events = await UsageAsync(database, 2 * BadRequests.Length);
        Assert.Equal(2 * BadRequests.Length, events.Count);
        Assert.All(events, e => Assert.Equal(("responses", 400, 0L, 0L), (e.Endpoint, e.Status, e.CompletionTokens, e.CostMicros)));
    }

    [Fact]
    public async Task A_body_that_is_not_valid_UTF8_is_a_400_not_a_500()
    {
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Sqlite);
        var (sluice, client, op) = await StartAsync(database);
        await using var _ = sluice;
        using var __ = client;
        using var ___ = op;
        var bytes = Encoding.UTF8.GetBytes("""{"model":"echo","input":"hi X"}""");
        bytes[^3] = 0xff;
        var content = new ByteArrayContent(bytes);
        content.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue("application/json");

        var response = await client.PostAsync("/v1/responses", content);
        var surrogate = await client.PostAsync("/v1/responses", Json("""{"model":"echo","input":"hi \ud800"}"""));

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Equal("invalid_encoding", JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.GetProperty("error").GetProperty("code").GetString());
        Assert.Equal(HttpStatusCode.BadRequest, surrogate.StatusCode);
    }

    /// <summary><paramref name="levels"/> nested objects: <c>{"a":{"a":…{}}}</c>.</summary>
    internal static string Nested(int levels) => string.Concat(Enumerable.Repeat("{\"a\":", levels - 1)) + "{}" + new string('}', levels - 1);

    [Fact]
    public async Task A_repeated_property_or_a_tool_schema_too_deep_to_translate_is_a_400_not_a_500()
    {
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Sqlite);
        var (sluice, client, op) = await StartAsync(database);
        await using var _ = sluice;
        using var __ = client;
        using var ___ = op;

        // Depth 64 in all (the limit /v1 reads), but parameters moves one level deeper in chat completions.
        var deep = $$"""{"model":"echo","input":"a","tools":[{"type":"function","name":"f","parameters":{{Nested(61)}}}]}""";
        var fits = $$"""{"model":"echo","input":"a","tools":[{"type":"function","name":"f","parameters":{{Nested(60)}}}]}""";
        foreach (var body in new[] { """{"model":"echo","input":"a","input":"b"}""", """{"model":"echo","input":[{"role":"user","role":"user","content":"x"}]}""", deep })
        {
            using var response = await client.PostAsync("/v1/responses", Json(body));
            var text = await response.Content.ReadAsStringAsync();
            Assert.True(response.StatusCode == HttpStatusCode.BadRequest, $"{body[..40]}: {(int)response.StatusCode} {text}");
            Assert.Equal("invalid_request_error", JsonDocument.Parse(text).RootElement.GetProperty("error").GetProperty("type").GetString());
        }

        using var fitting = await client.PostAsync("/v1/responses", Json(fits));
        Assert.Equal(HttpStatusCode.OK, fitting.StatusCode);
    }

    [Theory]
    [InlineData("""{"choices":[{"index":"zero","delta":{"content":"a"}}]}""")]
    [InlineData("""{"choices":[{"index":0,"delta":{"tool_calls":[{"index":"x","id":1,"function":{"name":2}}]}}]}""")]
    public void An_upstream_chunk_of_an_unexpected_shape_is_a_broken_stream_not_a_server_error(string chunk)
    {
        var translator = new Sluice.Gateway.Protocols.Responses.ResponsesStreamTranslator(null, "m", 0);

        // The relay ends a stream on a JsonException with an error event; anything else escapes it as a 500.
        Assert.ThrowsAny<JsonException>(() => translator.Chunk(chunk).ToList());
    }
}
