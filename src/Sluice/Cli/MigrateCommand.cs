using System.CommandLine;
using Sluice.Storage;

namespace Sluice.Cli;

internal static class MigrateCommand
{
    public static Command Create()
    {
        var shared = new SharedOptions();
        var command = new Command("migrate", "Apply pending database migrations, then exit. `serve` also applies them on start.");
        shared.AddTo(command);
        command.SetAction((parse, cancellationToken) => CliHost.RunAsync(shared.Read(parse), applyMigrations: true, async (services, ct) =>
        {
            var target = services.GetRequiredService<DatabaseTarget>();
            var status = await services.GetRequiredService<SchemaMigrator>().GetStatusAsync(ct);
            await Console.Out.WriteLineAsync($"{target.Description}: schema {status.Version}, up to date.");
            return ExitCodes.Success;
        }, cancellationToken));
        return command;
    }
}
