using Sluice.Hosting;

namespace Sluice.Audit;

internal static class AuditModule
{
    /// <summary>The log itself, its signer and services: what the admin commands need too.</summary>
    public static IServiceCollection AddAuditCore(this IServiceCollection services)
    {
        services.AddSettings<AuditOptions>(AuditOptions.Section);
        services.AddHttpContextAccessor();
        services.AddScoped<AuditActor>();
        services.AddScoped<AuditLog>();
        services.AddScoped<AuditService>();
        services.AddSingleton<CheckpointSigner>();
        return services;
    }

    public static IServiceCollection AddAudit(this IServiceCollection services)
    {
        services.AddAuditCore();
        services.AddHostedService<ConfigurationAudit>();
        services.AddHostedService<CheckpointScheduler>();
        services.AddHostedService<AuditPruner>();
        return services;
    }
}
