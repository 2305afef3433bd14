using Microsoft.AspNetCore.Antiforgery;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Sluice.Hosting;
using Sluice.Identity;

namespace Sluice.WebConsole;

/// <summary>
/// The web console: Razor Pages rendered on the server (WebConsole/Pages), served by <c>sluice serve</c> at <c>/</c> on
/// the same origin as <c>/api</c>, with its stylesheet and scripts embedded (WebConsole/Assets). Pages call the same
/// services as the API; see docs/console.md for how a page is built.
/// </summary>
public static class WebConsoleModule
{
    public static IServiceCollection AddWebConsole(this IServiceCollection services)
    {
        services.AddSettings<ConsoleOptions>(ConsoleOptions.Section);
        services.AddRazorPages(options => options.RootDirectory = "/WebConsole/Pages")
            .AddMvcOptions(mvc =>
            {
                mvc.MaxModelBindingCollectionSize = 1024;

                // The services validate (and name the fields); a form without an optional field is not an error here.
                mvc.SuppressImplicitRequiredAttributeForNonNullableReferenceTypes = true;
            });
        services.Configure<RouteOptions>(routes => routes.LowercaseUrls = true);

        // The console's form tokens replace ASP.NET's (ConsoleFormTokens says why); they need no cookie of their own.
        services.Replace(ServiceDescriptor.Singleton<IAntiforgery, ConsoleFormTokens>());
        services.AddSingleton<ConsoleErrorPages>();
        services.AddSingleton<IErrorPageWriter>(sp => sp.GetRequiredService<ConsoleErrorPages>());
        services.AddSingleton<ProblemAuthorizationResultHandler>();
        services.Replace(ServiceDescriptor.Singleton<Microsoft.AspNetCore.Authorization.IAuthorizationMiddlewareResultHandler, ConsoleAuthorizationResultHandler>());
        services.AddHostedService<ConsoleFormNonceSweeper>();
        return services;
    }

    /// <summary>The console's middleware: its security headers and its error pages (inside the status-code pages).</summary>
    public static IApplicationBuilder UseWebConsole(this IApplicationBuilder app) =>
        app.UseMiddleware<ConsoleSecurityHeaders>().UseMiddleware<ConsoleErrorPagesMiddleware>();

    public static IEndpointRouteBuilder MapWebConsole(this IEndpointRouteBuilder endpoints)
    {
        endpoints.MapConsoleAssets();
        endpoints.MapRazorPages();
        return endpoints;
    }
}
