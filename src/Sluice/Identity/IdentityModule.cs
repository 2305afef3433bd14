using Sluice.Hosting;

namespace Sluice.Identity;

internal static class IdentityModule
{
    public static IServiceCollection AddSluiceIdentity(this IServiceCollection services)
    {
        services.AddSettings<IdentityOptions>(IdentityOptions.Section);
        services.AddSingleton<IOneTimeCredentialWriter, ConsoleOneTimeCredentialWriter>();
        services.AddHostedService<OperatorBootstrap>();
        return services;
    }
}
