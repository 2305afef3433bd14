using System.Net.Http.Headers;
using Sluice.Hosting;

namespace Sluice.Gateway;

/// <summary>
/// The built-in <c>all-MiniLM-L6-v2</c> embeddings model: requests go, after every check, hold and limit of the
/// pipeline like any route, to the <c>sluice engine embeddings</c> child that <see cref="EmbeddingsEngineProcess"/>
/// runs on loopback, and its OpenAI-shaped answer (or refusal) is relayed and metered as a provider's would be.
/// </summary>
internal sealed class BuiltInEmbeddingsUpstream(EmbeddingsEngineProcess engine, UpstreamClient client) : IUpstream
{
    public ProviderKind Kind => ProviderKind.BuiltInEmbeddings;

    public async Task<UpstreamResponse> SendAsync(InferenceRequest request, RouteInfo route, CancellationToken cancellationToken)
    {
        var endpoint = await engine.EndpointAsync(cancellationToken);
        using var message = new HttpRequestMessage(HttpMethod.Post, new Uri(endpoint.BaseUrl, "v1/embeddings"))
        {
            Content = new ByteArrayContent(request.RewriteFor(route.UpstreamModel)),
        };
        message.Content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        message.Headers.Authorization = new AuthenticationHeaderValue("Bearer", endpoint.ApiKey);
        return await Upstream.SendAsync(client, message, route, ResponseFormat.OpenAi, cancellationToken);
    }
}

internal static class BuiltInEmbeddingsModule
{
    /// <summary>The settings, which the catalog reads (admin commands too).</summary>
    public static IServiceCollection AddBuiltInEmbeddingsSettings(this IServiceCollection services)
    {
        services.AddSettings<BuiltInEmbeddingsOptions>(BuiltInEmbeddingsOptions.Section);
        return services;
    }

    /// <summary>The model's target, the supervised child process behind it, and its line in <c>/readyz</c>.</summary>
    public static IServiceCollection AddBuiltInEmbeddings(this IServiceCollection services)
    {
        services.AddSingleton<EmbeddingsEngineProcess>();
        services.AddHostedService(provider => provider.GetRequiredService<EmbeddingsEngineProcess>());
        services.AddSingleton<IUpstream, BuiltInEmbeddingsUpstream>();
        services.AddHealthChecks().AddCheck<EmbeddingsEngineHealthCheck>("embeddings-engine", tags: ["ready"]);
        return services;
    }
}
