using Sluice.Hosting;

namespace Sluice.Compute.Telemetry;

/// <summary>
/// Machine telemetry: the <see cref="ITelemetrySink"/> the heartbeat endpoint records into, its writer, the hourly
/// rollups, and the read API. Retention is the privacy engine's (classes <c>machine_telemetry</c> and
/// <c>machine_telemetry_rollups</c>, swept by the retention sweeper).
/// </summary>
internal static class TelemetryModule
{
    public static IServiceCollection AddTelemetry(this IServiceCollection services)
    {
        services.AddSettings<TelemetryOptions>(TelemetryOptions.Section);
        services.AddSingleton<TelemetryBuffer>();
        services.AddSingleton<ITelemetrySink>(provider => provider.GetRequiredService<TelemetryBuffer>());
        services.AddSingleton<TelemetryWriter>();
        services.AddHostedService(provider => provider.GetRequiredService<TelemetryWriter>());
        services.AddSingleton<TelemetryRollup>();
        services.AddHostedService(provider => provider.GetRequiredService<TelemetryRollup>());
        services.AddHealthChecks().AddCheck<TelemetryHealthCheck>("telemetry", tags: ["ready"]);
        return services;
    }

    public static IEndpointRouteBuilder MapTelemetry(this IEndpointRouteBuilder endpoints) => endpoints.MapTelemetryEndpoints();
}
