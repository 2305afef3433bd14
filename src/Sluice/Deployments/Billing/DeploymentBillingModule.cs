using Microsoft.Extensions.DependencyInjection.Extensions;
using Sluice.Hosting;
using Sluice.Identity;

namespace Sluice.Deployments.Billing;

/// <summary>GPU-time billing for deployments: GPU prices, the wallet's say on scaling, the meter.</summary>
internal static class DeploymentBillingModule
{
    /// <summary>GPU prices and the wallet's say (<see cref="IDeploymentBilling"/>, replacing the unmetered default): CLI and server.</summary>
    public static IServiceCollection AddDeploymentBillingCore(this IServiceCollection services)
    {
        services.AddSettings<DeploymentBillingOptions>(DeploymentBillingOptions.Section);
        services.AddScoped<GpuPrices>();
        services.AddScoped<DeploymentCosts>();
        services.Replace(ServiceDescriptor.Singleton<IDeploymentBilling, WalletDeploymentBilling>());
        return services;
    }

    /// <summary>The server, after <see cref="AddDeploymentBillingCore"/>: the GPU-time meter (needs the wallet's <see cref="Sluice.Billing.SpendGuard"/>).</summary>
    public static IServiceCollection AddDeploymentBilling(this IServiceCollection services)
    {
        services.AddSingleton<GpuTimeMeter>();
        services.AddHostedService<GpuTimeMeterService>();
        return services;
    }

    public static IEndpointRouteBuilder MapDeploymentBilling(this IEndpointRouteBuilder endpoints)
    {
        var prices = endpoints.MapGroup("/api/v1/gpu-prices").WithTags("billing").RequireAuthorization(Policies.Operator);
        prices.MapGet("", (string? gpuType, GpuPrices book, CancellationToken ct) => book.ListAsync(gpuType, ct));
        prices.MapPost("", async (SetGpuPriceRequest request, GpuPrices book, CancellationToken ct) =>
        {
            var price = await book.SetAsync(request, ct);
            return TypedResults.Created($"/api/v1/gpu-prices?gpuType={Uri.EscapeDataString(price.GpuType)}", price);
        });
        return endpoints;
    }
}
