using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Sluice.Storage;
using Sluice.Tests.TestSupport;
using static Sluice.Tests.TestSupport.BatchKit;
using static Sluice.Tests.TestSupport.GatewayKit;

namespace Sluice.Tests.Batches;

/// <summary>The runner's validation and its pacing of a provider with limited capacity.</summary>
public sealed class BatchRunnerTests
{
    [Fact]
    public async Task Invalid_lines_fail_validation_with_line_numbers_and_bill_nothing()
    {
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Sqlite);
        await using var sluice = new SluiceFactory(database);
        var (_, _, key) = await TenantAsync(sluice);
        using var client = sluice.WithKey(key);
        string Line(string customId, string url, object body) => JsonSerializer.Serialize(new { custom_id = customId, method = "POST", url, body }) + "\n";
        var content = Line("a", "/v1/chat/completions", new { model = "echo", messages = new[] { new { role = "user", content = "hi" } } })
            + Line("a", "/v1/chat/completions", new { model = "echo", messages = Array.Empty<object>() })
            + Line("b", "/v1/embeddings", new { model = "echo", input = "x" })
            + Line("c", "/v1/chat/completions", new { model = "no-such-model", messages = Array.Empty<object>() })
            + Line("d", "/v1/chat/completions", new { model = "echo", stream = true, messages = Array.Empty<object>() })
            + "{\"custom_id\":\"e\",\"method\":\"GET\",\"url\":\"/v1/chat/completions\",\"body\":{\"model\":\"echo\"}}\n";

        var batch = await WaitAsync(client, (await CreateAsync(client, await UploadIdAsync(client, content))).GetProperty("id").GetString()!);

        Assert.Equal("failed", batch.GetProperty("status").GetString());
        Assert.Equal(JsonValueKind.Number, batch.GetProperty("failed_at").ValueKind);
        var errors = batch.GetProperty("errors").GetProperty("data").EnumerateArray().Select(e => (e.GetProperty("code").GetString(), e.GetProperty("line").GetInt32())).ToList();
        Assert.Equal([("duplicate_custom_id", 2), ("invalid_url", 3), ("model_not_found", 4), ("streaming_not_supported", 5), ("invalid_method", 6)], errors);
        await sluice.DisposeAsync(); // a clean stop drains the usage writer: whatever was metered is stored now
        Assert.Empty(await UsageAsync(database, 0));
    }

    [Fact]
    public async Task The_runner_keeps_a_limited_upstream_exactly_full()
    {
        await using var upstream = await FakeUpstream.StartAsync();
        upstream.DelayBeforeHeaders = TimeSpan.FromMilliseconds(50);
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Sqlite);
        await using var sluice = new SluiceFactory(database, new Dictionary<string, string?> { ["Batches:MaxConcurrency"] = "64" });
        using var op = await OperatorAsync(sluice);
        var created = await op.PostAsJsonAsync("/api/v1/providers", new { name = "small", kind = "openai-compatible", baseUrl = upstream.BaseUrl.ToString(), maxConcurrentRequests = 3 });
        Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        Assert.Equal(3, (await created.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("maxConcurrentRequests").GetInt32());
        await ModelAsync(op, "m");
        await RouteAsync(op, "m", "small", "m");
        var (_, _, key) = await TenantAsync(sluice);
        using var client = sluice.WithKey(key);

        var batch = await WaitAsync(client, (await CreateAsync(client, await UploadIdAsync(client, ChatLines(40, model: "m")))).GetProperty("id").GetString()!);

        Assert.Equal(40, batch.GetProperty("request_counts").GetProperty("completed").GetInt32());
        Assert.Equal(3, upstream.PeakInFlight); // saturated, never exceeded
    }
}
