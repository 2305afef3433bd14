using System.CommandLine;
using System.Runtime.InteropServices;
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

    /// <summary>Runs the server until it stops; <paramref name="started"/> is called once it listens (tests stop the host with it).</summary>
    public static async Task<int> RunAsync(string[] hostArguments, CommandLineSettings settings, Action<WebApplication>? started = null)
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

        // A stop asked for by a signal (the host's console lifetime acts on it) is a clean exit; the host stopping for
        // any other reason is a failure, so a supervisor restarts the process and alerting sees it.
        var signalled = 0;
        using var terminate = PosixSignalRegistration.Create(PosixSignal.SIGTERM, _ => Volatile.Write(ref signalled, 1));
        using var interrupt = PosixSignalRegistration.Create(PosixSignal.SIGINT, _ => Volatile.Write(ref signalled, 1));
        using var quit = PosixSignalRegistration.Create(PosixSignal.SIGQUIT, _ => Volatile.Write(ref signalled, 1));
        started?.Invoke(app);
        try
        {
            await app.WaitForShutdownAsync();
        }
        catch (Exception ex)
        {
            HostingLog.StopFailed(app.Logger, ex.GetType().Name);
            await DisposeQuietlyAsync(app);
            return ExitCodes.Failure;
        }

        await DisposeQuietlyAsync(app);
        if (Volatile.Read(ref signalled) == 0)
        {
            HostingLog.StoppedWithoutSignal(app.Logger);
            return ExitCodes.Failure;
        }

        return ExitCodes.Success;
    }

    private static async Task DisposeQuietlyAsync(WebApplication app)
    {
        try
        {
            await app.DisposeAsync();
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            // Already disposed, or a service failed to dispose: the process is ending either way.
        }
    }
}
