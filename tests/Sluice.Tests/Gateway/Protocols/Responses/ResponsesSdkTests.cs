using System.ClientModel;
using System.ClientModel.Primitives;
using OpenAI;
using OpenAI.Responses;
using Sluice.Storage;
using Sluice.Tests.TestSupport;

namespace Sluice.Tests.Gateway.Protocols.Responses;

#pragma warning disable OPENAI001 // the SDK's Responses client is marked experimental

/// <summary>The official OpenAI .NET SDK's Responses client, unmodified, against Sluice's echo model.</summary>
public sealed class ResponsesSdkTests
{
    [Fact]
    public async Task The_official_SDK_creates_responses_plain_and_streamed()
    {
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Sqlite);
        await using var sluice = new SluiceFactory(database);
        var (_, _, key) = await GatewayKit.TenantAsync(sluice);
        var options = new OpenAIClientOptions
        {
            Endpoint = new Uri(sluice.Server.BaseAddress, "/v1"),
            Transport = new HttpClientPipelineTransport(sluice.CreateClient()),
        };
        var client = new OpenAIClient(new ApiKeyCredential(key), options).GetResponsesClient();

        ResponseResult result = await client.CreateResponseAsync("echo", [ResponseItem.CreateUserMessageItem("Hello SDK")]);
        var streamed = new System.Text.StringBuilder();
        ResponseResult? completed = null;
        var sequence = new List<int>();
        await foreach (var update in client.CreateResponseStreamingAsync("echo", [ResponseItem.CreateUserMessageItem("stream me")]))
        {
            sequence.Add(update.SequenceNumber);
            if (update is StreamingResponseOutputTextDeltaUpdate delta)
            {
                streamed.Append(delta.Delta);
            }
            else if (update is StreamingResponseCompletedUpdate done)
            {
                completed = done.Response;
            }
        }

        var refused = await Assert.ThrowsAsync<ClientResultException>(() => client.CreateResponseAsync("echo", [ResponseItem.CreateUserMessageItem("x")], previousResponseId: "resp_1"));

        Assert.Equal("Echo: Hello SDK", result.GetOutputText());
        Assert.Equal(ResponseStatus.Completed, result.Status);
        Assert.Equal(4, result.Usage.OutputTokenCount);
        Assert.Equal("Echo: stream me", streamed.ToString());
        Assert.NotNull(completed);
        Assert.Equal("Echo: stream me", completed.GetOutputText());
        Assert.Equal(4, completed.Usage.OutputTokenCount);
        Assert.Equal(Enumerable.Range(0, sequence.Count), sequence);
        Assert.Equal(400, refused.Status);
    }
}
