#pragma warning disable OPENAI001 // the batch client is marked experimental in the SDK
using System.ClientModel;
using System.ClientModel.Primitives;
using System.Net.Http.Json;
using System.Text.Json;
using System.Text.Json.Nodes;
using OpenAI;
using OpenAI.Chat;
using OpenAI.Embeddings;
using OpenAI.Files;
using Sluice.Tests.TestSupport;

namespace Sluice.Tests.Acceptance;

/// <summary>
/// The official .NET SDK (NuGet <c>OpenAI</c> 2.10.0), unmodified, over real loopback HTTP: the same areas as the npm
/// suite (chat, streaming, tools, structured output, embeddings, models, files, batches, error mapping).
/// </summary>
[Collection(RealProcessLoad.Name)]
public sealed class DotNetSdkAcceptanceTests(DotNetSdkFixture server) : IClassFixture<DotNetSdkFixture>
{
    private const string WeatherSchema = """{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}""";

    private OpenAIClient Client(string? key = null) => new(new ApiKeyCredential(key ?? server.Key), new OpenAIClientOptions
    {
        Endpoint = new Uri(server.RootUrl + "/v1"),
        RetryPolicy = new ClientRetryPolicy(maxRetries: 0),
    });

    [Fact]
    public async Task Chat_and_streaming_honour_stop_and_the_output_limit_and_report_usage()
    {
        var chat = Client().GetChatClient("echo");

        ChatCompletion stopped = await chat.CompleteChatAsync([new UserChatMessage("stop me here")], new ChatCompletionOptions { StopSequences = { " me" } });
        ChatCompletion limited = await chat.CompleteChatAsync([new UserChatMessage("a long enough message")], new ChatCompletionOptions { MaxOutputTokenCount = 2 });
        var text = new System.Text.StringBuilder();
        ChatTokenUsage? usage = null;
        ChatFinishReason? finish = null;
        await foreach (var update in chat.CompleteChatStreamingAsync([new UserChatMessage("stream me")]))
        {
            text.Append(string.Concat(update.ContentUpdate.Select(p => p.Text)));
            usage ??= update.Usage;
            finish ??= update.FinishReason;
        }

        Assert.Equal(("Echo: stop", ChatFinishReason.Stop), (stopped.Content[0].Text, stopped.FinishReason));
        Assert.Equal(("Echo:", ChatFinishReason.Length, 2), (limited.Content[0].Text, limited.FinishReason, limited.Usage.OutputTokenCount));
        Assert.Equal(("Echo: stream me", ChatFinishReason.Stop, 4), (text.ToString(), finish, usage?.OutputTokenCount));
    }

    [Fact]
    public async Task A_tool_call_round_trips_and_structured_output_reaches_the_provider()
    {
        var chat = Client().GetChatClient("m");
        var options = new ChatCompletionOptions { Tools = { ChatTool.CreateFunctionTool("get_weather", "Weather in a city", BinaryData.FromString(WeatherSchema)) } };
        List<ChatMessage> messages = [new UserChatMessage("What is the weather in Paris?")];

        ChatCompletion call = await chat.CompleteChatAsync(messages, options);
        messages.Add(new AssistantChatMessage(call));
        messages.Add(new ToolChatMessage(call.ToolCalls[0].Id, "sunny"));
        ChatCompletion answer = await chat.CompleteChatAsync(messages, options);
        ChatCompletion structured = await chat.CompleteChatAsync([new UserChatMessage("The answer?")], new ChatCompletionOptions
        {
            ResponseFormat = ChatResponseFormat.CreateJsonSchemaFormat("answer", BinaryData.FromString("""{"type":"object","properties":{"answer":{"type":"string"}},"required":["answer"],"additionalProperties":false}"""), jsonSchemaIsStrict: true),
        });

        Assert.Equal((ChatFinishReason.ToolCalls, "get_weather", "Paris"), (call.FinishReason, call.ToolCalls[0].FunctionName, JsonDocument.Parse(call.ToolCalls[0].FunctionArguments).RootElement.GetProperty("city").GetString()));
        Assert.Equal("Tool said: sunny", answer.Content[0].Text);
        Assert.Equal("42", JsonDocument.Parse(structured.Content[0].Text).RootElement.GetProperty("answer").GetString());
        var sent = server.Fake.Requests.Select(r => JsonNode.Parse(r.Body)!).ToList();
        Assert.Contains(sent, b => b["messages"]!.AsArray().Any(m => m!["role"]!.GetValue<string>() == "tool" && m["tool_call_id"]!.GetValue<string>() == call.ToolCalls[0].Id));
        Assert.Contains(sent, b => b["response_format"]?["json_schema"]?["strict"]?.GetValue<bool>() == true);
    }

    [Fact]
    public async Task Embeddings_decode_to_the_same_nonzero_vectors_the_float_format_returns()
    {
        OpenAIEmbeddingCollection embeddings = await Client().GetEmbeddingClient("echo").GenerateEmbeddingsAsync(["embed me", "and me"]);
        using var http = new HttpClient { BaseAddress = new Uri(server.RootUrl) };
        http.DefaultRequestHeaders.Authorization = new("Bearer", server.Key);
        var floats = await (await http.PostAsJsonAsync("/v1/embeddings", new { model = "echo", input = new[] { "embed me", "and me" }, encoding_format = "float" })).Content.ReadFromJsonAsync<JsonElement>();

        for (var i = 0; i < 2; i++)
        {
            var expected = floats.GetProperty("data")[i].GetProperty("embedding").EnumerateArray().Select(v => v.GetSingle()).ToArray();
            Assert.Equal(expected, embeddings[i].ToFloats().ToArray());
            Assert.Contains(expected, v => v != 0);
        }
    }

    [Fact]
    public async Task Models_are_listed_and_retrieved()
    {
        var models = Client().GetOpenAIModelClient();

        var listed = (await models.GetModelsAsync()).Value;
        var echo = (await models.GetModelAsync("echo")).Value;

        Assert.Contains(listed, m => m.Id == "m");
        Assert.Equal("echo", echo.Id);
    }

    /// <summary>The SDK escapes the id in the path (models/meta-llama%2FLlama-3.1-8B-Instruct): issue 18 item 5.</summary>
    [Fact]
    public async Task A_model_id_with_a_slash_is_retrieved()
    {
        var model = (await Client().GetOpenAIModelClient().GetModelAsync(SdkServerFixture.SlashModel)).Value;

        Assert.Equal(SdkServerFixture.SlashModel, model.Id);
    }

    [Fact]
    public async Task Files_upload_list_retrieve_download_and_delete_and_a_batch_completes()
    {
        var client = Client();
        var files = client.GetOpenAIFileClient();
        var lines = string.Concat(new[] { "one", "two" }.Select(w =>
            JsonSerializer.Serialize(new { custom_id = w, method = "POST", url = "/v1/chat/completions", body = new { model = "echo", messages = new[] { new { role = "user", content = w } } } }) + "\n"));

        OpenAIFile uploaded = await files.UploadFileAsync(BinaryData.FromString(lines), "batch.jsonl", FileUploadPurpose.Batch);
        var listed = (await files.GetFilesAsync()).Value;
        OpenAIFile retrieved = await files.GetFileAsync(uploaded.Id);
        BinaryData content = await files.DownloadFileAsync(uploaded.Id);
        var operation = await client.GetBatchClient().CreateBatchAsync(BinaryContent.Create(BinaryData.FromObjectAsJson(new { input_file_id = uploaded.Id, endpoint = "/v1/chat/completions", completion_window = "24h" })), waitUntilCompleted: false);
        await Eventually.TrueAsync(async () =>
        {
            await operation.UpdateStatusAsync();
            return operation.HasCompleted;
        }, "the batch completes", TimeSpan.FromSeconds(30));
        var batch = JsonDocument.Parse((await operation.GetBatchAsync(null)).GetRawResponse().Content).RootElement;
        var output = (await files.DownloadFileAsync(batch.GetProperty("output_file_id").GetString()!)).Value.ToString();
        FileDeletionResult deleted = await files.DeleteFileAsync(uploaded.Id);
        var gone = await Assert.ThrowsAsync<ClientResultException>(() => files.GetFileAsync(uploaded.Id));

        Assert.Equal(("batch.jsonl", lines.Length), (retrieved.Filename, retrieved.SizeInBytes));
        Assert.Contains(listed, f => f.Id == uploaded.Id);
        Assert.Equal(lines, content.ToString());
        Assert.Equal(("completed", 2), (batch.GetProperty("status").GetString(), batch.GetProperty("request_counts").GetProperty("completed").GetInt32()));
        var answers = output.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => JsonDocument.Parse(l).RootElement)
            .ToDictionary(l => l.GetProperty("custom_id").GetString()!, l => l.GetProperty("response").GetProperty("body").GetProperty("choices")[0].GetProperty("message").GetProperty("content").GetString());
        Assert.Equal(new Dictionary<string, string?> { ["one"] = "Echo: one", ["two"] = "Echo: two" }, answers);
        Assert.True(deleted.Deleted);
        Assert.Equal(404, gone.Status);
    }

    [Fact]
    public async Task Errors_are_the_SDKs_exceptions_with_the_status()
    {
        var unauthorized = await Assert.ThrowsAsync<ClientResultException>(() => Client("sk-sluice-" + new string('Q', 38)).GetChatClient("echo").CompleteChatAsync([new UserChatMessage("x")]));
        var missing = await Assert.ThrowsAsync<ClientResultException>(() => Client().GetChatClient("no-such-model").CompleteChatAsync([new UserChatMessage("x")]));
        var bad = await Assert.ThrowsAsync<ClientResultException>(() => Client().GetChatClient("echo").CompleteChatAsync([new UserChatMessage("x")], new ChatCompletionOptions { IncludeLogProbabilities = true }));
        var limited = await Assert.ThrowsAsync<ClientResultException>(() => Client().GetChatClient("busy").CompleteChatAsync([new UserChatMessage("x")]));

        Assert.Equal((401, 404, 400, 429), (unauthorized.Status, missing.Status, bad.Status, limited.Status));
        var badError = JsonDocument.Parse(bad.GetRawResponse()!.Content).RootElement.GetProperty("error");
        Assert.Equal("logprobs", badError.GetProperty("param").GetString());
        Assert.Equal("model_not_found", JsonDocument.Parse(missing.GetRawResponse()!.Content).RootElement.GetProperty("error").GetProperty("code").GetString());
    }
}
