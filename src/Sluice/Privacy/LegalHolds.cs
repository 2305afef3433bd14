using Microsoft.EntityFrameworkCore;
using Sluice.Audit;
using Sluice.Hosting;
using Sluice.Storage;

namespace Sluice.Privacy;

/// <summary>What the active legal holds cover, as the sweepers need it.</summary>
public sealed record HoldSet(IReadOnlySet<Guid> Organizations, IReadOnlySet<Guid> Users, IReadOnlySet<string> Classes)
{
    public static readonly HoldSet None = new(new HashSet<Guid>(), new HashSet<Guid>(), new HashSet<string>());

    public bool CoversClass(string retentionClass) => Classes.Contains(retentionClass);

    /// <summary>
    /// People covered by a hold: those held by name, and the members of held organizations (an organization's hold
    /// keeps its people's records too).
    /// </summary>
    public async Task<HashSet<Guid>> PeopleAsync(SluiceDbContext db, CancellationToken cancellationToken)
    {
        var people = new HashSet<Guid>(Users);
        if (Organizations.Count > 0)
        {
            var orgs = Organizations.ToList();
            people.UnionWith(await db.Memberships.AsNoTracking().Where(m => orgs.Contains(m.OrganizationId)).Select(m => m.UserId).ToListAsync(cancellationToken));
        }

        return people;
    }

    public static async Task<HoldSet> ActiveAsync(SluiceDbContext db, CancellationToken cancellationToken)
    {
        var holds = await db.LegalHolds.AsNoTracking().Where(h => h.ReleasedAt == null).ToListAsync(cancellationToken);
        return holds.Count == 0
            ? None
            : new HoldSet(
                holds.Where(h => h.OrganizationId is not null).Select(h => h.OrganizationId!.Value).ToHashSet(),
                holds.Where(h => h.UserId is not null).Select(h => h.UserId!.Value).ToHashSet(),
                holds.Where(h => h.RetentionClass is not null).Select(h => h.RetentionClass!).ToHashSet(StringComparer.Ordinal));
    }
}

public sealed record PlaceHoldRequest(string? Scope, Guid? OrganizationId, Guid? UserId, string? RetentionClass, string? Reason);

public sealed record ReleaseHoldRequest(string? Reason);

public sealed record LegalHoldResponse(
    Guid Id, string Scope, Guid? OrganizationId, Guid? UserId, string? RetentionClass, string Reason, string PlacedBy, DateTimeOffset PlacedAt,
    string? ReleasedBy, DateTimeOffset? ReleasedAt, string? ReleaseReason)
{
    public static LegalHoldResponse From(LegalHold h) =>
        new(h.Id, h.Scope, h.OrganizationId, h.UserId, h.RetentionClass, h.Reason, h.PlacedBy, h.PlacedAt, h.ReleasedBy, h.ReleasedAt, h.ReleaseReason);
}

/// <summary>Operators place and release legal holds; every placement, release and refusal is audited.</summary>
public sealed class LegalHoldService(SluiceDbContext db, AuditLog audit, AuditActor actor, TimeProvider time)
{
    public async Task<List<LegalHoldResponse>> ListAsync(bool includeReleased, CancellationToken cancellationToken)
    {
        var query = db.LegalHolds.AsNoTracking();
        if (!includeReleased)
        {
            query = query.Where(h => h.ReleasedAt == null);
        }

        return (await query.ToListAsync(cancellationToken)).OrderBy(h => h.PlacedAt).Select(LegalHoldResponse.From).ToList();
    }

    public async Task<LegalHoldResponse> PlaceAsync(PlaceHoldRequest request, CancellationToken cancellationToken)
    {
        var errors = new FieldErrors();
        var reason = request.Reason?.Trim();
        if (string.IsNullOrEmpty(reason))
        {
            errors.Add("reason", "is required: name the matter or case the hold is for");
        }
        else if (reason.Length > 500)
        {
            errors.Add("reason", "must be at most 500 characters");
        }

        switch (request.Scope)
        {
            case "org":
                if (request.OrganizationId is not { } orgId)
                {
                    errors.Add("organizationId", "is required for an org hold");
                }
                else if (!await db.Organizations.AnyAsync(o => o.Id == orgId, cancellationToken))
                {
                    errors.Add("organizationId", "names no organization");
                }

                break;
            case "user":
                if (request.UserId is not { } userId)
                {
                    errors.Add("userId", "is required for a user hold");
                }
                else if (!await db.Users.AnyAsync(u => u.Id == userId, cancellationToken))
                {
                    errors.Add("userId", "names no account");
                }

                break;
            case "class":
                if (request.RetentionClass is null || !Privacy.RetentionClass.All.Contains(request.RetentionClass))
                {
                    errors.Add("retentionClass", $"must be one of: {string.Join(", ", Privacy.RetentionClass.All)}");
                }

                break;
            default:
                errors.Add("scope", "must be one of: org, user, class");
                break;
        }

        if (errors.Any)
        {
            await audit.RefuseAsync("legal_hold.place", $"scope:{Truncate(request.Scope)}", request.OrganizationId, cancellationToken);
            errors.ThrowIfAny();
        }

        var now = time.GetUtcNow();
        var hold = new LegalHold
        {
            Id = Guid.CreateVersion7(now),
            Scope = request.Scope!,
            OrganizationId = request.Scope == "org" ? request.OrganizationId : null,
            UserId = request.Scope == "user" ? request.UserId : null,
            RetentionClass = request.Scope == "class" ? request.RetentionClass : null,
            Reason = reason!,
            PlacedBy = actor.Id,
            PlacedAt = now,
        };
        db.LegalHolds.Add(hold);
        audit.Record("legal_hold.place", $"legal_hold:{hold.Id} {hold.Scope}:{hold.OrganizationId?.ToString() ?? hold.UserId?.ToString() ?? hold.RetentionClass}", hold.OrganizationId);
        await db.SaveChangesAsync(cancellationToken);
        return LegalHoldResponse.From(hold);
    }

    public async Task<LegalHoldResponse> ReleaseAsync(Guid holdId, ReleaseHoldRequest request, CancellationToken cancellationToken)
    {
        var hold = await db.LegalHolds.SingleOrDefaultAsync(h => h.Id == holdId, cancellationToken) ?? throw ApiProblem.NotFound("legal hold");
        var reason = request.Reason?.Trim();
        if (string.IsNullOrEmpty(reason) || reason.Length > 500)
        {
            await audit.RefuseAsync("legal_hold.release", $"legal_hold:{holdId}", hold.OrganizationId, cancellationToken);
            throw ApiProblem.Invalid("reason", "is required (at most 500 characters): say why the hold ends");
        }

        if (hold.ReleasedAt is not null)
        {
            throw ApiProblem.Conflict("holdId", "this hold was already released");
        }

        hold.ReleasedAt = time.GetUtcNow();
        hold.ReleasedBy = actor.Id;
        hold.ReleaseReason = reason;
        audit.Record("legal_hold.release", $"legal_hold:{hold.Id}", hold.OrganizationId);
        await db.SaveChangesAsync(cancellationToken);
        return LegalHoldResponse.From(hold);
    }

    private static string Truncate(string? value) => value is null ? "(none)" : value.Length > 16 ? value[..16] : value;
}
