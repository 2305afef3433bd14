using Microsoft.AspNetCore.DataProtection;
using Microsoft.Extensions.Options;
using Sluice.Audit;
using Sluice.Batches;
using Sluice.Billing;
using Sluice.Compute;
using Sluice.Compute.Telemetry;
using Sluice.Deployments;
using Sluice.Files;
using Sluice.Gateway;
using Sluice.Health;
using Sluice.Identity;
using Sluice.Privacy;
using Sluice.Storage;
using Sluice.WebConsole;

namespace Sluice.Hosting;

/// <summary>The composition root of <c>sluice serve</c>: settings, logging, modules and endpoints.</summary>
internal static class SluiceApp
{
    public static WebApplicationBuilder CreateBuilder(string[] hostArguments, CommandLineSettings commandLine)
    {
        // The slim builder leaves out what Sluice does not use (IIS integration, HTTP/3 over QUIC, static web assets),
        // which the process would otherwise load and keep resident. HTTPS listen URLs still work (below).
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions
        {
            Args = hostArguments,
            ContentRootPath = ContentRoot(hostArguments),
        });

        builder.Configuration.UseSluiceSources(
            builder.Environment.ContentRootPath, builder.Environment.EnvironmentName, commandLine, hostArguments);

        var server = SettingsValidator<ServerOptions>.BindNow(builder.Configuration, ServerOptions.Section, () => new ServerOptions());
        ConfigureLogging(builder.Logging, server.LogFormat);
        builder.WebHost.UseKestrelHttpsConfiguration();
        builder.WebHost.UseUrls(server.ListenUrls());
        builder.WebHost.ConfigureKestrel(kestrel => kestrel.AddServerHeader = false);

        builder.Services.AddSingleton(TimeProvider.System);
        builder.Services.AddSettings<ServerOptions>(ServerOptions.Section);
        builder.Services.AddOptions<HostOptions>()
            .Configure<IOptions<ServerOptions>>((host, settings) =>
            {
                host.ShutdownTimeout = settings.Value.ShutdownTimeout;

                // No background service stops the host: each is a SupervisedService that restarts its loop with backoff
                // and reports it in /readyz. Ignore is the backstop for anything that still escapes.
                host.BackgroundServiceExceptionBehavior = BackgroundServiceExceptionBehavior.Ignore;
            });
        builder.Services.AddSingleton<BackgroundHealth>();
        builder.Services.AddProblemDetails();
        builder.Services.AddExceptionHandler<ApiProblemHandler>();
        builder.Services.Configure<RouteHandlerOptions>(o => o.ThrowOnBadRequest = true);

        builder.Services.AddStorage();
        builder.Services.AddAudit();
        builder.Services.AddGateway();
        builder.Services.AddBilling();
        builder.Services.AddFiles();
        builder.Services.AddBatches();
        builder.Services.AddSluiceIdentity();
        builder.Services.AddPrivacy();
        builder.Services.AddTelemetry();
        builder.Services.AddCompute();
        builder.Services.AddDeployments();
        builder.Services.AddSluiceHealth();
        builder.Services.AddWebConsole();

        // Nothing in Sluice protects data with ASP.NET's key ring (sessions and keys are its own), but authentication
        // registers it, and its start-up service writes a key file under the user's home, outside the data directory.
        // Keys stay in memory instead, and the start-up service goes (matched by name: it is internal to ASP.NET) once
        // every module has registered its services.
        builder.Services.AddDataProtection().UseEphemeralDataProtectionProvider();
        foreach (var keyRingStartup in builder.Services.Where(service => service.ServiceType == typeof(IHostedService)
            && service.ImplementationType?.FullName == "Microsoft.AspNetCore.DataProtection.Internal.DataProtectionHostedService").ToList())
        {
            builder.Services.Remove(keyRingStartup);
        }

        return builder;
    }

    public static WebApplication Build(WebApplicationBuilder builder)
    {
        var app = builder.Build();
        app.UseRequestIds(); // first, so every answer (a 5xx from the exception handler too) carries x-request-id
        app.UseExceptionHandler(new ExceptionHandlerOptions
        {
            // ApiProblemHandler logs what needs logging (the exception type, never its message, which may quote input).
            SuppressDiagnosticsCallback = _ => true,
        });
        app.UseStatusCodePages();
        app.UseWebConsole(); // inside the status-code pages: the console's errors are pages, not ProblemDetails
        app.UseMiddleware<V1StatusCodes>(); // inside the status-code pages: /v1 errors without a body get OpenAI's shape
        app.UseMiddleware<ApiBodyLimit>();

        // The OpenAI-compatible API takes API keys only: the gate checks the key and its scopes in one step and runs those
        // endpoints itself. Everything else goes on to the general authentication (session cookie or key) and
        // authorization (policies, organization roles).
        app.UseMiddleware<ApiKeyGate>();
        app.UseAuthentication();
        app.UseAuthorization();
        app.MapSluiceHealth();
        app.MapIdentity();
        app.MapAudit();
        app.MapGateway();
        app.MapGatewayAdmin();
        app.MapBilling();
        app.MapFiles();
        app.MapBatches();
        app.MapPrivacy();
        app.MapTelemetry();
        app.MapCompute();
        app.MapDeployments();
        app.MapWebConsole();
        return app;
    }

    public static void ConfigureLogging(ILoggingBuilder logging, LogFormat format)
    {
        logging.ClearProviders();

        // A failure to start is reported by the command line as one plain line (Cli/StartupFailure); the host's own
        // report of it would repeat it with a stack trace. Critical still shows a background service that crashes.
        logging.AddFilter("Microsoft.Extensions.Hosting.Internal.Host", LogLevel.Critical);
        logging.Services.AddSingleton<Microsoft.Extensions.Options.IPostConfigureOptions<LoggerFilterOptions>, RequestUrlLogGuard>();
        if (format == LogFormat.Json)
        {
            logging.AddJsonConsole(json =>
            {
                json.UseUtcTimestamp = true;
                json.TimestampFormat = "yyyy-MM-ddTHH:mm:ss.fffZ";
            });
        }
        else
        {
            logging.AddSimpleConsole(console =>
            {
                console.SingleLine = true;
                console.UseUtcTimestamp = true;
                console.TimestampFormat = "yyyy-MM-ddTHH:mm:ss.fffZ ";
            });
        }
    }

    private static string ContentRoot(string[] hostArguments)
    {
        // Hosting tools (WebApplicationFactory) pass --contentRoot=DIR; otherwise settings ship beside the binary.
        const string Prefix = "--contentRoot=";
        var given = hostArguments.FirstOrDefault(a => a.StartsWith(Prefix, StringComparison.OrdinalIgnoreCase));
        return given is null ? AppContext.BaseDirectory : given[Prefix.Length..];
    }
}
