using Sluice.Hosting;

namespace Sluice.Batches;

internal static class BatchesModule
{
    public static IServiceCollection AddBatches(this IServiceCollection services)
    {
        services.AddSettings<BatchesOptions>(BatchesOptions.Section);
        services.AddSingleton<BatchRunner>();
        services.AddScoped<BatchCommands>();
        services.AddHostedService(provider => provider.GetRequiredService<BatchRunner>());
        return services;
    }
}
