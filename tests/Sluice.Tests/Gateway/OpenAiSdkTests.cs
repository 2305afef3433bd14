using System.ClientModel;
using System.ClientModel.Primitives;
using OpenAI;
using OpenAI.Chat;
using OpenAI.Embeddings;
using Sluice.Storage;
using Sluice.Tests.TestSupport;

namespace Sluice.Tests.Gateway;

/// <summary>The official OpenAI .NET SDK, unmodified, against Sluice.</summary>
public sealed class OpenAiSdkTests
{
    [Fact]
    public async Task The_official_SDK_lists_models_chats_streams_embeds_and_sees_errors_as_its_exceptions()
    {
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Sqlite);
        await using var sluice = new SluiceFactory(database);
        var (_, _, key) = await GatewayKit.TenantAsync(sluice);
        var options = new OpenAIClientOptions
        {
            Endpoint = new Uri(sluice.Server.BaseAddress, "/v1"),
            Transport = new HttpClientPipelineTransport(sluice.CreateClient()),
        };
        var client = new OpenAIClient(new ApiKeyCredential(key), options);

        var models = (await client.GetOpenAIModelClient().GetModelsAsync()).Value;
        ChatCompletion completion = await client.GetChatClient("echo").CompleteChatAsync([new UserChatMessage("Hello SDK")]);
        var streamed = new System.Text.StringBuilder();
        ChatTokenUsage? streamedUsage = null;
        await foreach (var update in client.GetChatClient("echo").CompleteChatStreamingAsync([new UserChatMessage("stream me")], new ChatCompletionOptions()))
        {
            foreach (var part in update.ContentUpdate)
            {
                streamed.Append(part.Text);
            }

            streamedUsage ??= update.Usage;
        }

        OpenAIEmbedding embedding = await client.GetEmbeddingClient("echo").GenerateEmbeddingAsync("embed me");
        var missing = await Assert.ThrowsAsync<ClientResultException>(() => client.GetChatClient("no-such-model").CompleteChatAsync([new UserChatMessage("x")]));
        var badKey = new OpenAIClient(new ApiKeyCredential("sk-sluice-" + new string('Q', 38)), options);
        var unauthorized = await Assert.ThrowsAsync<ClientResultException>(() => badKey.GetChatClient("echo").CompleteChatAsync([new UserChatMessage("x")]));

        Assert.Contains(models, m => m.Id == "echo");
        Assert.Equal("Echo: Hello SDK", completion.Content[0].Text);
        Assert.Equal(ChatFinishReason.Stop, completion.FinishReason);
        Assert.Equal(4, completion.Usage.OutputTokenCount); // "Echo", ":", " Hello", " SDK"
        Assert.Equal("Echo: stream me", streamed.ToString());
        Assert.Equal(4, streamedUsage?.OutputTokenCount); // the SDK asks for usage on streams: "Echo", ":", " stream", " me"
        Assert.Equal(16, embedding.ToFloats().Length);
        Assert.Equal(404, missing.Status);
        Assert.Equal(401, unauthorized.Status);
    }
}
