using Sluice.Hosting;

namespace Sluice.Deployments.Scheduling;

internal static class SchedulingModule
{
    /// <summary>The scheduler: a background loop on every server replica, of which the lease holder does the work.</summary>
    public static IServiceCollection AddDeploymentScheduler(this IServiceCollection services)
    {
        services.AddSettings<SchedulerOptions>(SchedulerOptions.Section);
        services.AddSingleton<DeploymentScheduler>();
        services.AddHostedService(provider => provider.GetRequiredService<DeploymentScheduler>());
        return services;
    }
}
