using System.Text.Json;
using Sluice.Storage;
using Sluice.Tests.TestSupport;
using static Sluice.Tests.TestSupport.BatchKit;
using static Sluice.Tests.TestSupport.GatewayKit;

namespace Sluice.Tests.Batches;

/// <summary>The Batch API end to end on a real database: lifecycle, results, validation, metering.</summary>
public abstract class BatchTests(DatabaseProvider provider)
{
    [Fact]
    public async Task A_chat_batch_against_echo_completes_with_OpenAIs_output_format_and_usage()
    {
        await using var database = await TestDatabase.CreateAsync(provider);
        await using var sluice = new SluiceFactory(database);
        var (_, orgId, key) = await TenantAsync(sluice);
        using var client = sluice.WithKey(key);

        var fileId = await UploadIdAsync(client, ChatLines(5));
        var created = await CreateAsync(client, fileId);
        Assert.Equal("validating", created.GetProperty("status").GetString());
        Assert.Equal("batch", created.GetProperty("object").GetString());
        Assert.Equal(fileId, created.GetProperty("input_file_id").GetString());
        Assert.Equal("test", created.GetProperty("metadata").GetProperty("purpose").GetString());
        Assert.Equal(created.GetProperty("created_at").GetInt64() + 86_400, created.GetProperty("expires_at").GetInt64());

        var batch = await WaitAsync(client, created.GetProperty("id").GetString()!);

        Assert.Equal("completed", batch.GetProperty("status").GetString());
        Assert.Equal((5, 5, 0), (batch.GetProperty("request_counts").GetProperty("total").GetInt32(), batch.GetProperty("request_counts").GetProperty("completed").GetInt32(), batch.GetProperty("request_counts").GetProperty("failed").GetInt32()));
        Assert.Equal("echo", batch.GetProperty("model").GetString());
        Assert.Equal(JsonValueKind.Null, batch.GetProperty("error_file_id").ValueKind);
        foreach (var stamp in new[] { "in_progress_at", "finalizing_at", "completed_at" })
        {
            Assert.Equal(JsonValueKind.Number, batch.GetProperty(stamp).ValueKind);
        }

        var lines = await LinesAsync(client, batch.GetProperty("output_file_id").GetString()!);
        Assert.Equal(Enumerable.Range(0, 5).Select(i => $"line-{i}").Order(), lines.Select(l => l.GetProperty("custom_id").GetString()).Order());
        foreach (var line in lines)
        {
            Assert.StartsWith("batch_req_", line.GetProperty("id").GetString(), StringComparison.Ordinal);
            var response = line.GetProperty("response");
            Assert.Equal(200, response.GetProperty("status_code").GetInt32());
            Assert.StartsWith("req_", response.GetProperty("request_id").GetString(), StringComparison.Ordinal);
            var n = line.GetProperty("custom_id").GetString()!["line-".Length..];
            Assert.Equal($"Echo: question {n}", response.GetProperty("body").GetProperty("choices")[0].GetProperty("message").GetProperty("content").GetString());
            Assert.Equal(JsonValueKind.Null, line.GetProperty("error").ValueKind);
        }

        var usage = batch.GetProperty("usage");
        var events = await UsageAsync(database, 5);
        Assert.Equal(5, events.Count);
        Assert.All(events, e => Assert.Equal(Guid.ParseExact(batch.GetProperty("id").GetString()!["batch_".Length..], "N"), e.BatchId));
        Assert.Equal(events.Sum(e => e.PromptTokens), usage.GetProperty("input_tokens").GetInt64());
        Assert.Equal(events.Sum(e => e.CompletionTokens), usage.GetProperty("output_tokens").GetInt64());
        Assert.Equal(usage.GetProperty("input_tokens").GetInt64() + usage.GetProperty("output_tokens").GetInt64(), usage.GetProperty("total_tokens").GetInt64());

        var output = JsonDocument.Parse(await client.GetStringAsync($"/v1/files/{batch.GetProperty("output_file_id").GetString()}")).RootElement;
        Assert.Equal("batch_output", output.GetProperty("purpose").GetString());
        Assert.True(output.GetProperty("expires_at").GetInt64() - output.GetProperty("created_at").GetInt64() <= 30 * 86_400);
        Assert.Empty(Directory.EnumerateFiles(Path.Combine(database.Directory, "files", "journals")));
        _ = orgId;
    }
}

public sealed class SqliteBatchTests() : BatchTests(DatabaseProvider.Sqlite);

public sealed class PostgresBatchTests() : BatchTests(DatabaseProvider.Postgres);
