using Sluice.Hosting;

namespace Sluice.Privacy;

internal static class PrivacyModule
{
    public static IServiceCollection AddPrivacy(this IServiceCollection services)
    {
        services.AddSettings<PrivacyOptions>(PrivacyOptions.Section);
        services.AddSettings<RetentionOptions>(RetentionOptions.Section);
        services.AddSingleton<IServiceEmail, SmtpServiceEmail>();
        services.AddScoped<LegalHoldService>();
        services.AddScoped<ConsentService>();
        services.AddScoped<PrivacyRequestService>();
        services.AddScoped<AccountErasure>();
        services.AddScoped<SubjectExport>();
        services.AddScoped<StaffAccessService>();
        services.AddScoped<SubprocessorService>();
        services.AddSingleton<PolicyPublisher>();
        services.AddHostedService(provider => provider.GetRequiredService<PolicyPublisher>());
        services.AddSingleton<RetentionSweeper>();
        services.AddHostedService(provider => provider.GetRequiredService<RetentionSweeper>());
        return services;
    }
}
