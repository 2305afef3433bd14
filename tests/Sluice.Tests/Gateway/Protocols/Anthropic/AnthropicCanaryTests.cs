using System.Net;
using Sluice.Storage;
using Sluice.Tests.TestSupport;
using static Sluice.Tests.Gateway.Protocols.Anthropic.AnthropicMessagesTests;
using static Sluice.Tests.TestSupport.GatewayKit;

namespace Sluice.Tests.Gateway.Protocols.Anthropic;

/// <summary>
/// C01/C02 on <c>/v1/messages</c>: a unique string in a Messages request (plain and streamed; to echo, translated to an
/// OpenAI-compatible provider, passed through to an Anthropic one; counted; refused) reaches no log line, database row or file.
/// </summary>
public abstract class AnthropicCanaryTests(DatabaseProvider provider)
{
    [Fact]
    public async Task A_canary_in_a_Messages_request_leaves_no_trace_on_any_path()
    {
        var canary = "canary-" + Guid.NewGuid().ToString("N");
        await using var openAi = await FakeUpstream.StartAsync();
        openAi.Reply = "upstream answer " + canary;
        await using var anthropic = await FakeUpstream.StartAsync();
        anthropic.Reply = "claude answer " + canary;
        await using var database = await TestDatabase.CreateAsync(provider);
        await using var sluice = new SluiceFactory(database);
        using (var op = await OperatorAsync(sluice))
        {
            await ProviderAsync(op, "up", openAi.BaseUrl);
            await ProviderAsync(op, "claude", anthropic.BaseUrl, kind: "anthropic");
            await ModelAsync(op, "m");
            await ModelAsync(op, "sonnet");
            await RouteAsync(op, "m", "up", "m");
            await RouteAsync(op, "sonnet", "claude", "claude-x");
        }

        var (_, _, key) = await TenantAsync(sluice);
        using var client = AnthropicClient(sluice, key);
        string Body(string model, bool stream = false) =>
            $$$"""{"model":"{{{model}}}","max_tokens":50,"stream":{{{(stream ? "true" : "false")}}},"system":"{{{canary}}}","messages":[{"role":"user","content":[{"type":"text","text":"{{{canary}}}"}]},{"role":"assistant","content":[{"type":"tool_use","id":"toolu_1","name":"t","input":{"q":"{{{canary}}}"}}]},{"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_1","content":"{{{canary}}}"}]}]}""";

        var outcomes = new List<HttpStatusCode>();
        foreach (var (model, stream) in new[] { ("echo", false), ("echo", true), ("m", false), ("m", true), ("sonnet", false), ("sonnet", true) })
        {
            using var response = await client.SendAsync(Messages(Body(model, stream)));
            _ = await response.Content.ReadAsStringAsync();
            outcomes.Add(response.StatusCode);
        }

        outcomes.Add((await client.SendAsync(Messages($$"""{"model":"echo","messages":[{"role":"user","content":"{{canary}}"}]}""", path: "/v1/messages/count_tokens"))).StatusCode);
        outcomes.Add((await client.SendAsync(Messages($$"""{"model":"echo","max_tokens":5,"messages":[{"role":"user","content":[{"type":"hologram","text":"{{canary}}"}]}]}"""))).StatusCode);
        outcomes.Add((await client.SendAsync(Messages($$"""{"model":"{{canary}}","max_tokens":5,"messages":[{"role":"user","content":"{{canary}}"}]}"""))).StatusCode);

        Assert.Equal(
            [HttpStatusCode.OK, HttpStatusCode.OK, HttpStatusCode.OK, HttpStatusCode.OK, HttpStatusCode.OK, HttpStatusCode.OK, HttpStatusCode.OK, HttpStatusCode.BadRequest, HttpStatusCode.NotFound],
            outcomes);
        Assert.Contains(canary, openAi.Requests.First().Body, StringComparison.Ordinal); // the content did travel
        Assert.Contains(canary, anthropic.Requests.First().Body, StringComparison.Ordinal);
        await UsageAsync(database, 8);
        await sluice.DisposeAsync();

        var logs = sluice.Logs.All;
        var stored = await Canary.DumpDatabaseAsync(database);
        var files = await Canary.DumpDirectoryAsync(database.Directory);
        Assert.Contains("messages", stored, StringComparison.Ordinal);
        Assert.NotEmpty(logs);
        Canary.AssertAbsent(logs, canary, "the logs");
        Canary.AssertAbsent(stored, canary, "the database");
        Canary.AssertAbsent(files, canary, "the data directory");
    }
}

public sealed class SqliteAnthropicCanaryTests() : AnthropicCanaryTests(DatabaseProvider.Sqlite);

public sealed class PostgresAnthropicCanaryTests() : AnthropicCanaryTests(DatabaseProvider.Postgres);
