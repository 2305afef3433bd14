using System.Net;
using System.Net.Http.Headers;
using Microsoft.Extensions.Options;

namespace Sluice.Gateway;

public enum ResponseFormat
{
    /// <summary>OpenAI's chat completions, completions or embeddings.</summary>
    OpenAi,
    Anthropic,

    /// <summary>OpenAI's Responses API (a provider that speaks it, given a <c>/v1/responses</c> call as it came).</summary>
    OpenAiResponses,
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

/// <summary>
/// One kind of inference target behind the pipeline (a provider kind, the built-in model; deployments next), chosen by
/// <see cref="Kind"/> through <see cref="UpstreamRegistry"/>. It sends the request in its target's protocol and answers
/// at the headers; the body streams.
/// </summary>
public interface IUpstream
{
    ProviderKind Kind { get; }

    Task<UpstreamResponse> SendAsync(InferenceRequest request, RouteInfo route, CancellationToken cancellationToken);
}

/// <summary>
/// An upstream whose target may first have to start (a deployment scaled to zero, or whose replicas are all starting):
/// before each attempt the forwarder lets it wait, bounded, for a target that can take the request, outside the
/// first-byte deadline. It may keep a streaming receiver's connection alive meanwhile (committing an event stream and
/// setting <see cref="Pipeline.InferenceTrace.StreamOpenedEarly"/>), and records what the wait was in the trace.
/// </summary>
public interface IAdmittingUpstream : IUpstream
{
    Task AdmitAsync(InferenceRequest request, RouteInfo route, Pipeline.InferenceTrace trace, Pipeline.IResponseSink sink, CancellationToken cancellationToken);
}

/// <summary>
/// The one connection pool to model providers, shared by every route. A bare <see cref="HttpMessageInvoker"/> over
/// <see cref="SocketsHttpHandler"/>: the gateway sets its own deadlines per request and logs its own outcome (ids and
/// status, never URIs), so <see cref="HttpClient"/>'s timeout and pending-request tokens, and the client factory's
/// logging handlers and handler rotation, are work per request that buys nothing here (the pool's connection lifetime
/// already follows DNS changes).
/// </summary>
internal sealed class UpstreamClient(IOptions<GatewayOptions> options) : IDisposable
{
    private readonly HttpMessageInvoker _invoker = new(new SocketsHttpHandler
    {
        ConnectTimeout = options.Value.ConnectTimeout,
        PooledConnectionLifetime = TimeSpan.FromMinutes(5),
        AutomaticDecompression = DecompressionMethods.All,
        UseCookies = false, // a provider's cookies must never follow one tenant's request into another's

        // A provider's answer is relayed, never followed elsewhere; and no trace ids go to providers (the switch in
        // Sluice.csproj also takes the diagnostics handler out of the pipeline).
        AllowAutoRedirect = false,
        ActivityHeadersPropagator = null,
    });

    public Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken) =>
        _invoker.SendAsync(request, cancellationToken);

    public void Dispose() => _invoker.Dispose();
}

/// <summary>Any OpenAI-compatible server: OpenAI, vLLM, Ollama, llama.cpp, TGI, LM Studio and hosted peers.</summary>
internal sealed class OpenAiCompatibleUpstream(UpstreamClient client) : IUpstream
{
    public ProviderKind Kind => ProviderKind.OpenAiCompatible;

    public async Task<UpstreamResponse> SendAsync(InferenceRequest request, RouteInfo route, CancellationToken cancellationToken)
    {
        if (Protocols.Responses.ResponsesNative.Applies(request, route))
        {
            // The provider speaks the Responses API: the caller's body goes as it came (model, limit and store rewritten).
            return await SendAsync(client, "responses", Protocols.Responses.ResponsesNative.RewriteFor(request, route.UpstreamModel), route, ResponseFormat.OpenAiResponses, cancellationToken);
        }

        var path = request.Endpoint switch
        {
            InferenceEndpoint.ChatCompletions => "chat/completions",
            InferenceEndpoint.Completions => "completions",
            _ => "embeddings",
        };
        return await SendAsync(client, path, request.RewriteFor(route.UpstreamModel), route, ResponseFormat.OpenAi, cancellationToken);
    }

    private static async Task<UpstreamResponse> SendAsync(
        UpstreamClient client, string path, byte[] body, RouteInfo route, ResponseFormat format, CancellationToken cancellationToken)
    {
        using var message = new HttpRequestMessage(HttpMethod.Post, new Uri(route.Provider.BaseUrl, path))
        {
            Content = new ByteArrayContent(body),
        };
        message.Content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        if (route.Provider.ApiKey is { } apiKey)
        {
            message.Headers.Authorization = new AuthenticationHeaderValue("Bearer", apiKey);
        }

        return await Upstream.SendAsync(client, message, route, format, cancellationToken);
    }
}

/// <summary>Anthropic's Messages API, with chat completions translated to and from it (<see cref="AnthropicTranslation"/>).</summary>
internal sealed class AnthropicUpstream(UpstreamClient client) : IUpstream
{
    public ProviderKind Kind => ProviderKind.Anthropic;

    public async Task<UpstreamResponse> SendAsync(InferenceRequest request, RouteInfo route, CancellationToken cancellationToken)
    {
        // A caller that spoke Anthropic's Messages API: its own body and headers go through (model and limit rewritten).
        var native = request.Protocol as Protocols.Anthropic.AnthropicMessagesProtocol;
        using var message = new HttpRequestMessage(HttpMethod.Post, new Uri(route.Provider.BaseUrl, "messages"))
        {
            Content = new ByteArrayContent(native is null
                ? AnthropicTranslation.Request(request, route.UpstreamModel)
                : Protocols.Anthropic.AnthropicMessagesProtocol.NativeBody(request, route.UpstreamModel)),
        };
        message.Content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        message.Headers.Add("anthropic-version", native?.Version ?? "2023-06-01");
        if (native?.Beta is { } beta)
        {
            message.Headers.TryAddWithoutValidation("anthropic-beta", beta);
        }

        if (route.Provider.ApiKey is { } apiKey)
        {
            message.Headers.Add("x-api-key", apiKey);
        }

        return await Upstream.SendAsync(client, message, route, ResponseFormat.Anthropic, cancellationToken);
    }
}

internal static class Upstream
{
    public static async Task<UpstreamResponse> SendAsync(
        UpstreamClient client, HttpRequestMessage message, RouteInfo route, ResponseFormat format, CancellationToken cancellationToken)
    {
        foreach (var (name, value) in route.Provider.Headers)
        {
            message.Headers.TryAddWithoutValidation(name, value);
        }

        var response = await client.SendAsync(message, cancellationToken); // a handler answers at the headers; the body streams
        var body = await response.Content.ReadAsStreamAsync(cancellationToken);
        var retryAfter = response.Headers.RetryAfter?.Delta;
        return new UpstreamResponse((int)response.StatusCode, body, format, retryAfter, response, response.Content.Headers.ContentLength);
    }

    public static bool IsConnectFailure(Exception exception) =>
        exception is HttpRequestException { StatusCode: null } || exception.InnerException is System.Net.Sockets.SocketException;

    public static HttpStatusCode GatewayStatus(bool timedOut) => timedOut ? HttpStatusCode.GatewayTimeout : HttpStatusCode.BadGateway;
}
