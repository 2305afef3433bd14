using System.Text.Encodings.Web;
using Sluice.Hosting;

namespace Sluice.WebConsole;

/// <summary>
/// A console request that ends in an error without a body (a 404 from routing, a 403 from authorization, a form refused
/// by <see cref="ConsoleFormTokens"/>) or with an exception gets a page in the console's look, never JSON.
/// </summary>
internal sealed class ConsoleErrorPages : IErrorPageWriter
{
    public bool Serves(HttpContext context) => ConsolePaths.IsConsole(context.Request.Path);

    public async Task WriteAsync(HttpContext context, int status, string? detail = null)
    {
        var (title, explanation) = Describe(status);
        context.Response.StatusCode = status;
        context.Response.ContentType = "text/html; charset=utf-8";
        var html = HtmlEncoder.Default;
        var signedIn = context.User.Identity?.IsAuthenticated == true;
        await context.Response.WriteAsync($$"""
            <!DOCTYPE html>
            <html lang="en">
            <head>
            <meta charset="utf-8">
            <meta name="viewport" content="width=device-width, initial-scale=1">
            <title>{{html.Encode(title)}} · Sluice</title>
            <link rel="stylesheet" href="{{ConsoleAssets.Url("console.css")}}">
            </head>
            <body class="error-page">
            <main class="error-box" id="main">
            <p class="error-code">{{status}}</p>
            <h1>{{html.Encode(title)}}</h1>
            <p>{{html.Encode(explanation)}}</p>
            {{(detail is null ? "" : $"<p class=\"error-detail\">{html.Encode(detail)}</p>")}}
            <p><a class="button" href="/">{{(signedIn ? "Back to the console" : "Sign in")}}</a></p>
            </main>
            </body>
            </html>
            """, context.RequestAborted);
    }

    private static (string Title, string Explanation) Describe(int status) => status switch
    {
        StatusCodes.Status400BadRequest => ("The form was not accepted",
            "It may have been sent twice, been open too long, or come from another site. Go back, reload the page and try again."),
        StatusCodes.Status403Forbidden => ("You do not have access to this page",
            "Your role does not allow it. Ask an owner or admin of the organization, or a platform operator."),
        StatusCodes.Status404NotFound => ("Page not found", "There is nothing at this address, or you do not have access to it."),
        StatusCodes.Status405MethodNotAllowed => ("Not allowed here", "This page cannot be used that way. Go back and use the page's own buttons."),
        StatusCodes.Status413PayloadTooLarge => ("Too large", "What you sent is larger than this page takes."),
        StatusCodes.Status429TooManyRequests => ("Too many attempts", "Wait a little, then try again."),
        StatusCodes.Status503ServiceUnavailable => ("Temporarily unavailable", "The service cannot reach its database right now; nothing was changed. Try again shortly."),
        >= 500 => ("Something went wrong on our side", "The failure was logged. Try again later."),
        _ => ("The request could not be completed", "Go back and try again."),
    };
}

/// <summary>Turns the console's body-less error answers into pages (inside the status-code pages, which then see a body).</summary>
internal sealed class ConsoleErrorPagesMiddleware(RequestDelegate next, ConsoleErrorPages pages)
{
    public async Task InvokeAsync(HttpContext context)
    {
        await next(context);
        var response = context.Response;
        if (response.StatusCode >= 400 && !response.HasStarted && response.ContentLength is null && string.IsNullOrEmpty(response.ContentType)
            && pages.Serves(context))
        {
            await pages.WriteAsync(context, response.StatusCode);
        }
    }
}
