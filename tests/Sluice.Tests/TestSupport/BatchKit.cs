using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;

namespace Sluice.Tests.TestSupport;

/// <summary>Intent methods for file and batch tests: upload JSONL, create a batch, wait for it to end, read a file.</summary>
public static class BatchKit
{
    public static string ChatLines(int count, Func<int, string>? content = null, string model = "echo") =>
        string.Concat(Enumerable.Range(0, count).Select(i => JsonSerializer.Serialize(new
        {
            custom_id = $"line-{i}",
            method = "POST",
            url = "/v1/chat/completions",
            body = new { model, messages = new[] { new { role = "user", content = content?.Invoke(i) ?? $"question {i}" } }, max_tokens = 50 },
        }) + "\n"));

    public static async Task<HttpResponseMessage> UploadAsync(HttpClient client, string content, string purpose = "batch", string filename = "input.jsonl")
    {
        using var form = new MultipartFormDataContent();
        form.Add(new StringContent(purpose), "purpose");
        var file = new ByteArrayContent(Encoding.UTF8.GetBytes(content));
        file.Headers.ContentType = new MediaTypeHeaderValue("application/jsonl");
        form.Add(file, "file", filename);
        return await client.PostAsync("/v1/files", form);
    }

    public static async Task<string> UploadIdAsync(HttpClient client, string content)
    {
        var response = await UploadAsync(client, content);
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.OK, body);
        return JsonDocument.Parse(body).RootElement.GetProperty("id").GetString()!;
    }

    public static async Task<JsonElement> CreateAsync(HttpClient client, string fileId, string endpoint = "/v1/chat/completions")
    {
        var response = await client.PostAsync("/v1/batches", GatewayKit.Json(JsonSerializer.Serialize(new { input_file_id = fileId, endpoint, completion_window = "24h", metadata = new { purpose = "test" } })));
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.OK, body);
        return JsonDocument.Parse(body).RootElement.Clone();
    }

    public static async Task<JsonElement> GetAsync(HttpClient client, string batchId) =>
        JsonDocument.Parse(await client.GetStringAsync($"/v1/batches/{batchId}")).RootElement.Clone();

    /// <summary>Polls until the batch reaches one of <paramref name="statuses"/> (default: any final status).</summary>
    public static async Task<JsonElement> WaitAsync(HttpClient client, string batchId, TimeSpan? timeout = null, params string[] statuses)
    {
        statuses = statuses.Length > 0 ? statuses : ["completed", "failed", "expired", "cancelled"];
        var deadline = DateTime.UtcNow + (timeout ?? TimeSpan.FromSeconds(60));
        while (true)
        {
            var batch = await GetAsync(client, batchId);
            if (statuses.Contains(batch.GetProperty("status").GetString()))
            {
                return batch;
            }

            Assert.True(DateTime.UtcNow < deadline, $"batch still '{batch.GetProperty("status").GetString()}' ({batch.GetProperty("request_counts")})");
            await Task.Delay(50);
        }
    }

    public static async Task<List<JsonElement>> LinesAsync(HttpClient client, string fileId)
    {
        var response = await client.GetAsync($"/v1/files/{fileId}/content");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var text = await response.Content.ReadAsStringAsync();
        return text.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => JsonDocument.Parse(l).RootElement.Clone()).ToList();
    }

    /// <summary>Polls until at least <paramref name="completed"/> lines of the batch have completed.</summary>
    public static async Task WaitUntilCompletedAsync(HttpClient client, string batchId, int completed)
    {
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while ((await GetAsync(client, batchId)).GetProperty("request_counts").GetProperty("completed").GetInt32() < completed)
        {
            Assert.True(DateTime.UtcNow < deadline, "the batch made no progress");
            await Task.Delay(20);
        }
    }
}
