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
        services.AddSingleton<GatewayHandler>();
        services.AddSingleton<EchoUpstream>();
        services.AddSingleton<OpenAiCompatibleUpstream>();
        services.AddSingleton<AnthropicUpstream>();
        services.AddHostedService<CatalogRefresher>();
        services.AddHostedService<UsageWriter>();
        services.AddHttpClient(OpenAiCompatibleUpstream.ClientName)
            .ConfigurePrimaryHttpMessageHandler(provider => new SocketsHttpHandler
            {
                ConnectTimeout = provider.GetRequiredService<IOptions<GatewayOptions>>().Value.ConnectTimeout,
                PooledConnectionLifetime = TimeSpan.FromMinutes(5),
                AutomaticDecompression = System.Net.DecompressionMethods.All,

                // A provider's answer is relayed, never followed elsewhere; and no trace ids go to providers (the
                // switch in Sluice.csproj also takes the diagnostics handler out of the pipeline).
                AllowAutoRedirect = false,
                ActivityHeadersPropagator = null,
            })
            .ConfigureHttpClient(client => client.Timeout = Timeout.InfiniteTimeSpan)

            // The factory's logging handlers open a log scope and format the URI for every request; the gateway logs
            // its own outcome (ids and status, never URIs with keys in them).
            .RemoveAllLoggers();
        return services;
    }
}
