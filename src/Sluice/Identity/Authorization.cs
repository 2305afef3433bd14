using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.Authorization.Policy;
using Microsoft.AspNetCore.Mvc;
using Microsoft.EntityFrameworkCore;
using Sluice.Storage;

namespace Sluice.Identity;

public static class Policies
{
    /// <summary>A signed-in person (session), not a key.</summary>
    public const string User = "user";

    /// <summary>A signed-in platform operator.</summary>
    public const string Operator = "operator";

    /// <summary>Anyone authenticated: a person or a key.</summary>
    public const string Authenticated = "authenticated";

    public static string Org(OrgAccess permission) => Permissions.PolicyName(permission);
}

/// <summary>The caller holds <see cref="Permission"/> in the organization named by the route's <c>orgId</c>.</summary>
public sealed record OrgAccessRequirement(OrgAccess Permission) : IAuthorizationRequirement;

// Authorization resolves every handler for every request it sees; the database context is taken from the request's
// services only when a person's membership must be looked up, so key-authenticated requests never rent one from the pool.
internal sealed class OrgAccessHandler : AuthorizationHandler<OrgAccessRequirement>
{
    protected override async Task HandleRequirementAsync(AuthorizationHandlerContext context, OrgAccessRequirement requirement)
    {
        if (context.Resource is not HttpContext http)
        {
            return;
        }

        var caller = Caller.From(context.User);
        if (!TryGetOrganization(http, caller, out var orgId))
        {
            return;
        }

        if (caller.IsKey)
        {
            if (caller.KeyOrganizationId != orgId)
            {
                return;
            }

            // A key never carries more authority than the person who made it: its scopes AND its creator's current
            // role in the organization must both grant the permission. A key an admin reassigned to the organization
            // (no creator) is bounded by its scopes alone.
            var granted = Permissions.Grants(caller.KeyScopes, requirement.Permission);
            if (granted && caller.UserId is { } creator)
            {
                var creatorRole = await MembershipRoleAsync(http, http.RequestServices.GetRequiredService<SluiceDbContext>(), orgId, creator);
                granted = creatorRole is { } current && Permissions.Grants(current, requirement.Permission);
            }

            Grant(context, requirement, http, granted);
            return;
        }

        if (caller.UserId is not { } userId)
        {
            return;
        }

        var db = http.RequestServices.GetRequiredService<SluiceDbContext>();
        if (await MembershipRoleAsync(http, db, orgId, userId) is { } role)
        {
            Grant(context, requirement, http, Permissions.Grants(role, requirement.Permission));
        }
    }

    /// <summary>True when the caller belongs to the org it asked about but lacks the permission: 403, not 404.</summary>
    public static bool CallerBelongsToOrg(HttpContext http) => http.Items.ContainsKey(BelongsKey);

    private const string BelongsKey = "sluice:belongs-to-org";

    private static void Grant(AuthorizationHandlerContext context, OrgAccessRequirement requirement, HttpContext http, bool granted)
    {
        http.Items[BelongsKey] = true;
        if (granted)
        {
            context.Succeed(requirement);
        }
    }

    /// <summary>
    /// The organization a request is about: the route's <c>{orgId}</c>, else an <c>orgId</c> query parameter, else, for
    /// an API key, the key's own organization (so <c>/api/v1/usage</c> works with just a key).
    /// </summary>
    public static bool TryGetOrganization(HttpContext http, Caller caller, out Guid orgId)
    {
        if (Guid.TryParse(http.GetRouteValue("orgId")?.ToString() ?? http.Request.Query["orgId"].ToString(), out orgId))
        {
            return true;
        }

        orgId = caller.KeyOrganizationId ?? Guid.Empty;
        return caller.KeyOrganizationId is not null;
    }

    /// <summary>
    /// The role of a person (a session's user, or the creator of a key) in the org, read once per request; null when
    /// they are not a member or their account is closed.
    /// </summary>
    public static async Task<OrgRole?> MembershipRoleAsync(HttpContext http, SluiceDbContext db, Guid orgId, Guid userId)
    {
        var itemKey = $"sluice:role:{orgId}";
        if (http.Items.TryGetValue(itemKey, out var cached))
        {
            return (OrgRole?)cached;
        }

        var role = await db.Memberships.AsNoTracking()
            .Where(m => m.OrganizationId == orgId && m.UserId == userId && db.Users.Any(u => u.Id == userId && u.ClosedAt == null))
            .Select(m => (OrgRole?)m.Role)
            .SingleOrDefaultAsync(http.RequestAborted);
        http.Items[itemKey] = role;
        return role;
    }
}

/// <summary>
/// Unauthenticated calls get 401 and forbidden ones 403, both as ProblemDetails. A caller with no place in an
/// organization gets 404, exactly as if it did not exist, so ids of other tenants reveal nothing; a member or key of
/// the organization whose role or scopes fall short gets 403.
/// </summary>
internal sealed class ProblemAuthorizationResultHandler(IProblemDetailsService problems) : IAuthorizationMiddlewareResultHandler
{
    private readonly AuthorizationMiddlewareResultHandler _default = new();

    /// <summary>The display name of the endpoint routing picks when a path exists but not for the method.</summary>
    internal const string Http405Endpoint = "405 HTTP Method Not Supported";

    public async Task HandleAsync(RequestDelegate next, HttpContext context, AuthorizationPolicy policy, PolicyAuthorizationResult authorizeResult)
    {
        if (!authorizeResult.Succeeded && Gateway.OpenAiError.IsV1(context) && context.GetEndpoint() is null or { DisplayName: Http405Endpoint })
        {
            // The /v1 endpoints are ApiKeyGate's and never get here; what does is an unknown path (no endpoint) or a wrong
            // method (routing's 405 endpoint), answered 404 or 405 in OpenAI's shape whoever asks (Gateway/V1StatusCodes),
            // not a 401 about signing in. Any other endpoint keeps its 401/403: never fail open.
            await next(context);
            return;
        }

        ProblemDetails? problem = null;
        if (authorizeResult.Challenged)
        {
            problem = new ProblemDetails
            {
                Status = StatusCodes.Status401Unauthorized,
                Title = "Not signed in.",
                Detail = "Sign in at /api/v1/auth/login, or send an API key as 'Authorization: Bearer sk-sluice-…'.",
            };
            context.Response.Headers.WWWAuthenticate = "Bearer";
        }
        else if (authorizeResult.Forbidden)
        {
            problem = policy.Requirements.OfType<OrgAccessRequirement>().FirstOrDefault() is { } org
                ? OrgAccessHandler.CallerBelongsToOrg(context)
                    ? new ProblemDetails { Status = StatusCodes.Status403Forbidden, Title = "Not allowed.", Detail = $"Your role or key scopes do not allow {org.Permission} in this organization." }
                    : new ProblemDetails { Status = StatusCodes.Status404NotFound, Title = "Not found.", Detail = "No organization with that id exists here." }
                : new ProblemDetails { Status = StatusCodes.Status403Forbidden, Title = "Not allowed.", Detail = "This needs a platform operator, or a signed-in person rather than a key." };
        }

        if (problem is null)
        {
            await _default.HandleAsync(next, context, policy, authorizeResult);
            return;
        }

        context.Response.StatusCode = problem.Status!.Value;
        await problems.WriteAsync(new ProblemDetailsContext { HttpContext = context, ProblemDetails = problem });
    }
}
