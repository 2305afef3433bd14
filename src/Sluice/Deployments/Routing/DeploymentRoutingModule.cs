using Sluice.Gateway;
using Sluice.Hosting;

namespace Sluice.Deployments.Routing;

internal static class DeploymentRoutingModule
{
    /// <summary>Routing to deployments: the directory of ready replicas, the gateway's model lookup, the upstream and the cold-start queue.</summary>
    public static IServiceCollection AddDeploymentRouting(this IServiceCollection services)
    {
        services.AddSettings<DeploymentRoutingOptions>(DeploymentRoutingOptions.Section);
        services.AddSingleton<DeploymentDirectory>();
        services.AddSingleton<IOrganizationModels>(provider => provider.GetRequiredService<DeploymentDirectory>());
        services.AddHostedService<DeploymentDirectoryRefresher>();
        services.AddSingleton<ColdStarts>();
        services.AddSingleton<ReplicaBreakers>();
        services.AddSingleton<IUpstream, DeploymentUpstream>();
        return services;
    }
}
