using System.CommandLine;
using Microsoft.Extensions.Options;
using Sluice.Audit;
using Sluice.Billing;
using Sluice.Compute;
using Sluice.Deployments;
using Sluice.Files;
using Sluice.Gateway;
using Sluice.Hosting;
using Sluice.Identity;
using Sluice.Storage;

namespace Sluice.Cli;

/// <summary>
/// The host behind the administrative commands: the same settings, storage and services as <c>serve</c>, without the
/// web server. It prepares the database as <c>serve</c> would, runs one piece of work, and turns failures into
/// one clear line and exit code 1.
/// </summary>
internal static class CliHost
{
    /// <summary>Gives the command the shared options and, when it is invoked, runs <paramref name="work"/> on the host.</summary>
    public static Command RunsOnHost(this Command command, Func<ParseResult, IServiceProvider, CancellationToken, Task<int>> work)
    {
        var shared = new SharedOptions();
        shared.AddTo(command);
        command.SetAction((parse, cancellationToken) => RunAsync(shared.Read(parse), null, (services, ct) => work(parse, services, ct), cancellationToken));
        return command;
    }

    public static async Task<int> RunAsync(
        CommandLineSettings settings,
        bool? applyMigrations,
        Func<IServiceProvider, CancellationToken, Task<int>> work,
        CancellationToken cancellationToken)
    {
        try
        {
            var builder = Host.CreateEmptyApplicationBuilder(new HostApplicationBuilderSettings { ContentRootPath = AppContext.BaseDirectory });
            builder.Configuration.UseSluiceSources(builder.Environment.ContentRootPath, builder.Environment.EnvironmentName, settings, []);
            var server = SettingsValidator<ServerOptions>.BindNow(builder.Configuration, ServerOptions.Section, () => new ServerOptions());
            builder.Logging.AddConfiguration(builder.Configuration.GetSection("Logging"));
            SluiceApp.ConfigureLogging(builder.Logging, server.LogFormat);
            builder.Logging.AddFilter("Sluice", LogLevel.Warning); // commands print their own results
            builder.Services.AddSingleton(TimeProvider.System);
            builder.Services.AddSettings<ServerOptions>(ServerOptions.Section);
            builder.Services.AddStorage();
            builder.Services.AddAuditCore();
            builder.Services.AddGatewayCore();
            builder.Services.AddBillingCore();
            builder.Services.AddFilesCore();
            builder.Services.AddSluiceIdentityCore();
            builder.Services.AddComputeCore();
            builder.Services.AddDeploymentsCore();

            using var host = builder.Build();
            host.Services.GetRequiredService<IStartupValidator>().Validate();
            var migrate = applyMigrations ?? host.Services.GetRequiredService<IOptions<DatabaseOptions>>().Value.MigrateOnStart;
            await host.Services.GetRequiredService<StorageStartup>().PrepareAsync(migrate, cancellationToken);
            long logSize;
            await using (var before = host.Services.CreateAsyncScope())
            {
                logSize = await before.ServiceProvider.GetRequiredService<AuditService>().SizeAsync(cancellationToken);
            }

            int result;
            try
            {
                await using var scope = host.Services.CreateAsyncScope();
                scope.ServiceProvider.GetRequiredService<AuditActor>().Fixed = "cli";
                result = await work(scope.ServiceProvider, cancellationToken);
            }
            finally
            {
                // A command that wrote audit entries (or was refused, which is audited too) leaves no unsigned tail.
                await using var after = host.Services.CreateAsyncScope();
                var audit = after.ServiceProvider.GetRequiredService<AuditService>();
                if (await audit.SizeAsync(CancellationToken.None) > logSize)
                {
                    await audit.CheckpointIfBehindAsync(CancellationToken.None);
                }
            }

            return result;
        }
        catch (ApiProblemException problem)
        {
            await Console.Error.WriteLineAsync($"error: {problem.Message}");
            return ExitCodes.Failure;
        }
        catch (Exception ex)
        {
            StartupFailure.Report(ex, Console.Error);
            return ExitCodes.Failure;
        }
    }
}
