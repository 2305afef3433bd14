using System.Net;
using Sluice.Storage;
using Sluice.Tests.TestSupport;
using static Sluice.Tests.TestSupport.GatewayKit;

namespace Sluice.Tests.Gateway.Anthropic;

/// <summary>
/// C01/C02 on the Anthropic translation: tool definitions, tool arguments and results, images, thinking, streamed tool
/// calls and refused fields carrying a unique string leave no trace in the database, the logs or the data directory.
/// </summary>
public sealed class AnthropicCanaryTests
{
    [Fact]
    public async Task Tools_images_thinking_and_refusals_leave_no_trace()
    {
        var canary = "canary-" + Guid.NewGuid().ToString("N");
        var image = Convert.ToBase64String(System.Text.Encoding.UTF8.GetBytes("image " + canary));
        await using var upstream = await FakeUpstream.StartAsync();
        upstream.AnthropicAnswer = $$$"""{"id":"msg_1","type":"message","role":"assistant","model":"claude","content":[{"type":"thinking","thinking":"{{{canary}}}","signature":"{{{canary}}}"},{"type":"tool_use","id":"toolu_1","name":"get_{{{canary}}}","input":{"q":"{{{canary}}}"}}],"stop_reason":"tool_use","usage":{"input_tokens":5,"cache_creation_input_tokens":3,"output_tokens":2}}""";
        upstream.AnthropicEvents = string.Join("\n\n",
            """event: message_start""" + "\n" + """data: {"type":"message_start","message":{"id":"msg_2","usage":{"input_tokens":5,"output_tokens":1}}}""",
            """event: content_block_start""" + "\n" + $$$"""data: {"type":"content_block_start","index":0,"content_block":{"type":"tool_use","id":"toolu_2","name":"get_{{{canary}}}","input":{} } }""",
            """event: content_block_delta""" + "\n" + $$$"""data: {"type":"content_block_delta","index":0,"delta":{"type":"input_json_delta","partial_json":"{\"q\":\"{{{canary}}}\"}"}}""",
            """event: message_delta""" + "\n" + """data: {"type":"message_delta","delta":{"stop_reason":"tool_use"},"usage":{"output_tokens":4}}""",
            """event: message_stop""" + "\n" + """data: {"type":"message_stop"}""") + "\n\n";
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Sqlite);
        await using var sluice = new SluiceFactory(database);
        using var op = await OperatorAsync(sluice);
        await ProviderAsync(op, "anthropic", upstream.BaseUrl, kind: "anthropic", apiKey: "ant-key");
        await ModelAsync(op, "claude");
        await RouteAsync(op, "claude", "anthropic", "claude-sonnet-4-5");
        var (_, _, key) = await TenantAsync(sluice);
        using var client = sluice.WithKey(key);
        var conversation = $$$"""
            "messages":[
              {"role":"system","content":[{"type":"text","text":"{{{canary}}}","cache_control":{"type":"ephemeral"}}]},
              {"role":"user","content":[{"type":"text","text":"{{{canary}}}"},{"type":"image_url","image_url":{"url":"data:image/png;base64,{{{image}}}"}},{"type":"image_url","image_url":{"url":"https://example.com/{{{canary}}}.png"}}]},
              {"role":"assistant","tool_calls":[{"id":"toolu_0","type":"function","function":{"name":"get_{{{canary}}}","arguments":"{\"q\":\"{{{canary}}}\"}"}}]},
              {"role":"tool","tool_call_id":"toolu_0","content":"{{{canary}}}"}],
            "tools":[{"type":"function","function":{"name":"get_{{{canary}}}","description":"{{{canary}}}","parameters":{"type":"object","properties":{"q":{"type":"string","description":"{{{canary}}}"} } } } }],
            "reasoning_effort":"low","max_completion_tokens":3000,"user":"{{{canary}}}"
            """;

        var outcomes = new List<HttpStatusCode>
        {
            (await client.PostAsync("/v1/chat/completions", Json($$"""{"model":"claude",{{conversation}}}"""))).StatusCode,
            (await client.PostAsync("/v1/chat/completions", Json($$"""{"model":"claude","stream":true,"stream_options":{"include_usage":true},{{conversation}}}"""))).StatusCode,
            (await client.PostAsync("/v1/chat/completions", Json($$"""{"model":"claude",{{conversation}},"{{canary}}":1}"""))).StatusCode,
            (await client.PostAsync("/v1/chat/completions", Json($$"""{"model":"claude","messages":[{"role":"user","content":[{"type":"{{canary}}","text":"{{canary}}"}]}]}"""))).StatusCode,
            (await client.PostAsync("/v1/chat/completions", Json($$$"""{"model":"claude","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:text/{{{canary}}};base64,{{{image}}}"}}]}]}"""))).StatusCode,
            (await client.PostAsync("/v1/chat/completions", Json($$"""{"model":"claude","messages":[{"role":"{{canary}}","content":"{{canary}}"}]}"""))).StatusCode,
        };

        Assert.Equal([HttpStatusCode.OK, HttpStatusCode.OK, HttpStatusCode.BadRequest, HttpStatusCode.BadRequest, HttpStatusCode.BadRequest, HttpStatusCode.BadRequest], outcomes);
        Assert.Contains(canary, upstream.Requests.First().Body, StringComparison.Ordinal); // the provider did get it all
        await UsageAsync(database, outcomes.Count);
        await sluice.DisposeAsync();

        var logs = sluice.Logs.All;
        var stored = await Canary.DumpDatabaseAsync(database);
        var files = await Canary.DumpDirectoryAsync(database.Directory);
        Assert.Contains("chat.completions", stored, StringComparison.Ordinal);
        Assert.NotEmpty(logs);
        Canary.AssertAbsent(logs, canary, "the logs");
        Canary.AssertAbsent(stored, canary, "the database");
        Canary.AssertAbsent(files, canary, "the data directory");
    }
}
