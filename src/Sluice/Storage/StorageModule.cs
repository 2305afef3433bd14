using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Diagnostics;
using Microsoft.Extensions.Options;
using Sluice.Hosting;

namespace Sluice.Storage;

internal static class StorageModule
{
    /// <summary>The database (SQLite by default, PostgreSQL when configured), its migrations and its start-up preparation.</summary>
    public static IServiceCollection AddStorage(this IServiceCollection services)
    {
        services.AddSettings<DatabaseOptions>(DatabaseOptions.Section);
        services.AddSingleton(provider =>
        {
            var configuration = provider.GetRequiredService<IConfiguration>();
            var server = provider.GetRequiredService<IOptions<ServerOptions>>().Value;
            return DatabaseTarget.Resolve(configuration[SluiceConfiguration.ConnectionStringKey], server.DataDir);
        });

        services.AddDbContextPool<SluiceDbContext>((provider, options) =>
            ConfigureProvider(options, provider.GetRequiredService<DatabaseTarget>(),
                provider.GetRequiredService<IOptions<DatabaseOptions>>().Value.CommandTimeout));
        services.AddScoped<SchemaMigrator>();
        services.AddSingleton<DatabaseAvailability>();
        services.AddSingleton<StorageStartup>();
        services.AddHostedService(provider => provider.GetRequiredService<StorageStartup>());
        return services;
    }

    public static void ConfigureProvider(DbContextOptionsBuilder options, DatabaseTarget target, TimeSpan commandTimeout)
    {
        var timeoutSeconds = (int)Math.Ceiling(commandTimeout.TotalSeconds);
        switch (target.Provider)
        {
            case DatabaseProvider.Sqlite:
                options.UseSqlite(target.ConnectionString, sqlite => sqlite.CommandTimeout(timeoutSeconds));
                break;
            case DatabaseProvider.Postgres:
                options.UseNpgsql(target.ConnectionString, npgsql => npgsql.CommandTimeout(timeoutSeconds));
                break;
            default:
                throw new InvalidOperationException($"Unknown database provider {target.Provider}.");
        }

        // Migrations are written by hand (no EF design-time tooling here), so there is no model snapshot to compare;
        // the schema test in Storage/ proves instead that migrating an empty database yields the model's schema.
        options.ConfigureWarnings(w => w.Ignore(RelationalEventId.PendingModelChangesWarning));
    }
}
