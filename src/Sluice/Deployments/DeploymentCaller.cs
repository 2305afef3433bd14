using Microsoft.EntityFrameworkCore;
using Sluice.Hosting;
using Sluice.Identity;
using Sluice.Storage;

namespace Sluice.Deployments;

/// <summary>
/// Who manages deployments: a platform operator (every organization's; the CLI acts as one), or a signed-in member of
/// the deployment's organization (owners and admins change, every member reads).
/// </summary>
public sealed record DeploymentCaller(bool IsOperator, Guid? UserId)
{
    public static readonly DeploymentCaller Cli = new(true, null);

    public static DeploymentCaller From(HttpContext http)
    {
        var caller = http.Caller();
        return new DeploymentCaller(caller.IsOperator, caller.IsKey ? null : caller.UserId);
    }

    /// <summary>
    /// Passes for an operator or a member of <paramref name="organizationId"/> (an owner or admin when
    /// <paramref name="manage"/>). A member with a lesser role gets 403; anyone else 404, as if the thing did not
    /// exist, so other tenants' ids reveal nothing.
    /// </summary>
    public async Task EnsureAsync(SluiceDbContext db, Guid? organizationId, bool manage, string what, CancellationToken cancellationToken)
    {
        if (IsOperator)
        {
            return;
        }

        if (organizationId is not { } org || UserId is not { } user)
        {
            throw ApiProblem.NotFound(what);
        }

        var role = await db.Memberships.AsNoTracking()
            .Where(m => m.OrganizationId == org && m.UserId == user && db.Users.Any(u => u.Id == user && u.ClosedAt == null))
            .Select(m => (OrgRole?)m.Role)
            .SingleOrDefaultAsync(cancellationToken);
        if (role is null)
        {
            throw ApiProblem.NotFound(what);
        }

        if (manage && role is not (OrgRole.Owner or OrgRole.Admin))
        {
            throw ApiProblem.Forbidden("Managing an organization's deployments needs its owner or admin role.");
        }
    }
}
