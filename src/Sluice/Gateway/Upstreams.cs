using System.Net;
using System.Net.Http.Headers;

namespace Sluice.Gateway;

public enum ResponseFormat
{
    OpenAi,
    Anthropic,
}

/// <summary>What an upstream answered, before anything is sent to the client (so a failure can still fall back).</summary>
public sealed class UpstreamResponse(
    int status, Stream body, ResponseFormat format, TimeSpan? retryAfter = null, IDisposable? owner = null, long? length = null) : IAsyncDisposable
{
    public int Status { get; } = status;

    /// <summary>The body's length when the upstream declared it.</summary>
    public long? Length { get; } = length;

    public Stream Body { get; } = body;

    public ResponseFormat Format { get; } = format;

    public TimeSpan? RetryAfter { get; } = retryAfter;

    public bool IsSuccess => Status is >= 200 and < 300;

    /// <summary>Worth trying another route: the provider is overloaded or failing.</summary>
    public bool IsRetryable => Status == 429 || Status >= 500;

    public async ValueTask DisposeAsync()
    {
        await Body.DisposeAsync();
        owner?.Dispose();
    }
}

public interface IUpstream
{
    Task<UpstreamResponse> SendAsync(InferenceRequest request, RouteInfo route, CancellationToken cancellationToken);
}

/// <summary>Any OpenAI-compatible server: OpenAI, vLLM, Ollama, llama.cpp, TGI, LM Studio and hosted peers.</summary>
internal sealed class OpenAiCompatibleUpstream(IHttpClientFactory clients) : IUpstream
{
    public const string ClientName = "upstream";

    public async Task<UpstreamResponse> SendAsync(InferenceRequest request, RouteInfo route, CancellationToken cancellationToken)
    {
        var path = request.Endpoint switch
        {
            InferenceEndpoint.ChatCompletions => "chat/completions",
            InferenceEndpoint.Completions => "completions",
            _ => "embeddings",
        };
        using var message = new HttpRequestMessage(HttpMethod.Post, new Uri(route.Provider.BaseUrl, path))
        {
            Content = new ByteArrayContent(request.RewriteFor(route.UpstreamModel)),
        };
        message.Content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        if (route.Provider.ApiKey is { } apiKey)
        {
            message.Headers.Authorization = new AuthenticationHeaderValue("Bearer", apiKey);
        }

        return await Upstream.SendAsync(clients, message, route, ResponseFormat.OpenAi, cancellationToken);
    }
}

/// <summary>Anthropic's Messages API, with chat completions translated to and from it (<see cref="AnthropicTranslation"/>).</summary>
internal sealed class AnthropicUpstream(IHttpClientFactory clients) : IUpstream
{
    public async Task<UpstreamResponse> SendAsync(InferenceRequest request, RouteInfo route, CancellationToken cancellationToken)
    {
        using var message = new HttpRequestMessage(HttpMethod.Post, new Uri(route.Provider.BaseUrl, "messages"))
        {
            Content = new ByteArrayContent(AnthropicTranslation.Request(request, route.UpstreamModel)),
        };
        message.Content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        message.Headers.Add("anthropic-version", "2023-06-01");
        if (route.Provider.ApiKey is { } apiKey)
        {
            message.Headers.Add("x-api-key", apiKey);
        }

        return await Upstream.SendAsync(clients, message, route, ResponseFormat.Anthropic, cancellationToken);
    }
}

internal static class Upstream
{
    public static async Task<UpstreamResponse> SendAsync(
        IHttpClientFactory clients, HttpRequestMessage message, RouteInfo route, ResponseFormat format, CancellationToken cancellationToken)
    {
        foreach (var (name, value) in route.Provider.Headers)
        {
            message.Headers.TryAddWithoutValidation(name, value);
        }

        var client = clients.CreateClient(OpenAiCompatibleUpstream.ClientName);
        var response = await client.SendAsync(message, HttpCompletionOption.ResponseHeadersRead, cancellationToken);
        var body = await response.Content.ReadAsStreamAsync(cancellationToken);
        var retryAfter = response.Headers.RetryAfter?.Delta;
        return new UpstreamResponse((int)response.StatusCode, body, format, retryAfter, response, response.Content.Headers.ContentLength);
    }

    public static bool IsConnectFailure(Exception exception) =>
        exception is HttpRequestException { StatusCode: null } || exception.InnerException is System.Net.Sockets.SocketException;

    public static HttpStatusCode GatewayStatus(bool timedOut) => timedOut ? HttpStatusCode.GatewayTimeout : HttpStatusCode.BadGateway;
}
