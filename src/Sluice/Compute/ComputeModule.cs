using Microsoft.Extensions.DependencyInjection.Extensions;
using Sluice.Hosting;

namespace Sluice.Compute;

internal static class ComputeModule
{
    /// <summary>What the admin commands need: settings and the services that manage machines, tokens and tasks.</summary>
    public static IServiceCollection AddComputeCore(this IServiceCollection services)
    {
        services.AddSettings<ComputeOptions>(ComputeOptions.Section);
        services.AddScoped<MachineAdmin>();
        services.AddScoped<MachineTasks>();
        services.AddScoped<MachineActivity>();
        return services;
    }

    public static IServiceCollection AddCompute(this IServiceCollection services)
    {
        services.AddComputeCore();
        services.AddScoped<AgentExchange>();
        services.AddSingleton<RefusalThrottle>();

        // Telemetry storage registers its own sink; without it, telemetry is dropped.
        services.TryAddSingleton<ITelemetrySink, NullTelemetrySink>();
        services.AddSingleton<HeartbeatRecorder>();
        services.AddHostedService(provider => provider.GetRequiredService<HeartbeatRecorder>());
        services.AddScoped<Serving.MachineEndpoints>();
        services.AddSingleton<Serving.IMachineTransport>(provider =>
            new Serving.DirectMachineTransport(allowLoopback: provider.GetRequiredService<Microsoft.Extensions.Options.IOptions<ComputeOptions>>().Value.AllowLoopbackServing));
        services.AddSingleton<Serving.MachineNudger>();
        services.AddSingleton<LivenessMonitor>();
        services.AddHostedService(provider => provider.GetRequiredService<LivenessMonitor>());
        return services;
    }
}
