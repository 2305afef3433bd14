using Microsoft.Extensions.DependencyInjection.Extensions;
using Sluice.Hosting;
using Sluice.Deployments.Scheduling;
using Sluice.Deployments.Routing;
using Sluice.Deployments.Autoscaling;
using Sluice.Deployments.Billing;

namespace Sluice.Deployments;

internal static class DeploymentsModule
{
    /// <summary>What the admin commands need: the services that manage deployments.</summary>
    public static IServiceCollection AddDeploymentsCore(this IServiceCollection services)
    {
        services.TryAddSingleton<IDeploymentBilling, UnmeteredDeploymentBilling>();
        services.AddSettings<DeploymentsOptions>(DeploymentsOptions.Section);
        services.AddScoped<DeploymentAdmin>();
        services.AddDeploymentBillingCore();
        return services;
    }

    /// <summary>The server: everything in <see cref="AddDeploymentsCore"/>, plus routing, the scheduler, the autoscaler and GPU-time billing.</summary>
    public static IServiceCollection AddDeployments(this IServiceCollection services)
    {
        services.AddDeploymentsCore();
        services.AddSingleton<DeploymentLoad>();
        services.AddSingleton<DeploymentSignals>();
        services.AddDeploymentScheduler();
        services.AddDeploymentRouting();
        services.AddDeploymentAutoscaling();
        services.AddDeploymentBilling();
        return services;
    }

    public static IEndpointRouteBuilder MapDeployments(this IEndpointRouteBuilder app)
    {
        app.MapDeploymentEndpoints();
        app.MapDeploymentStats();
        app.MapDeploymentBilling();
        return app;
    }
}
