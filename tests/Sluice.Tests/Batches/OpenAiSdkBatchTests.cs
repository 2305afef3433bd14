#pragma warning disable OPENAI001 // the SDK marks its Batch API experimental
using System.ClientModel;
using System.ClientModel.Primitives;
using System.Text.Json;
using OpenAI;
using OpenAI.Files;
using Sluice.Storage;
using Sluice.Tests.TestSupport;

namespace Sluice.Tests.Batches;

/// <summary>The official OpenAI .NET SDK, unmodified, runs a batch against Sluice.</summary>
public sealed class OpenAiSdkBatchTests
{
    [Fact]
    public async Task The_official_SDK_uploads_creates_polls_and_downloads_output_and_error_files()
    {
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Sqlite);
        await using var sluice = new SluiceFactory(database);
        var (_, _, key) = await GatewayKit.TenantAsync(sluice);
        var client = new OpenAIClient(new ApiKeyCredential(key), new OpenAIClientOptions
        {
            Endpoint = new Uri(sluice.Server.BaseAddress, "/v1"),
            Transport = new HttpClientPipelineTransport(sluice.CreateClient()),
        });
        var files = client.GetOpenAIFileClient();
        var lines = BatchKit.ChatLines(3) + JsonSerializer.Serialize(new { custom_id = "broken", method = "POST", url = "/v1/chat/completions", body = new { model = "echo" } }) + "\n";

        OpenAIFile input = await files.UploadFileAsync(BinaryData.FromString(lines), "requests.jsonl", FileUploadPurpose.Batch);
        Assert.Equal(FilePurpose.Batch, input.Purpose);
        Assert.Equal(System.Text.Encoding.UTF8.GetByteCount(lines), input.SizeInBytes);

        var operation = await client.GetBatchClient().CreateBatchAsync(
            BinaryContent.Create(BinaryData.FromObjectAsJson(new { input_file_id = input.Id, endpoint = "/v1/chat/completions", completion_window = "24h" })),
            waitUntilCompleted: true);
        using var batch = JsonDocument.Parse((await operation.GetBatchAsync(null)).GetRawResponse().Content);
        var root = batch.RootElement;

        Assert.Equal("completed", root.GetProperty("status").GetString());
        Assert.Equal(3, root.GetProperty("request_counts").GetProperty("completed").GetInt32());
        Assert.Equal(1, root.GetProperty("request_counts").GetProperty("failed").GetInt32());
        OpenAIFile outputFile = await files.GetFileAsync(root.GetProperty("output_file_id").GetString()!);
        Assert.Equal(FilePurpose.BatchOutput, outputFile.Purpose);
        var output = (await files.DownloadFileAsync(outputFile.Id)).Value.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(3, output.Length);
        Assert.All(output, line => Assert.Equal(200, JsonDocument.Parse(line).RootElement.GetProperty("response").GetProperty("status_code").GetInt32()));
        var error = JsonDocument.Parse((await files.DownloadFileAsync(root.GetProperty("error_file_id").GetString()!)).Value.ToString().Trim()).RootElement;
        Assert.Equal("broken", error.GetProperty("custom_id").GetString());
        Assert.Equal(400, error.GetProperty("response").GetProperty("status_code").GetInt32());
        Assert.Equal("invalid_request_error", error.GetProperty("response").GetProperty("body").GetProperty("error").GetProperty("type").GetString());

        var listed = (await files.GetFilesAsync(FilePurpose.BatchOutput)).Value;
        Assert.Equal(2, listed.Count);
        Assert.True((await files.DeleteFileAsync(input.Id)).Value.Deleted);
    }
}
