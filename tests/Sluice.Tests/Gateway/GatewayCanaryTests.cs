using System.Net;
using System.Text.Json;
using Sluice.Storage;
using Sluice.Tests.TestSupport;
using static Sluice.Tests.TestSupport.GatewayKit;

namespace Sluice.Tests.Gateway;

/// <summary>
/// C01/C02: a unique string sent through every endpoint and every outcome never reaches the database, a log line (at
/// any level) or any file in the data directory, in plain, JSON-escaped, hex or base64 form.
/// </summary>
public abstract class GatewayCanaryTests(DatabaseProvider provider)
{
    [Fact]
    public async Task Prompts_and_completions_leave_no_trace_on_any_path()
    {
        var canary = "canary-" + Guid.NewGuid().ToString("N");
        await using var upstream = await FakeUpstream.StartAsync();
        upstream.Reply = "upstream answer " + canary;
        upstream.Chunks = 1_000; // 10 s of stream: a loaded machine's slow cancellation still reaches it before it ends
        upstream.DelayBetweenChunks = TimeSpan.FromMilliseconds(10);
        await using var failing = await FakeUpstream.StartAsync();
        failing.FailWith = 500;
        await using var database = await TestDatabase.CreateAsync(provider);
        await using var sluice = new SluiceFactory(database);
        using var op = await OperatorAsync(sluice);
        await ProviderAsync(op, "up", upstream.BaseUrl);
        await ProviderAsync(op, "down", failing.BaseUrl);
        await ModelAsync(op, "m");
        await ModelAsync(op, "broken");
        await RouteAsync(op, "m", "up", "m-upstream"); // the provider answers with its own name: every answer on m is rewritten (AnswerStamp)
        await RouteAsync(op, "broken", "down", "m");
        Assert.Equal(HttpStatusCode.Created, (await op.PostAsync("/api/v1/catalog/aliases", Json("""{"alias":"m-alias","model":"m"}"""))).StatusCode);
        var (owner, orgId, key) = await TenantAsync(sluice);
        var limited = JsonDocument.Parse(await (await owner.PostAsync($"/api/v1/orgs/{orgId}/keys", Json("""{"name":"l","scopes":["inference"],"requestsPerMinute":1}"""))).Content.ReadAsStringAsync())
            .RootElement.GetProperty("key").GetString()!;
        using var client = sluice.WithKey(key);
        using var limitedClient = sluice.WithKey(limited);

        var outcomes = new List<HttpStatusCode>
        {
            (await client.PostAsync("/v1/chat/completions", Chat("echo", canary))).StatusCode,
            (await client.PostAsync("/v1/chat/completions", Chat("echo", canary, stream: true, includeUsage: true))).StatusCode,
            (await client.PostAsync("/v1/completions", Json($$"""{"model":"echo","prompt":"{{canary}}"}"""))).StatusCode,
            (await client.PostAsync("/v1/embeddings", Json($$"""{"model":"echo","input":["{{canary}}"]}"""))).StatusCode,
            (await client.PostAsync("/v1/chat/completions", Chat("m", canary))).StatusCode,
            (await client.PostAsync("/v1/chat/completions", Chat("broken", canary))).StatusCode,
            (await client.PostAsync("/v1/chat/completions", Json($$"""{"model":"echo","messages":[{"role":"user","content":"{{canary}}"}"""))).StatusCode,
            (await client.PostAsync("/v1/chat/completions", Json($$"""{"model":"{{canary}}","messages":[{"role":"user","content":"{{canary}}"}]}"""))).StatusCode,
            (await limitedClient.PostAsync("/v1/chat/completions", Chat("echo", canary))).StatusCode,
            (await limitedClient.PostAsync("/v1/chat/completions", Chat("echo", canary))).StatusCode,
            (await client.PostAsync("/v1/chat/completions", Chat("m-alias", canary))).StatusCode, // an alias
            (await client.PostAsync("/v1/chat/completions", Json($$"""{"model":"echo","messages":[{"role":"user","content":"{{canary}} \ud800"}]}"""))).StatusCode,
        };

        // Errors outside the pipeline: an unknown path, a wrong method, a batch whose metadata is not text.
        var outside = new List<HttpStatusCode>
        {
            (await client.PostAsync("/v1/chat/completion", Chat("echo", canary))).StatusCode,
            (await client.PutAsync("/v1/chat/completions", Chat("echo", canary))).StatusCode,
            (await client.PostAsync("/v1/batches", Json($$$"""{"input_file_id":"file-x","endpoint":"/v1/chat/completions","completion_window":"24h","metadata":{"k":"{{{canary}}} \udc00"}}"""))).StatusCode,
        };

        // The echo model's parameters (issue 18): n, stop, base64 embeddings, and its refusals, whose messages name fields only.
        var echoOutcomes = new List<(HttpStatusCode Status, string Body)>();
        foreach (var (path, json) in new[]
        {
            ("/v1/chat/completions", $$"""{"model":"echo","n":2,"stream":true,"stop":["{{canary}}"],"messages":[{"role":"user","content":"{{canary}}"}]}"""),
            ("/v1/embeddings", $$"""{"model":"echo","input":"{{canary}}","encoding_format":"base64","dimensions":8}"""),
            ("/v1/chat/completions", $$"""{"model":"echo","logprobs":true,"messages":[{"role":"user","content":"{{canary}}"}]}"""),
            ("/v1/chat/completions", $$"""{"model":"echo","stop":{"{{canary}}":1},"messages":[{"role":"user","content":"{{canary}}"}]}"""),
        })
        {
            var answer = await client.PostAsync(path, Json(json));
            echoOutcomes.Add((answer.StatusCode, await answer.Content.ReadAsStringAsync()));
        }

        Assert.Equal([HttpStatusCode.OK, HttpStatusCode.OK, HttpStatusCode.BadRequest, HttpStatusCode.BadRequest], echoOutcomes.Select(o => o.Status));
        Canary.AssertAbsent(echoOutcomes[2].Body + echoOutcomes[3].Body, canary, "the echo model's error messages");

        using (var cancel = new CancellationTokenSource())
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions") { Content = Chat("m", canary, stream: true) };
            using var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cancel.Token);
            await using var body = await response.Content.ReadAsStreamAsync(cancel.Token);
            _ = await body.ReadAsync(new byte[128], cancel.Token);
            await cancel.CancelAsync();
        }

        Assert.Equal(
            [HttpStatusCode.OK, HttpStatusCode.OK, HttpStatusCode.OK, HttpStatusCode.OK, HttpStatusCode.OK, HttpStatusCode.BadGateway,
             HttpStatusCode.BadRequest, HttpStatusCode.NotFound, HttpStatusCode.OK, HttpStatusCode.TooManyRequests, HttpStatusCode.OK, HttpStatusCode.BadRequest],
            outcomes);
        Assert.Equal([HttpStatusCode.NotFound, HttpStatusCode.MethodNotAllowed, HttpStatusCode.BadRequest], outside);
        await upstream.StreamCancelled.Task.WaitAsync(TimeSpan.FromSeconds(30));
        await UsageAsync(database, 13);
        await sluice.DisposeAsync(); // a clean stop: every writer (usage, audit, logs) has finished, so the scans see all it wrote

        var logs = sluice.Logs.All;
        var stored = await Canary.DumpDatabaseAsync(database);
        var files = await Canary.DumpDirectoryAsync(database.Directory);
        Assert.Contains("chat.completions", stored, StringComparison.Ordinal); // the scans see real data
        Assert.NotEmpty(logs);
        Canary.AssertAbsent(logs, canary, "the logs");
        Canary.AssertAbsent(stored, canary, "the database");
        Canary.AssertAbsent(files, canary, "the data directory");

        // Negative control: a canary planted in the data directory is found.
        await File.WriteAllTextAsync(Path.Combine(database.Directory, "planted.txt"), Convert.ToBase64String(System.Text.Encoding.UTF8.GetBytes("xx" + canary)));
        Assert.Throws<Xunit.Sdk.FalseException>(() => Canary.AssertAbsent(Canary.DumpDirectoryAsync(database.Directory).GetAwaiter().GetResult(), canary, "the data directory"));
    }
}

public sealed class SqliteGatewayCanaryTests() : GatewayCanaryTests(DatabaseProvider.Sqlite);

public sealed class PostgresGatewayCanaryTests() : GatewayCanaryTests(DatabaseProvider.Postgres);
