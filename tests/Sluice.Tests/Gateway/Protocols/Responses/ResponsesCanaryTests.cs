using System.Net;
using System.Net.Http.Json;
using Sluice.Storage;
using Sluice.Tests.TestSupport;
using static Sluice.Tests.TestSupport.GatewayKit;

namespace Sluice.Tests.Gateway.Protocols.Responses;

/// <summary>
/// C01/C02 on <c>/v1/responses</c>: a unique string in Responses requests (plain and streamed, translated and passed
/// through natively, refused) and in the providers' answers never reaches the database, a log line or a file.
/// </summary>
public abstract class ResponsesCanaryTests(DatabaseProvider provider)
{
    [Fact]
    public async Task Responses_requests_and_answers_leave_no_trace_on_any_path()
    {
        var canary = "canary-" + Guid.NewGuid().ToString("N");
        await using var upstream = await FakeUpstream.StartAsync();
        upstream.Reply = "upstream answer " + canary;
        await using var tools = await FakeUpstream.StartAsync();
        tools.ToolCall = ("lookup", $$"""{"q":"{{canary}}"}""");
        await using var database = await TestDatabase.CreateAsync(provider);
        await using var sluice = new SluiceFactory(database);
        using var op = await OperatorAsync(sluice);
        await ProviderAsync(op, "up", upstream.BaseUrl);
        await ProviderAsync(op, "tools", tools.BaseUrl);
        var native = await op.PostAsJsonAsync("/api/v1/providers", new { name = "native", kind = "openai-compatible", baseUrl = upstream.BaseUrl.ToString(), responses = true });
        Assert.Equal(HttpStatusCode.Created, native.StatusCode);
        await ModelAsync(op, "m");
        await ModelAsync(op, "t");
        await ModelAsync(op, "n");
        await RouteAsync(op, "m", "up", "m");
        await RouteAsync(op, "t", "tools", "t");
        await RouteAsync(op, "n", "native", "n");
        var (_, _, key) = await TenantAsync(sluice);
        using var client = sluice.WithKey(key);

        string Request(string model, bool stream) => $$$"""
            {"model":"{{{model}}}","instructions":"{{{canary}}}","stream":{{{(stream ? "true" : "false")}}},
             "tools":[{"type":"function","name":"lookup","description":"{{{canary}}}","parameters":{"type":"object"}}],
             "input":[{"role":"user","content":[{"type":"input_text","text":"{{{canary}}}"}]},
                      {"type":"function_call","call_id":"c1","name":"lookup","arguments":"{\"q\":\"{{{canary}}}\"}"},
                      {"type":"function_call_output","call_id":"c1","output":"{{{canary}}}"}]}
            """;

        var outcomes = new List<HttpStatusCode>();
        foreach (var model in new[] { "echo", "m", "t", "n" })
        {
            foreach (var stream in new[] { false, true })
            {
                var response = await client.PostAsync("/v1/responses", Json(Request(model, stream)));
                _ = await response.Content.ReadAsStringAsync();
                outcomes.Add(response.StatusCode);
            }
        }

        outcomes.Add((await client.PostAsync("/v1/responses", Json($$"""{"model":"echo","input":"{{canary}}","store":true}"""))).StatusCode);
        outcomes.Add((await client.PostAsync("/v1/responses", Json($$"""{"model":"echo","input":"{{canary}}","tools":[{"type":"web_search"}]}"""))).StatusCode);
        outcomes.Add((await client.PostAsync("/v1/responses", Json($$"""{"model":"echo","input":[{"role":"user","content":[{"type":"{{canary}}"}]}]}"""))).StatusCode);
        outcomes.Add((await client.PostAsync("/v1/responses", Json($$"""{"model":"echo","input":"x","{{canary}}":1}"""))).StatusCode);

        Assert.Equal([.. Enumerable.Repeat(HttpStatusCode.OK, 8), .. Enumerable.Repeat(HttpStatusCode.BadRequest, 4)], outcomes);
        await UsageAsync(database, 12);
        await sluice.DisposeAsync(); // a clean stop: every writer has finished, so the scans see all it wrote

        var logs = sluice.Logs.All;
        var stored = await Canary.DumpDatabaseAsync(database);
        var files = await Canary.DumpDirectoryAsync(database.Directory);
        Assert.Contains("responses", stored, StringComparison.Ordinal); // the scans see real data
        Assert.NotEmpty(logs);
        Canary.AssertAbsent(logs, canary, "the logs");
        Canary.AssertAbsent(stored, canary, "the database");
        Canary.AssertAbsent(files, canary, "the data directory");
    }
}

public sealed class SqliteResponsesCanaryTests() : ResponsesCanaryTests(DatabaseProvider.Sqlite);

public sealed class PostgresResponsesCanaryTests() : ResponsesCanaryTests(DatabaseProvider.Postgres);
