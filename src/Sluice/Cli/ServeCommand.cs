using System.CommandLine;
using Sluice.Hosting;

namespace Sluice.Cli;

internal static class ServeCommand
{
    public static Command Create()
    {
        var shared = new SharedOptions();
        var urls = new Option<string?>("--urls")
        {
            Description = "Listen addresses separated by ';' (setting Server:Urls, default http://127.0.0.1:8080).",
        };
        var command = new Command("serve", "Run the Sluice server: API, console and background work.");
        command.Options.Add(urls);
        shared.AddTo(command);
        command.SetAction((parse, _) =>
        {
            var extra = new Dictionary<string, string?>();
            if (parse.GetValue(urls) is { } value)
            {
                extra[$"{ServerOptions.Section}:{nameof(ServerOptions.Urls)}"] = value;
            }

            return RunAsync([], shared.Read(parse, extra));
        });
        return command;
    }

    public static async Task<int> RunAsync(string[] hostArguments, CommandLineSettings settings)
    {
        WebApplication? app = null;
        try
        {
            app = SluiceApp.Build(SluiceApp.CreateBuilder(hostArguments, settings));
            await app.StartAsync();
        }
        catch (HostAbortedException)
        {
            throw; // A hosting tool took the built host; let it unwind this entry point.
        }
        catch (Exception ex)
        {
            StartupFailure.Report(ex, Console.Error);
            var refusal = ex as Microsoft.Extensions.Options.OptionsValidationException
                ?? (ex as AggregateException)?.InnerExceptions.OfType<Microsoft.Extensions.Options.OptionsValidationException>().FirstOrDefault();
            if (app is not null && refusal is not null)
            {
                await Audit.ConfigurationAudit.TryRecordRefusalAsync(app.Services, refusal);
            }

            if (app is not null)
            {
                await DisposeQuietlyAsync(app);
            }

            return ExitCodes.Failure;
        }

        HostingLog.Listening(app.Logger, string.Join(", ", app.Urls));
        await app.WaitForShutdownAsync();
        await DisposeQuietlyAsync(app);
        return ExitCodes.Success;
    }

    private static async Task DisposeQuietlyAsync(WebApplication app)
    {
        try
        {
            await app.DisposeAsync();
        }
        catch (ObjectDisposedException)
        {
        }
    }
}
