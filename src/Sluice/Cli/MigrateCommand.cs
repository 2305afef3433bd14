using System.CommandLine;
using Microsoft.Extensions.Options;
using Sluice.Hosting;
using Sluice.Storage;

namespace Sluice.Cli;

internal static class MigrateCommand
{
    public static Command Create()
    {
        var shared = new SharedOptions();
        var command = new Command("migrate", "Apply pending database migrations, then exit. `serve` also applies them on start.");
        shared.AddTo(command);
        command.SetAction((parse, cancellationToken) => RunAsync(shared.Read(parse), cancellationToken));
        return command;
    }

    private static async Task<int> RunAsync(CommandLineSettings settings, CancellationToken cancellationToken)
    {
        try
        {
            var builder = Host.CreateEmptyApplicationBuilder(new HostApplicationBuilderSettings
            {
                ContentRootPath = AppContext.BaseDirectory,
            });
            builder.Configuration.UseSluiceSources(
                builder.Environment.ContentRootPath, builder.Environment.EnvironmentName, settings, []);
            var server = SettingsValidator<ServerOptions>.BindNow(builder.Configuration, ServerOptions.Section, () => new ServerOptions());
            builder.Logging.AddConfiguration(builder.Configuration.GetSection("Logging"));
            SluiceApp.ConfigureLogging(builder.Logging, server.LogFormat);
            builder.Logging.AddFilter("Sluice", LogLevel.Warning); // the command prints its own one-line result
            builder.Services.AddSingleton(TimeProvider.System);
            builder.Services.AddSettings<ServerOptions>(ServerOptions.Section);
            builder.Services.AddStorage();

            using var host = builder.Build();
            host.Services.GetRequiredService<IStartupValidator>().Validate();
            var target = host.Services.GetRequiredService<DatabaseTarget>();
            var status = await host.Services.GetRequiredService<StorageStartup>().PrepareAsync(applyMigrations: true, cancellationToken);
            await Console.Out.WriteLineAsync($"{target.Description}: schema {status.Version}, up to date.");
            return ExitCodes.Success;
        }
        catch (Exception ex)
        {
            StartupFailure.Report(ex, Console.Error);
            return ExitCodes.Failure;
        }
    }
}
