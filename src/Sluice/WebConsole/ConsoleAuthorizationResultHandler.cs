using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.Authorization.Policy;
using Sluice.Identity;

namespace Sluice.WebConsole;

/// <summary>
/// On console pages, a person who is not signed in (or whose session expired) is sent to sign in and then back to the
/// page they asked for; one who may not see a page gets a 403 page, and an organization they do not belong to is a 404
/// page, as the API answers. Everything else is the API's handler.
/// </summary>
internal sealed class ConsoleAuthorizationResultHandler(ProblemAuthorizationResultHandler api, ConsoleErrorPages pages) : IAuthorizationMiddlewareResultHandler
{
    public async Task HandleAsync(RequestDelegate next, HttpContext context, AuthorizationPolicy policy, PolicyAuthorizationResult authorizeResult)
    {
        if (authorizeResult.Succeeded || !pages.Serves(context))
        {
            await api.HandleAsync(next, context, policy, authorizeResult);
            return;
        }

        if (authorizeResult.Challenged)
        {
            // A post cannot be replayed after signing in: come back to the page itself.
            var back = HttpMethods.IsGet(context.Request.Method)
                ? context.Request.Path + context.Request.QueryString
                : context.Request.Path.ToString();
            context.Response.Redirect("/signin?returnUrl=" + Uri.EscapeDataString(ConsolePaths.SafeReturnUrl(back)));
            return;
        }

        var hidden = policy.Requirements.OfType<OrgAccessRequirement>().Any() && !OrgAccessHandler.CallerBelongsToOrg(context);
        await pages.WriteAsync(context, hidden ? StatusCodes.Status404NotFound : StatusCodes.Status403Forbidden);
    }
}
