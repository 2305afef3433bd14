using System.Text.Json;
using Sluice.Storage;
using Sluice.Tests.TestSupport;
using static Sluice.Tests.Gateway.Protocols.Responses.ResponsesTests;
using static Sluice.Tests.TestSupport.GatewayKit;

namespace Sluice.Tests.Gateway.Protocols.Responses;

/// <summary>A translated Responses stream: a streamed refusal is a refusal part, parallel tool calls stay one item each.</summary>
public sealed class ResponsesStreamShapesTests
{
    private static string Chunk(string delta, string? finish = null) =>
        $$"""data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"up-m","choices":[{"index":0,"delta":{{delta}},"finish_reason":{{(finish is null ? "null" : $"\"{finish}\"")}}}]}""" + "\n\n";

    private static async Task<List<(string Event, JsonElement Data)>> StreamAsync(string events)
    {
        await using var upstream = await FakeUpstream.StartAsync();
        upstream.RawEvents = events + "data: [DONE]\n\n";
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Sqlite);
        await using var sluice = new SluiceFactory(database);
        using (var op = await OperatorAsync(sluice))
        {
            await ModelOnAsync(op, upstream.BaseUrl);
        }

        var (_, _, key) = await TenantAsync(sluice);
        using var client = sluice.WithKey(key);
        using var response = await client.PostAsync("/v1/responses", Json("""{"model":"m","input":"hi","stream":true}"""));
        return TypedEvents(await response.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task A_streamed_refusal_is_a_refusal_part_with_refusal_delta_and_done_events()
    {
        var events = await StreamAsync(Chunk("""{"role":"assistant","refusal":"I can't "}""") + Chunk("""{"refusal":"help with that."}""") + Chunk("{}", "stop"));

        Assert.DoesNotContain(events, e => e.Event.StartsWith("response.output_text", StringComparison.Ordinal));
        Assert.Equal("I can't help with that.", string.Concat(events.Where(e => e.Event == "response.refusal.delta").Select(e => e.Data.GetProperty("delta").GetString())));
        var done = Assert.Single(events, e => e.Event == "response.refusal.done");
        Assert.Equal("I can't help with that.", done.Data.GetProperty("refusal").GetString());
        Assert.Equal("refusal", Assert.Single(events, e => e.Event == "response.content_part.added").Data.GetProperty("part").GetProperty("type").GetString());
        var part = Assert.Single(events[^1].Data.GetProperty("response").GetProperty("output")[0].GetProperty("content").EnumerateArray());
        Assert.Equal(("refusal", "I can't help with that."), (part.GetProperty("type").GetString(), part.GetProperty("refusal").GetString()));
    }

    [Fact]
    public async Task Parallel_tool_calls_with_interleaved_argument_deltas_stay_one_function_call_item_each()
    {
        var events = await StreamAsync(
            Chunk("""{"role":"assistant","tool_calls":[{"index":0,"id":"call_a","type":"function","function":{"name":"f","arguments":""}}]}""")
            + Chunk("""{"tool_calls":[{"index":1,"id":"call_b","type":"function","function":{"name":"g","arguments":""}}]}""")
            + Chunk("""{"tool_calls":[{"index":0,"function":{"arguments":"{\"x\":"}}]}""")
            + Chunk("""{"tool_calls":[{"index":1,"function":{"arguments":"{\"y\":"}}]}""")
            + Chunk("""{"tool_calls":[{"index":0,"function":{"arguments":"1}"}}]}""")
            + Chunk("""{"tool_calls":[{"index":1,"function":{"arguments":"2}"}}]}""")
            + Chunk("{}", "tool_calls"));

        Assert.Equal(2, events.Count(e => e.Event == "response.output_item.added"));
        var output = events[^1].Data.GetProperty("response").GetProperty("output").EnumerateArray().ToList();
        Assert.Equal([("call_a", "f", """{"x":1}"""), ("call_b", "g", """{"y":2}""")],
            output.Select(o => (o.GetProperty("call_id").GetString(), o.GetProperty("name").GetString(), o.GetProperty("arguments").GetString())));
        Assert.All(events.Where(e => e.Event == "response.function_call_arguments.done"), e =>
            Assert.Equal(e.Data.GetProperty("output_index").GetInt32() == 0 ? """{"x":1}""" : """{"y":2}""", e.Data.GetProperty("arguments").GetString()));
    }
}
