using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.Mvc;
using Microsoft.AspNetCore.Mvc.Filters;
using Microsoft.AspNetCore.Mvc.RazorPages;
using Sluice.Hosting;
using Sluice.Identity;
using Sluice.Storage;

namespace Sluice.WebConsole;

/// <summary>
/// The base of every console page: signed-in people only (a page for visitors adds [AllowAnonymous]), the viewer and their
/// organizations loaded for the layout, and <see cref="TryAsync"/>, which turns a service's refusal into field errors
/// shown beside the fields, keeping what the person typed.
/// </summary>
[Authorize(Policy = Policies.User)]
public abstract class ConsolePage : PageModel
{
    /// <summary>The signed-in person, or null on a visitor's page.</summary>
    public ConsoleViewer? Viewer { get; private set; }

    /// <summary>The title in the browser tab and the page's heading.</summary>
    public abstract string Title { get; }

    /// <summary>A one-line confirmation shown above the page ("Key revoked."), set by a handler after it succeeded.</summary>
    public string? Notice { get; set; }

    /// <summary>The organization the page is about, for the menu and the switcher; null outside one.</summary>
    public virtual OrgChoice? CurrentOrganization => null;

    public Caller Caller => HttpContext.Caller();

    /// <summary>The signed-in person's id (only on pages that require signing in).</summary>
    public Guid UserId => Caller.UserId ?? throw new InvalidOperationException("This page needs a signed-in person.");

    protected SluiceDbContext Db => HttpContext.RequestServices.GetRequiredService<SluiceDbContext>();

    public override async Task OnPageHandlerExecutionAsync(PageHandlerExecutingContext context, PageHandlerExecutionDelegate next)
    {
        if (Caller.UserId is { } userId && User.HasClaim(c => c.Type == Caller.SessionClaim))
        {
            Viewer = await ConsoleViewer.LoadAsync(Db, userId, HttpContext.RequestAborted);
        }

        var result = await OnLoadedAsync(context);
        if (result is not null)
        {
            context.Result = result;
            return;
        }

        await next();
    }

    /// <summary>Runs after the viewer is loaded and before the handler; a result ends the request (a 404 page, say).</summary>
    protected virtual Task<IActionResult?> OnLoadedAsync(PageHandlerExecutingContext context) => Task.FromResult<IActionResult?>(null);

    /// <summary>
    /// Runs a service call. A refusal with field errors (400, 409, 401, 402, 429) becomes errors beside those fields (or
    /// above the form) and false; the page then re-renders with what was typed. Other refusals (403, 404) propagate and
    /// become error pages.
    /// </summary>
    protected async Task<bool> TryAsync(Func<Task> action)
    {
        if (!ModelState.IsValid)
        {
            return false;
        }

        try
        {
            await action();
            return true;
        }
        catch (ApiProblemException problem) when (problem.Status is 400 or 401 or 402 or 409 or 413 or 422 or 429)
        {
            AddErrors(problem);
            return false;
        }
        catch (Billing.InsufficientFundsException)
        {
            ModelState.AddModelError(string.Empty, "The wallet does not hold enough funds; top it up.");
            return false;
        }
    }

    /// <summary>Shows a service's refusal: each field error beside its field (the form field's name is the API's), the rest on top.</summary>
    protected void AddErrors(ApiProblemException problem)
    {
        if (problem.Errors is { Count: > 0 } errors)
        {
            foreach (var (field, messages) in errors)
            {
                foreach (var message in messages)
                {
                    ModelState.AddModelError(field, message);
                }
            }

            return;
        }

        ModelState.AddModelError(string.Empty, problem.Message);
    }

    /// <summary>A 403 page: the person is signed in but may not do this.</summary>
    protected static IActionResult Denied() => new StatusCodeResult(StatusCodes.Status403Forbidden);

    /// <summary>A 404 page.</summary>
    protected static IActionResult Missing() => new StatusCodeResult(StatusCodes.Status404NotFound);
}

/// <summary>A page anyone may open (sign in, sign up).</summary>
[AllowAnonymous]
public abstract class VisitorPage : ConsolePage;

/// <summary>
/// A page of one organization, at <c>/orgs/{orgId}/…</c>. Its own [OrgPermission] decides who may open it (a stranger
/// gets a 404 page, a member without the role a 403 page); <see cref="Can"/> decides which of its buttons to show and
/// is checked again by each handler that changes something.
/// </summary>
public abstract class OrgPage : ConsolePage
{
    public Guid OrgId => Guid.TryParse(RouteData.Values["orgId"]?.ToString(), out var id) ? id : Guid.Empty;

    public override OrgChoice? CurrentOrganization => Viewer?.Organization(OrgId);

    /// <summary>The organization (the viewer is a member: authorization checked it).</summary>
    public OrgChoice Organization => CurrentOrganization ?? throw new InvalidOperationException("The viewer is not a member of this organization.");

    public bool Can(OrgAccess permission) => CurrentOrganization?.Can(permission) == true;

    /// <summary>The path of a page of this organization: <c>OrgPath("/keys")</c> is <c>/orgs/{id}/keys</c>.</summary>
    public string OrgPath(string page = "") => $"/orgs/{OrgId}{page}";

    protected override Task<IActionResult?> OnLoadedAsync(PageHandlerExecutingContext context) =>
        Task.FromResult<IActionResult?>(CurrentOrganization is null ? Missing() : null);
}

/// <summary>A platform operator's page, under <c>/admin</c>.</summary>
[Authorize(Policy = Policies.Operator)]
public abstract class OperatorPage : ConsolePage;

/// <summary>Only people whose role in the route's organization grants <paramref name="permission"/> may open the page.</summary>
[AttributeUsage(AttributeTargets.Class, AllowMultiple = true, Inherited = true)]
public sealed class OrgPermissionAttribute(OrgAccess permission) : AuthorizeAttribute(Policies.Org(permission))
{
    public OrgAccess Permission { get; } = permission;
}
