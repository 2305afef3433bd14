using Microsoft.Extensions.Options;
using Sluice.Crypto;
using Sluice.Hosting;

namespace Sluice.Gateway;

internal static class GatewayModule
{
    /// <summary>What the admin commands need: the catalog and its management.</summary>
    public static IServiceCollection AddGatewayCore(this IServiceCollection services)
    {
        services.AddSettings<GatewayOptions>(GatewayOptions.Section);
        services.AddSingleton(provider =>
        {
            var gateway = provider.GetRequiredService<IOptions<GatewayOptions>>().Value;
            var server = provider.GetRequiredService<IOptions<ServerOptions>>().Value;
            return new SecretBox(string.IsNullOrWhiteSpace(gateway.SecretsKeyFile)
                ? Path.Combine(Path.GetFullPath(server.DataDir), "keys", "secrets.key")
                : Path.GetFullPath(gateway.SecretsKeyFile));
        });
        services.AddBuiltInEmbeddingsSettings();
        services.AddSingleton<Catalog>();
        services.AddScoped<CatalogAdmin>();
        return services;
    }

    public static IServiceCollection AddGateway(this IServiceCollection services)
    {
        services.AddGatewayCore();
        services.AddSingleton<RouteSelector>();
        services.AddSingleton<GatewayRateLimiter>();
        services.AddSingleton<OrganizationPolicies>();
        services.AddSingleton<UsageMeter>();
        services.AddSingleton<ProviderConcurrency>();

        // The pipeline, its stages and its adapters (docs/architecture.md, "The request path").
        services.AddSingleton<Pipeline.InferencePipeline>();
        services.AddSingleton<Pipeline.RouteForwarder>();
        services.AddSingleton<Pipeline.AnswerRelay>();
        services.AddSingleton<Pipeline.HttpInferenceAdapter>();
        services.AddSingleton<Pipeline.BatchLineAdapter>();

        // Targets, one per provider kind, chosen by kind.
        services.AddSingleton<UpstreamRegistry>();
        services.AddSingleton<IUpstream, EchoUpstream>();
        services.AddSingleton<IUpstream, OpenAiCompatibleUpstream>();
        services.AddSingleton<IUpstream, AnthropicUpstream>();
        services.AddBuiltInEmbeddings();
        services.AddHostedService<CatalogRefresher>();
        services.AddHostedService<UsageWriter>();
        services.AddSingleton<UpstreamClient>();
        return services;
    }
}
