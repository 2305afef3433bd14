using Sluice.Hosting;

namespace Sluice.Files;

internal static class FilesModule
{
    /// <summary>What the admin commands need: the settings and the encrypted store.</summary>
    public static IServiceCollection AddFilesCore(this IServiceCollection services)
    {
        services.AddSettings<FilesOptions>(FilesOptions.Section);
        services.AddSingleton<FileStore>();
        return services;
    }

    public static IServiceCollection AddFiles(this IServiceCollection services)
    {
        services.AddFilesCore();
        services.AddScoped<FileUploads>();
        services.AddSingleton<FileSweeper>();
        services.AddHostedService(provider => provider.GetRequiredService<FileSweeper>());
        services.AddSingleton<KeyRotationScheduler>();
        services.AddHostedService(provider => provider.GetRequiredService<KeyRotationScheduler>());
        return services;
    }
}
