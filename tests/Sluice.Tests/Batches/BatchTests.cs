using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.EntityFrameworkCore;
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
        // The journal is shredded right after the batch's final state commits (so it can be replayed until then).
        await Eventually.TrueAsync(() => !Directory.EnumerateFiles(Path.Combine(database.Directory, "files", "journals")).Any(), "the batch's journal is shredded");
        _ = orgId;
    }

    [Fact]
    public async Task A_restarted_server_resumes_a_batch_without_running_or_charging_a_finished_line_again()
    {
        await using var upstream = await FakeUpstream.StartAsync();
        upstream.DelayBeforeHeaders = TimeSpan.FromMilliseconds(150);
        upstream.Usage = (10, 50); // within each line's worst case (body / 4 prompt tokens, max_tokens 50), so charged in full
        await using var database = await TestDatabase.CreateAsync(provider);
        var settings = new Dictionary<string, string?> { ["Batches:MaxConcurrency"] = "2", ["Batches:PollInterval"] = "00:00:00.050", ["Gateway:CatalogRefreshInterval"] = "00:00:00.100" };
        var first = new SluiceFactory(database, settings);
        using var op = await OperatorAsync(first);
        var route = await ModelOnAsync(op, upstream.BaseUrl);
        await op.PostAsJsonAsync($"/api/v1/catalog/routes/{route}/prices", new { inputPerMillionMicros = 10_000_000, outputPerMillionMicros = 20_000_000 });
        var (_, orgId, key) = await TenantAsync(first);
        await op.PostAsJsonAsync($"/api/v1/admin/orgs/{orgId}/wallet/credits", new { amountMicros = 100_000_000, reason = "batch" });
        await CatalogSeesAsync("m", priced: true, first);
        string batchId;
        using (var client = first.WithKey(key))
        {
            var fileId = await UploadIdAsync(client, ChatLines(30, model: "m"));
            batchId = (await CreateAsync(client, fileId)).GetProperty("id").GetString()!;
            await WaitUntilCompletedAsync(client, batchId, 4);
        }

        await first.DisposeAsync(); // a clean stop: lines in flight finish and are recorded; the rest wait
        var seenBeforeRestart = upstream.Hits;
        Assert.InRange(seenBeforeRestart, 4, 29);

        await using var second = new SluiceFactory(database, settings);
        using var resumed = second.WithKey(key);
        var batch = await WaitAsync(resumed, batchId);
        Assert.DoesNotContain("Warning Sluice.Batches.BatchRunner", first.Logs.All + second.Logs.All, StringComparison.Ordinal); // no line or batch failed

        Assert.Equal("completed", batch.GetProperty("status").GetString());
        Assert.Equal(30, batch.GetProperty("request_counts").GetProperty("completed").GetInt32());
        var asked = upstream.Requests.Select(r => JsonDocument.Parse(r.Body).RootElement.GetProperty("messages")[0].GetProperty("content").GetString()).ToList();
        Assert.Equal(30, asked.Count);
        Assert.Equal(30, asked.Distinct().Count()); // every line ran exactly once across the restart
        Assert.Equal(30, (await LinesAsync(resumed, batch.GetProperty("output_file_id").GetString()!)).Count);

        await second.DisposeAsync();
        await using var db = database.CreateContext();
        const long lineCost = ((10 * 10) + (50 * 20)) / 2; // micro-units per line at the 50% batch discount
        Assert.Equal(Enumerable.Repeat(lineCost, 30), (await db.UsageEvents.Where(e => e.Status == 200).ToListAsync()).OrderBy(e => e.StartedAt).Select(e => e.CostMicros));
        var revenue = await db.LedgerAccounts.Where(a => a.Type == Sluice.Billing.AccountTypes.Revenue).SumAsync(a => a.BalanceMicros);

        Assert.Equal(30 * lineCost, revenue);
        Assert.Equal(100_000_000 - (30 * lineCost), await db.LedgerAccounts.Where(a => a.OrganizationId == orgId && a.Type == Sluice.Billing.AccountTypes.CustomerWallet).Select(a => a.BalanceMicros).SingleAsync());
    }

    [Fact]
    public async Task Two_replicas_share_batches_and_run_every_line_exactly_once()
    {
        await using var upstream = await FakeUpstream.StartAsync();
        upstream.DelayBeforeHeaders = TimeSpan.FromMilliseconds(20);
        await using var database = await TestDatabase.CreateAsync(provider);
        var settings = new Dictionary<string, string?> { ["Batches:PollInterval"] = "00:00:00.050", ["Batches:MaxConcurrency"] = "4" };
        await using var replicaA = new SluiceFactory(database, settings);
        await using var replicaB = new SluiceFactory(database, settings);
        using var op = await OperatorAsync(replicaA);
        await ModelOnAsync(op, upstream.BaseUrl);
        var (_, _, key) = await TenantAsync(replicaA);
        using var onA = replicaA.WithKey(key);
        using var onB = replicaB.WithKey(key);
        await CatalogSeesAsync("m", priced: false, replicaB);

        var batches = new List<string>();
        for (var i = 0; i < 4; i++)
        {
            var client = i % 2 == 0 ? onA : onB;
            var lines = ChatLines(15, n => $"batch {i} line {n}", model: "m");
            batches.Add((await CreateAsync(client, await UploadIdAsync(client, lines))).GetProperty("id").GetString()!);
        }

        foreach (var id in batches)
        {
            var batch = await WaitAsync(onA, id);
            Assert.Equal("completed", batch.GetProperty("status").GetString());
            Assert.Equal(15, (await LinesAsync(onB, batch.GetProperty("output_file_id").GetString()!)).Count);
        }

        var asked = upstream.Requests.Select(r => JsonDocument.Parse(r.Body).RootElement.GetProperty("messages")[0].GetProperty("content").GetString()).ToList();
        Assert.Equal(60, asked.Count);
        Assert.Equal(60, asked.Distinct().Count());
    }

    [Fact]
    public async Task A_cancelled_batch_stops_dispatching_and_keeps_what_finished()
    {
        await using var upstream = await FakeUpstream.StartAsync();
        upstream.DelayBeforeHeaders = TimeSpan.FromMilliseconds(100);
        await using var database = await TestDatabase.CreateAsync(provider);
        await using var sluice = new SluiceFactory(database, new Dictionary<string, string?> { ["Batches:MaxConcurrency"] = "1", ["Batches:PollInterval"] = "00:00:00.100" });
        using var op = await OperatorAsync(sluice);
        await ModelOnAsync(op, upstream.BaseUrl);
        var (_, _, key) = await TenantAsync(sluice);
        using var client = sluice.WithKey(key);
        var batchId = (await CreateAsync(client, await UploadIdAsync(client, ChatLines(40, model: "m")))).GetProperty("id").GetString()!;
        await WaitUntilCompletedAsync(client, batchId, 2);

        var cancel = await client.PostAsync($"/v1/batches/{batchId}/cancel", null);
        Assert.Equal(HttpStatusCode.OK, cancel.StatusCode);
        Assert.Contains(JsonDocument.Parse(await cancel.Content.ReadAsStringAsync()).RootElement.GetProperty("status").GetString(), new[] { "cancelling", "cancelled" });
        var batch = await WaitAsync(client, batchId);

        Assert.Equal("cancelled", batch.GetProperty("status").GetString());
        Assert.Equal(JsonValueKind.Number, batch.GetProperty("cancelling_at").ValueKind);
        Assert.Equal(JsonValueKind.Number, batch.GetProperty("cancelled_at").ValueKind);
        var completed = batch.GetProperty("request_counts").GetProperty("completed").GetInt32();
        Assert.InRange(completed, 2, 39);
        Assert.Equal(completed, (await LinesAsync(client, batch.GetProperty("output_file_id").GetString()!)).Count);
        Assert.Equal(completed, upstream.Hits);

        var finished = await WaitAsync(client, (await CreateAsync(client, await UploadIdAsync(client, ChatLines(1)))).GetProperty("id").GetString()!);
        var late = await client.PostAsync($"/v1/batches/{finished.GetProperty("id").GetString()}/cancel", null);
        Assert.Equal(HttpStatusCode.Conflict, late.StatusCode);
        Assert.Equal("batch_not_cancellable", JsonDocument.Parse(await late.Content.ReadAsStringAsync()).RootElement.GetProperty("error").GetProperty("code").GetString());
    }

    [Fact]
    public async Task A_batch_past_its_completion_window_expires_with_batch_expired_errors_for_unfinished_lines()
    {
        await using var upstream = await FakeUpstream.StartAsync();
        upstream.DelayBeforeHeaders = TimeSpan.FromMilliseconds(100);
        await using var database = await TestDatabase.CreateAsync(provider);
        await using var sluice = new SluiceFactory(database, new Dictionary<string, string?> { ["Batches:MaxConcurrency"] = "1" });
        using var op = await OperatorAsync(sluice);
        await ModelOnAsync(op, upstream.BaseUrl);
        var (_, _, key) = await TenantAsync(sluice);
        using var client = sluice.WithKey(key);
        var batchId = (await CreateAsync(client, await UploadIdAsync(client, ChatLines(40, model: "m")))).GetProperty("id").GetString()!;
        await WaitUntilCompletedAsync(client, batchId, 2);

        // The 24-hour window ends now: the runner rereads the deadline with its lease.
        var id = Guid.ParseExact(batchId["batch_".Length..], "N");
        await using (var db = database.CreateContext())
        {
            await db.Batches.Where(b => b.Id == id).ExecuteUpdateAsync(u => u.SetProperty(b => b.ExpiresAt, DateTimeOffset.UtcNow.AddSeconds(-1)));
        }

        var batch = await WaitAsync(client, batchId);

        Assert.Equal("expired", batch.GetProperty("status").GetString());
        var counts = batch.GetProperty("request_counts");
        Assert.Equal(40, counts.GetProperty("completed").GetInt32() + counts.GetProperty("failed").GetInt32());
        var errors = await LinesAsync(client, batch.GetProperty("error_file_id").GetString()!);
        Assert.Equal(counts.GetProperty("failed").GetInt32(), errors.Count);
        Assert.All(errors, e => Assert.Equal("batch_expired", e.GetProperty("error").GetProperty("code").GetString()));
        Assert.All(errors, e => Assert.Equal(JsonValueKind.Null, e.GetProperty("response").ValueKind));
        Assert.Equal(40, errors.Select(e => e.GetProperty("custom_id").GetString()).Concat((await LinesAsync(client, batch.GetProperty("output_file_id").GetString()!)).Select(l => l.GetProperty("custom_id").GetString())).Distinct().Count());
    }
}

public sealed class SqliteBatchTests() : BatchTests(DatabaseProvider.Sqlite);

public sealed class PostgresBatchTests() : BatchTests(DatabaseProvider.Postgres);
