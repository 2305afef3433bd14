using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Sluice.Hosting;
using Sluice.Storage;

namespace Sluice.Benchmarks;

/// <summary>A host over a fresh, migrated SQLite database in a temporary directory, for benchmarks that touch storage.</summary>
internal static class BenchmarkStorage
{
    public static async Task<(IHost Host, string Directory)> StartAsync(Action<IServiceCollection>? addServices = null)
    {
        var directory = Directory.CreateTempSubdirectory("sluice-bench-").FullName;
        var builder = Host.CreateEmptyApplicationBuilder(new HostApplicationBuilderSettings());
        builder.Configuration.AddInMemoryCollection([new("Server:DataDir", directory)]);
        builder.Services.AddSingleton(TimeProvider.System);
        builder.Services.AddSettings<ServerOptions>(ServerOptions.Section);
        builder.Services.AddStorage();
        addServices?.Invoke(builder.Services);
        var host = builder.Build();
        await host.Services.GetRequiredService<StorageStartup>().PrepareAsync(applyMigrations: true, default);
        return (host, directory);
    }

    public static void Stop(IHost host, string directory)
    {
        host.Dispose();
        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
        Directory.Delete(directory, recursive: true);
    }
}
