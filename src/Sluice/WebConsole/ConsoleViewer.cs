using Microsoft.EntityFrameworkCore;
using Sluice.Identity;
using Sluice.Storage;

namespace Sluice.WebConsole;

/// <summary>The signed-in person as the console shows them: their name, whether they operate the platform, their organizations.</summary>
public sealed record ConsoleViewer(Guid UserId, string Email, string Name, bool IsOperator, IReadOnlyList<OrgChoice> Organizations)
{
    public OrgChoice? Organization(Guid orgId) => Organizations.FirstOrDefault(o => o.Id == orgId);

    public static async Task<ConsoleViewer?> LoadAsync(SluiceDbContext db, Guid userId, CancellationToken cancellationToken)
    {
        var user = await db.Users.AsNoTracking().Where(u => u.Id == userId && u.ClosedAt == null)
            .Select(u => new { u.Email, u.DisplayName, u.IsPlatformOperator }).SingleOrDefaultAsync(cancellationToken);
        if (user is null)
        {
            return null;
        }

        var organizations = await db.Memberships.AsNoTracking().Where(m => m.UserId == userId)
            .Join(db.Organizations, m => m.OrganizationId, o => o.Id, (m, o) => new OrgChoice(o.Id, o.Name, m.Role))
            .ToListAsync(cancellationToken);
        return new ConsoleViewer(userId, user.Email, user.DisplayName ?? user.Email, user.IsPlatformOperator,
            [.. organizations.OrderBy(o => o.Name, StringComparer.OrdinalIgnoreCase).ThenBy(o => o.Id)]);
    }
}

/// <summary>An organization the viewer belongs to, with their role in it.</summary>
public sealed record OrgChoice(Guid Id, string Name, OrgRole Role)
{
    public bool Can(OrgAccess permission) => Permissions.Grants(Role, permission);
}
