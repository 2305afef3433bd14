using System.ClientModel;
using System.ClientModel.Primitives;
using System.Globalization;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.EntityFrameworkCore;
using OpenAI;
using OpenAI.Chat;
using Sluice.Billing;
using Sluice.Storage;
using Sluice.Tests.TestSupport;
using static Sluice.Tests.TestSupport.GatewayKit;

namespace Sluice.Tests.Gateway;

/// <summary>
/// <c>usage.cost</c> in answers (whole, the stream's usage chunk, batch lines) is what the ledger charged for the call, to
/// the micro-unit; 0 on free routes; an organization can turn it off. Answers carry the public model id, never the
/// provider's upstream name.
/// </summary>
public sealed class UsageCostTests
{
    /// <summary>
    /// A model <c>m</c> routed to <paramref name="upstream"/> under the provider's name <paramref name="upstreamModel"/>,
    /// priced so that charges have odd fractions (123.456789 micro-units an input token, 2 an output token), and a funded tenant.
    /// </summary>
    private static async Task<(HttpClient Client, HttpClient Owner, Guid OrgId)> PricedAsync(
        SluiceFactory sluice, FakeUpstream upstream, string upstreamModel = "m", bool priced = true)
    {
        using var op = await OperatorAsync(sluice);
        await ProviderAsync(op, "p", upstream.BaseUrl);
        await ModelAsync(op, "m");
        var route = await RouteAsync(op, "m", "p", upstreamModel);
        if (priced)
        {
            var price = await op.PostAsJsonAsync($"/api/v1/catalog/routes/{route}/prices", new { inputPerMillionMicros = 123_456_789, outputPerMillionMicros = 2_000_000 });
            Assert.True(price.IsSuccessStatusCode, await price.Content.ReadAsStringAsync());
        }

        await CatalogSeesAsync("m", priced, sluice);
        var (owner, orgId, key) = await TenantAsync(sluice);
        var credit = await op.PostAsJsonAsync($"/api/v1/admin/orgs/{orgId}/wallet/credits", new { amountMicros = 100_000_000, reason = "test funds" });
        Assert.True(credit.IsSuccessStatusCode, await credit.Content.ReadAsStringAsync());
        return (sluice.WithKey(key), owner, orgId);
    }

    private static JsonElement Usage(string body) => JsonDocument.Parse(body).RootElement.GetProperty("usage").Clone();

    /// <summary>The cost an answer states, as micro-units (it must be exact: no rounding happens on the way back).</summary>
    private static long CostMicros(JsonElement usage) => (long)(usage.GetProperty("cost").GetDecimal() * 1_000_000m);

    private static JsonElement StreamUsage(string body)
    {
        var events = Events(body);
        Assert.Equal("[DONE]", events[^1]);
        return Usage(events[^2]);
    }

    [Theory]
    [InlineData(DatabaseProvider.Sqlite)]
    [InlineData(DatabaseProvider.Postgres)]
    public async Task Usage_cost_in_whole_answers_and_the_streams_usage_chunk_is_what_the_ledger_charged_to_the_micro_unit(DatabaseProvider provider)
    {
        await using var upstream = await FakeUpstream.StartAsync();
        await using var database = await TestDatabase.CreateAsync(provider);
        var sluice = new SluiceFactory(database);
        var (client, owner, orgId) = await PricedAsync(sluice, upstream);
        using var _client = client;
        using var _owner = owner;

        var chat = await client.PostAsync("/v1/chat/completions", Chat("m", "hi"));
        var stream = await client.PostAsync("/v1/chat/completions", Chat("m", "hi", stream: true, includeUsage: true));
        var completion = await client.PostAsync("/v1/completions", Json("""{"model":"m","prompt":"hi","max_tokens":20}"""));
        var embedding = await client.PostAsync("/v1/embeddings", Json("""{"model":"m","input":"hi"}"""));

        var bodies = new[] { chat, stream, completion, embedding }.Select(r => r.Content.ReadAsStringAsync().Result).ToArray();
        Assert.All(new[] { chat, stream, completion, embedding }, r => Assert.Equal(HttpStatusCode.OK, r.StatusCode));
        var stated = new[] { Usage(bodies[0]), StreamUsage(bodies[1]), Usage(bodies[2]), Usage(bodies[3]) }.Select(CostMicros).ToArray();
        var events = await UsageAsync(database, 4);
        Assert.Equal(events.Select(e => e.CostMicros), stated);
        // 11 prompt tokens (3 cached, at the input price) at 123.456789 and 7 completion tokens at 2: 1358.02… + 14, rounded up.
        Assert.Equal(1373, stated[0]);
        Assert.Contains("\"cost\":0.001373", bodies[0], StringComparison.Ordinal); // a plain number, written exactly
        Assert.All(stated, c => Assert.True(c > 0));

        await sluice.DisposeAsync(); // a clean stop settles every lease into the ledger
        await using var db = database.CreateContext();
        var revenue = await db.LedgerAccounts.Where(a => a.Type == AccountTypes.Revenue).SumAsync(a => a.BalanceMicros);
        Assert.Equal(stated.Sum(), revenue);
        Assert.Equal(100_000_000 - stated.Sum(), await db.LedgerAccounts.Where(a => a.OrganizationId == orgId && a.Type == AccountTypes.CustomerWallet).Select(a => a.BalanceMicros).SingleAsync());
    }

    [Fact]
    public async Task A_free_route_answers_cost_zero_and_so_does_the_built_in_echo_model()
    {
        await using var upstream = await FakeUpstream.StartAsync();
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Sqlite);
        await using var sluice = new SluiceFactory(database);
        var (client, owner, _) = await PricedAsync(sluice, upstream, priced: false);
        using var _client = client;
        using var _owner = owner;

        var whole = await (await client.PostAsync("/v1/chat/completions", Chat("m", "hi"))).Content.ReadAsStringAsync();
        var stream = await (await client.PostAsync("/v1/chat/completions", Chat("m", "hi", stream: true, includeUsage: true))).Content.ReadAsStringAsync();
        var echo = await (await client.PostAsync("/v1/chat/completions", Chat("echo", "hi"))).Content.ReadAsStringAsync();

        Assert.Equal(0m, Usage(whole).GetProperty("cost").GetDecimal());
        Assert.Equal(0m, StreamUsage(stream).GetProperty("cost").GetDecimal());
        Assert.Equal(0m, Usage(echo).GetProperty("cost").GetDecimal());
        Assert.Contains("\"cost\":0}", whole, StringComparison.Ordinal);
        Assert.All(await UsageAsync(database, 3), e => Assert.Equal(0, e.CostMicros));
    }

    [Fact]
    public async Task A_batch_lines_answer_states_its_discounted_charge()
    {
        await using var upstream = await FakeUpstream.StartAsync();
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Sqlite);
        await using var sluice = new SluiceFactory(database); // Billing:BatchDiscountPercent is 50 by default
        var (client, owner, _) = await PricedAsync(sluice, upstream);
        using var _client = client;
        using var _owner = owner;
        var realTime = CostMicros(Usage(await (await client.PostAsync("/v1/chat/completions", Json("""{"model":"m","messages":[{"role":"user","content":"question 0"}],"max_tokens":50}"""))).Content.ReadAsStringAsync()));

        var batch = await BatchKit.CreateAsync(client, await BatchKit.UploadIdAsync(client, BatchKit.ChatLines(2, model: "m")));
        var done = await BatchKit.WaitAsync(client, batch.GetProperty("id").GetString()!);

        Assert.Equal("completed", done.GetProperty("status").GetString());
        var lines = await BatchKit.LinesAsync(client, done.GetProperty("output_file_id").GetString()!);
        var stated = lines.Select(l => CostMicros(l.GetProperty("response").GetProperty("body").GetProperty("usage"))).ToList();
        var events = (await UsageAsync(database, 3)).Where(e => e.BatchId is not null).ToList();
        Assert.Equal(events.Select(e => e.CostMicros).Order(), stated.Order());
        Assert.All(stated, c => Assert.True(c < realTime, $"{c} is not discounted from {realTime}"));
        Assert.All(stated, c => Assert.True(c > 0));
    }

    [Fact]
    public async Task An_organization_that_turns_it_off_gets_no_cost_not_even_the_providers_and_the_change_is_audited()
    {
        await using var upstream = await FakeUpstream.StartAsync();
        // A provider that states its own cost (in its own currency, at its own prices): never what the caller pays.
        upstream.RawAnswer = """{"id":"up-1","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":11,"cost":9.5,"completion_tokens":7,"total_tokens":18}}""";
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Sqlite);
        await using var sluice = new SluiceFactory(database);
        var (client, owner, orgId) = await PricedAsync(sluice, upstream);
        using var _client = client;
        using var _owner = owner;
        var before = Usage(await (await client.PostAsync("/v1/chat/completions", Chat("m", "hi"))).Content.ReadAsStringAsync());

        var off = await owner.PatchAsJsonAsync($"/api/v1/orgs/{orgId}", new { usageCostInResponses = false });
        Assert.True(off.IsSuccessStatusCode, await off.Content.ReadAsStringAsync());
        Assert.False((await off.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("usageCostInResponses").GetBoolean());
        var whole = Usage(await (await client.PostAsync("/v1/chat/completions", Chat("m", "hi"))).Content.ReadAsStringAsync());
        upstream.RawAnswer = null;
        var stream = StreamUsage(await (await client.PostAsync("/v1/chat/completions", Chat("m", "hi", stream: true, includeUsage: true))).Content.ReadAsStringAsync());

        var events = await UsageAsync(database, 3);
        Assert.Equal(events[0].CostMicros, CostMicros(before)); // on: Sluice's charge replaced the provider's figure
        Assert.Equal(1373, CostMicros(before));
        Assert.False(whole.TryGetProperty("cost", out _));
        Assert.Equal(18, whole.GetProperty("total_tokens").GetInt32()); // the rest of the usage is untouched
        Assert.False(stream.TryGetProperty("cost", out _));
        Assert.All(events, e => Assert.True(e.CostMicros > 0)); // still charged, of course
        await using var db = database.CreateContext();
        var audited = await db.AuditEntries.Where(a => a.OrganizationId == orgId && a.Action.StartsWith("org.usage_cost")).ToListAsync();
        Assert.Equal("org.usage_cost.disable", Assert.Single(audited).Action);
    }

    [Fact]
    public async Task The_official_SDK_parses_answers_and_streams_that_carry_usage_cost()
    {
        await using var upstream = await FakeUpstream.StartAsync();
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Sqlite);
        await using var sluice = new SluiceFactory(database);
        var (client, owner, _) = await PricedAsync(sluice, upstream);
        using var _client = client;
        using var _owner = owner;
        var key = client.DefaultRequestHeaders.Authorization!.Parameter!;
        var sdk = new OpenAIClient(new ApiKeyCredential(key), new OpenAIClientOptions
        {
            Endpoint = new Uri(sluice.Server.BaseAddress, "/v1"),
            Transport = new HttpClientPipelineTransport(sluice.CreateClient()),
        }).GetChatClient("m");

        ChatCompletion completion = await sdk.CompleteChatAsync([new UserChatMessage("hi")]);
        ChatTokenUsage? streamed = null;
        await foreach (var update in sdk.CompleteChatStreamingAsync([new UserChatMessage("hi")]))
        {
            streamed ??= update.Usage;
        }

        Assert.Equal("m", completion.Model);
        Assert.Equal(7, completion.Usage.OutputTokenCount);
        Assert.Equal(5, streamed?.OutputTokenCount);
    }

    [Fact]
    public async Task A_provider_that_names_another_model_is_answered_with_the_public_id_in_whole_answers_and_every_chunk()
    {
        await using var upstream = await FakeUpstream.StartAsync();
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Sqlite);
        await using var sluice = new SluiceFactory(database);
        var (client, owner, _) = await PricedAsync(sluice, upstream, upstreamModel: "vendor/m-2024-08-06"); // the fake answers with the name it was sent
        using var _client = client;
        using var _owner = owner;

        var whole = await (await client.PostAsync("/v1/chat/completions", Chat("m", "hi"))).Content.ReadAsStringAsync();
        var stream = await (await client.PostAsync("/v1/chat/completions", Chat("m", "hi", stream: true, includeUsage: true))).Content.ReadAsStringAsync();
        var completion = await (await client.PostAsync("/v1/completions", Json("""{"model":"m","prompt":"hi","max_tokens":20}"""))).Content.ReadAsStringAsync();
        var embedding = await (await client.PostAsync("/v1/embeddings", Json("""{"model":"m","input":"hi"}"""))).Content.ReadAsStringAsync();

        Assert.All(upstream.Requests, r => Assert.Equal("vendor/m-2024-08-06", JsonDocument.Parse(r.Body).RootElement.GetProperty("model").GetString()));
        foreach (var body in new[] { whole, completion, embedding })
        {
            Assert.Equal("m", JsonDocument.Parse(body).RootElement.GetProperty("model").GetString());
        }

        var chunks = Events(stream)[..^1];
        Assert.Equal(6, chunks.Count); // five content chunks and the usage chunk
        Assert.All(chunks, c => Assert.Equal("m", JsonDocument.Parse(c).RootElement.GetProperty("model").GetString()));
        Assert.DoesNotContain("vendor/", whole + stream + completion + embedding, StringComparison.Ordinal);
        Assert.Equal("Hello from upstream", JsonDocument.Parse(whole).RootElement.GetProperty("choices")[0].GetProperty("message").GetProperty("content").GetString());
        Assert.Equal("w0 w1 w2 w3 w4 ", string.Concat(chunks.SkipLast(1).Select(c => JsonDocument.Parse(c).RootElement.GetProperty("choices")[0].GetProperty("delta").GetProperty("content").GetString())));
    }

    [Theory]
    [InlineData(0L, "0")]
    [InlineData(1L, "0.000001")]
    [InlineData(123L, "0.000123")]
    [InlineData(1_373L, "0.001373")]
    [InlineData(2_500_000L, "2.5")]
    [InlineData(1_000_000L, "1")]
    [InlineData(12_345_678_901L, "12345.678901")]
    public void Micro_units_are_written_as_the_currencys_units_exactly(long micros, string text)
    {
        Assert.Equal(text, Sluice.Gateway.Pipeline.AnswerStamp.FormatCost(micros));
        Assert.Equal(micros, (long)(decimal.Parse(text, CultureInfo.InvariantCulture) * 1_000_000m));
    }

    [Theory]
    [InlineData("""{"model":"x","usage":{"prompt_tokens":1}}""", 5L, """{"model":"m","usage":{"prompt_tokens":1,"cost":0.000005}}""")]
    [InlineData("""{"usage":{},"model":"m"}""", 5L, """{"usage":{"cost":0.000005},"model":"m"}""")]
    [InlineData("""{"model" : "x" , "usage" : { "cost" : 3.2 , "a" : [1,{"cost":1}] } }""", 5L, """{"model" : "m" , "usage" : { "cost" : 0.000005 , "a" : [1,{"cost":1}] } }""")]
    [InlineData("""{"model":"m","usage":{"prompt_tokens":1}}""", null, null)]
    [InlineData("""{"model":"m","data":[{"model":"x"}]}""", null, null)]
    [InlineData("""{"model":7}""", null, null)]
    [InlineData("""not json""", 5L, null)]
    [InlineData("""{"model":"x","usage":{"prompt_tokens":1""", 5L, null)]
    public void Only_the_model_and_the_cost_change_and_nothing_is_copied_when_they_are_right(string json, long? micros, string? expected)
    {
        var stamp = new Sluice.Gateway.Pipeline.AnswerStamp("m", cost: true);
        var output = new System.Buffers.ArrayBufferWriter<byte>();

        var changed = stamp.Rewrite(System.Text.Encoding.UTF8.GetBytes(json), micros, output);

        Assert.Equal(expected is not null, changed);
        Assert.Equal(expected ?? "", System.Text.Encoding.UTF8.GetString(output.WrittenSpan));
    }

    [Theory]
    [InlineData("""{"usage":{"cost":1.5}}""", """{"usage":{}}""")]
    [InlineData("""{"usage":{"cost":1.5,"prompt_tokens":1}}""", """{"usage":{"prompt_tokens":1}}""")]
    [InlineData("""{"usage":{"prompt_tokens":1,"cost":1.5}}""", """{"usage":{"prompt_tokens":1}}""")]
    [InlineData("""{"usage":{"a":1,"cost":{"x":1},"b":2}}""", """{"usage":{"a":1,"b":2}}""")]
    public void Turned_off_a_providers_own_cost_is_removed(string json, string expected)
    {
        var stamp = new Sluice.Gateway.Pipeline.AnswerStamp("m", cost: false);
        var output = new System.Buffers.ArrayBufferWriter<byte>();

        Assert.True(stamp.Rewrite(System.Text.Encoding.UTF8.GetBytes(json), 5, output));
        Assert.Equal(expected, System.Text.Encoding.UTF8.GetString(output.WrittenSpan));
        Assert.False(stamp.Rewrite("""{"usage":{"prompt_tokens":1}}"""u8, 5, output)); // nothing to remove: not copied
    }
}
