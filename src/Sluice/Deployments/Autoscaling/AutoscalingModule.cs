using Sluice.Hosting;

namespace Sluice.Deployments.Autoscaling;

internal static class AutoscalingModule
{
    /// <summary>The server's autoscaler: every replica reports its load; the one holding the lease decides.</summary>
    public static IServiceCollection AddDeploymentAutoscaling(this IServiceCollection services)
    {
        services.AddSettings<AutoscalerOptions>(AutoscalerOptions.Section);
        services.AddSingleton<DeploymentLoadReporter>();
        services.AddHostedService(provider => provider.GetRequiredService<DeploymentLoadReporter>());
        services.AddSingleton<DeploymentAutoscaler>();
        services.AddHostedService(provider => provider.GetRequiredService<DeploymentAutoscaler>());
        return services;
    }
}
