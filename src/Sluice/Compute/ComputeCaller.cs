using Microsoft.EntityFrameworkCore;
using Sluice.Hosting;
using Sluice.Identity;
using Sluice.Storage;

namespace Sluice.Compute;

/// <summary>
/// Who manages machines: a platform operator (every machine and the platform pool; the CLI acts as one), or a signed-in
/// owner or admin of an organization (that organization's private fleet only).
/// </summary>
public sealed record ComputeCaller(bool IsOperator, Guid? UserId)
{
    public static readonly ComputeCaller Cli = new(true, null);

    public static ComputeCaller From(HttpContext http)
    {
        var caller = http.Caller();
        return new ComputeCaller(caller.IsOperator, caller.IsKey ? null : caller.UserId);
    }

    /// <summary>
    /// Passes for an operator, or an owner/admin of <paramref name="organizationId"/>. A member with a lesser role gets
    /// 403; anyone else 404 (<paramref name="what"/>), as if the thing did not exist, so other tenants' ids reveal nothing.
    /// </summary>
    public async Task EnsureAdminAsync(SluiceDbContext db, Guid? organizationId, string what, CancellationToken cancellationToken)
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

        if (role is not (OrgRole.Owner or OrgRole.Admin))
        {
            throw ApiProblem.Forbidden("Managing an organization's machines needs its owner or admin role.");
        }
    }
}
