using System.ClientModel;
using System.Net;
using System.Net.Http.Headers;
using System.Text.Json;
using OpenAI;
using OpenAI.Chat;
using Sluice.Storage;
using Sluice.Tests.TestSupport;

namespace Sluice.Tests.Gateway;

/// <summary>
/// On a real server over loopback. A body over Gateway:MaxRequestBytes is answered 413 in OpenAI's shape that the client actually reads, on a real
/// server over loopback: the official SDK sees a 413 (not a broken connection it retries), and so does a raw client
/// sending a declared length or a chunked body, larger than the socket buffers between them.
/// </summary>
[Collection(RealProcessLoad.Name)]
public sealed class RealServerV1Tests
{
    private const int Limit = 64 * 1024;

    [Fact]
    public async Task An_oversize_body_is_a_413_the_SDK_and_raw_clients_read_with_or_without_a_declared_length()
    {
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Sqlite);
        var kit = new ProcessKit(database);
        await kit.RunAsync("migrate");
        var orgId = Guid.Parse((await kit.RunAsync("orgs", "create", "--name", "Tenant")).Split(' ')[2]);
        var key = (await kit.RunAsync("keys", "create", "--org", orgId.ToString(), "--name", "k")).Trim().Split('\n')[^1].Trim();
        // A model whose id has a '/', looked up on the real server (Kestrel keeps %2F escaped in the path; TestServer may not).
        await kit.RunAsync("providers", "add", "--name", "p", "--kind", "openai-compatible", "--base-url", "http://127.0.0.1:9/v1/");
        await kit.RunAsync("models", "add", "meta-llama/Llama-3.1-8B-Instruct");
        await kit.RunAsync("models", "route", "meta-llama/Llama-3.1-8B-Instruct", "--provider", "p", "--upstream-model", "llama", "--retains-data", "false", "--trains-on-data", "false");
        var port = SluiceProcess.FreePort();
        await using var serve = SluiceProcess.Start(kit.OnDatabase("serve", "--urls", $"http://127.0.0.1:{port}", "--set", $"Gateway:MaxRequestBytes={Limit}"));
        await serve.WaitForOutputAsync("Sluice is listening", TimeSpan.FromSeconds(60));
        var baseUrl = new Uri($"http://127.0.0.1:{port}");

        // The SDK: a chat message of 4 MiB. Its retries (on a connection failure) would turn into an IOException.
        var sdk = new OpenAIClient(new ApiKeyCredential(key), new OpenAIClientOptions { Endpoint = new Uri(baseUrl, "/v1"), NetworkTimeout = TimeSpan.FromSeconds(60) });
        var refused = await Assert.ThrowsAsync<ClientResultException>(() => sdk.GetChatClient("echo").CompleteChatAsync([new UserChatMessage(new string('a', 4 * 1024 * 1024))]));
        Assert.Equal(413, refused.Status);
        using (var body = JsonDocument.Parse(refused.GetRawResponse()!.Content.ToString()))
        {
            Assert.Equal("request_too_large", body.RootElement.GetProperty("error").GetProperty("code").GetString());
        }

        using var http = new HttpClient { BaseAddress = baseUrl, Timeout = TimeSpan.FromSeconds(60) };
        http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", key);
        foreach (var size in new[] { Limit + 1, 1024 * 1024, 16 * 1024 * 1024 })
        {
            foreach (var chunked in new[] { false, true })
            {
                foreach (var path in new[] { "/v1/chat/completions", "/v1/embeddings" })
                {
                    HttpContent content = chunked ? new StreamContent(new UnknownLength(Body(size))) : new ByteArrayContent(Body(size));
                    content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
                    HttpResponseMessage answer;
                    try
                    {
                        answer = await http.PostAsync(path, content);
                    }
                    catch (HttpRequestException ex)
                    {
                        Assert.Fail($"{path}, {size} bytes, {(chunked ? "chunked" : "Content-Length")}: the connection broke ({ex.InnerException?.GetType().Name ?? ex.GetType().Name}) instead of a 413");
                        throw;
                    }

                    var error = await V1ErrorsTests.ErrorAsync(answer, HttpStatusCode.RequestEntityTooLarge);
                    Assert.Equal("request_too_large", error.GetProperty("code").GetString());
                    Assert.Contains($"{Limit} bytes", error.GetProperty("message").GetString(), StringComparison.Ordinal);
                }
            }
        }

        // A client that writes its whole body before it reads anything (Python's http.client, many simple clients):
        // answered without reading the body, it would hit a broken pipe or a reset (measured) instead of the 413.
        foreach (var chunked in new[] { false, true })
        {
            var (status, text) = await WriteAllThenReadAsync(port, key, Body(8 * 1024 * 1024), chunked);
            Assert.True(status == 413, $"{(chunked ? "chunked" : "Content-Length")}: {status} {text}");
            Assert.Contains("request_too_large", text, StringComparison.Ordinal);
        }

        // The server is none the worse: the same client is served next.
        var fine = await http.PostAsync("/v1/chat/completions", GatewayKit.Chat("echo", "still here"));
        Assert.Equal(HttpStatusCode.OK, fine.StatusCode);
        foreach (var path in new[] { "/v1/models/meta-llama%2FLlama-3.1-8B-Instruct", "/v1/models/meta-llama/Llama-3.1-8B-Instruct" })
        {
            var model = await http.GetAsync(path);
            Assert.True(model.StatusCode == HttpStatusCode.OK, $"{path}: {(int)model.StatusCode} {await model.Content.ReadAsStringAsync()}");
        }

        var sdkModel = await sdk.GetOpenAIModelClient().GetModelAsync("meta-llama/Llama-3.1-8B-Instruct");
        Assert.Equal("meta-llama/Llama-3.1-8B-Instruct", sdkModel.Value.Id);
        Assert.Equal(404, (await Assert.ThrowsAsync<ClientResultException>(() => sdk.GetOpenAIModelClient().GetModelAsync("meta-llama/Nope"))).Status);
    }

    private static async Task<(int Status, string Text)> WriteAllThenReadAsync(int port, string key, byte[] body, bool chunked)
    {
        using var tcp = new System.Net.Sockets.TcpClient();
        await tcp.ConnectAsync(IPAddress.Loopback, port);
        var stream = tcp.GetStream();
        var head = $"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {key}\r\nContent-Type: application/json\r\nConnection: close\r\n"
            + (chunked ? "Transfer-Encoding: chunked\r\n" : $"Content-Length: {body.Length}\r\n") + "\r\n";
        try
        {
            await stream.WriteAsync(System.Text.Encoding.ASCII.GetBytes(head));
            for (var offset = 0; offset < body.Length; offset += 64 * 1024)
            {
                var piece = body.AsMemory(offset, Math.Min(64 * 1024, body.Length - offset));
                if (chunked)
                {
                    await stream.WriteAsync(System.Text.Encoding.ASCII.GetBytes($"{piece.Length:x}\r\n"));
                }

                await stream.WriteAsync(piece);
                if (chunked)
                {
                    await stream.WriteAsync("\r\n"u8.ToArray());
                }
            }

            if (chunked)
            {
                await stream.WriteAsync("0\r\n\r\n"u8.ToArray());
            }

            using var reader = new StreamReader(stream);
            var statusLine = await reader.ReadLineAsync() ?? "";
            var rest = await reader.ReadToEndAsync().WaitAsync(TimeSpan.FromSeconds(30)); // the request asked the server to close
            return (int.Parse(statusLine.Split(' ')[1], System.Globalization.CultureInfo.InvariantCulture), rest);
        }
        catch (IOException ex)
        {
            return (0, $"the connection broke: {ex.InnerException?.Message ?? ex.Message}");
        }
    }

    private static byte[] Body(int size)
    {
        var prefix = """{"model":"echo","input":"x","messages":[{"role":"user","content":" """u8;
        var suffix = "\"}]}"u8;
        var body = new byte[size];
        body.AsSpan().Fill((byte)'a');
        prefix.CopyTo(body);
        suffix.CopyTo(body.AsSpan(size - suffix.Length));
        return body;
    }

    /// <summary>A stream that hides its length, so the client sends it chunked.</summary>
    private sealed class UnknownLength(byte[] bytes) : MemoryStream(bytes)
    {
        public override bool CanSeek => false;
    }
}
