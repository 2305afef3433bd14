using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using Sluice.Audit;
using Sluice.Files;
using Sluice.Hosting;
using Sluice.Identity;
using Sluice.Storage;

namespace Sluice.Privacy;

public sealed record RequestStaffAccess(string? Reason, double? Hours);

public sealed record StaffAccessGrantResponse(
    Guid Id, Guid OrganizationId, Guid OperatorUserId, string Reason, double Hours, string Status, DateTimeOffset RequestedAt,
    Guid? DecidedByUserId, DateTimeOffset? DecidedAt, DateTimeOffset? ExpiresAt, bool Active)
{
    public static StaffAccessGrantResponse From(StaffAccessGrant g, DateTimeOffset now) => new(
        g.Id, g.OrganizationId, g.OperatorUserId, g.Reason, g.DurationSeconds / 3600.0, g.Status, g.RequestedAt, g.DecidedByUserId, g.DecidedAt, g.ExpiresAt,
        g.Status == StaffAccessStatus.Approved && g.ExpiresAt > now);
}

public static class StaffAccessStatus
{
    public const string Requested = "requested";
    public const string Approved = "approved";
    public const string Denied = "denied";
    public const string Revoked = "revoked";
}

public sealed record StaffFileResponse(string Id, string Purpose, string Filename, long Bytes, DateTimeOffset CreatedAt, DateTimeOffset ExpiresAt);

/// <summary>
/// Staff read an organization's content-bearing resources only for debugging and only with its permission (C25): an
/// operator asks for a time-boxed grant with a reason, the organization's owner or admin approves it (or denies or
/// revokes it), and every read under it, and every read refused for want of one, is audited.
/// </summary>
public sealed class StaffAccessService(SluiceDbContext db, AuditLog audit, FileStore files, IOptions<PrivacyOptions> options, TimeProvider time)
{
    public async Task<StaffAccessGrantResponse> RequestAsync(Guid orgId, Guid operatorId, RequestStaffAccess request, CancellationToken cancellationToken)
    {
        if (!await db.Organizations.AnyAsync(o => o.Id == orgId, cancellationToken))
        {
            throw ApiProblem.NotFound("organization");
        }

        var errors = new FieldErrors();
        var reason = request.Reason?.Trim();
        if (string.IsNullOrEmpty(reason) || reason.Length > 500)
        {
            errors.Add("reason", "is required (at most 500 characters): the organization sees it when deciding");
        }

        var max = options.Value.MaxStaffAccess;
        if (request.Hours is not { } hours || hours <= 0 || hours > max.TotalHours)
        {
            errors.Add("hours", $"must be more than 0 and at most {max.TotalHours:0}");
        }

        if (errors.Any)
        {
            await audit.RefuseAsync("staff_access.request", $"org:{orgId}", orgId, cancellationToken);
            errors.ThrowIfAny();
        }

        var now = time.GetUtcNow();
        var grant = new StaffAccessGrant
        {
            Id = Guid.CreateVersion7(now),
            OrganizationId = orgId,
            OperatorUserId = operatorId,
            Reason = reason!,
            DurationSeconds = (long)TimeSpan.FromHours(request.Hours!.Value).TotalSeconds,
            Status = StaffAccessStatus.Requested,
            RequestedAt = now,
        };
        db.StaffAccessGrants.Add(grant);
        foreach (var owner in await db.Memberships.AsNoTracking().Where(m => m.OrganizationId == orgId && (m.Role == OrgRole.Owner || m.Role == OrgRole.Admin)).Select(m => m.UserId).ToListAsync(cancellationToken))
        {
            db.Notifications.Add(new Notification
            {
                Id = Guid.CreateVersion7(now),
                UserId = owner,
                OrganizationId = orgId,
                Kind = "staff_access_request",
                Subject = "An operator asks to access your organization's data",
                Body = $"Access request {grant.Id} for {request.Hours:0.#} hours. Approve or deny it at /api/v1/orgs/{orgId}/access-grants.",
                CreatedAt = now,
            });
        }

        audit.Record("staff_access.request", $"staff_access:{grant.Id}", orgId);
        await db.SaveChangesAsync(cancellationToken);
        return StaffAccessGrantResponse.From(grant, now);
    }

    /// <summary>Every grant on the platform, newest request first (operators' view; <paramref name="activeOnly"/> keeps the approved, unexpired ones).</summary>
    public async Task<List<StaffAccessGrantResponse>> ListAllAsync(bool activeOnly, CancellationToken cancellationToken)
    {
        var now = time.GetUtcNow();
        return (await db.StaffAccessGrants.AsNoTracking().ToListAsync(cancellationToken))
            .Select(g => StaffAccessGrantResponse.From(g, now)).Where(g => !activeOnly || g.Active)
            .OrderByDescending(g => g.RequestedAt).ToList();
    }

    public async Task<List<StaffAccessGrantResponse>> ListAsync(Guid orgId, CancellationToken cancellationToken)
    {
        var now = time.GetUtcNow();
        return (await db.StaffAccessGrants.AsNoTracking().Where(g => g.OrganizationId == orgId).ToListAsync(cancellationToken))
            .OrderByDescending(g => g.RequestedAt).Select(g => StaffAccessGrantResponse.From(g, now)).ToList();
    }

    /// <summary>Approve, deny or revoke, by a person who owns or administers the organization.</summary>
    public async Task<StaffAccessGrantResponse> DecideAsync(Guid orgId, Guid grantId, Guid? deciderId, string decision, CancellationToken cancellationToken)
    {
        if (deciderId is not { } decider)
        {
            throw ApiProblem.Forbidden("Access to your data is granted by a person: sign in as an owner or admin, not with an API key.");
        }

        var grant = await db.StaffAccessGrants.SingleOrDefaultAsync(g => g.Id == grantId && g.OrganizationId == orgId, cancellationToken)
            ?? throw ApiProblem.NotFound("access grant");
        var now = time.GetUtcNow();
        var allowed = decision == StaffAccessStatus.Revoked
            ? grant.Status is StaffAccessStatus.Approved or StaffAccessStatus.Requested
            : grant.Status == StaffAccessStatus.Requested;
        if (!allowed)
        {
            throw ApiProblem.Conflict("status", $"the grant is {grant.Status}");
        }

        grant.Status = decision;
        grant.DecidedByUserId = decider;
        grant.DecidedAt = now;
        grant.ExpiresAt = decision == StaffAccessStatus.Approved ? now + TimeSpan.FromSeconds(grant.DurationSeconds) : decision == StaffAccessStatus.Revoked ? now : null;
        audit.Record($"staff_access.{(decision == StaffAccessStatus.Approved ? "approve" : decision == StaffAccessStatus.Denied ? "deny" : "revoke")}", $"staff_access:{grant.Id}", orgId);
        await db.SaveChangesAsync(cancellationToken);
        return StaffAccessGrantResponse.From(grant, now);
    }

    public async Task<List<StaffFileResponse>> FilesAsync(Guid orgId, Guid operatorId, CancellationToken cancellationToken)
    {
        var grant = await ActiveGrantAsync(orgId, operatorId, "files", cancellationToken);
        var now = time.GetUtcNow();
        var list = (await db.Files.AsNoTracking().Where(f => f.OrganizationId == orgId && f.ExpiresAt > now).ToListAsync(cancellationToken))
            .OrderBy(f => f.CreatedAt).Select(f => new StaffFileResponse(f.PublicId, f.Purpose, f.Filename, f.Bytes, f.CreatedAt, f.ExpiresAt)).ToList();
        audit.Record("staff_access.read", $"staff_access:{grant.Id} files", orgId);
        await db.SaveChangesAsync(cancellationToken);
        return list;
    }

    /// <summary>Opens a file's decrypted content for an operator holding an active grant; the read is audited first.</summary>
    public async Task<(StoredFile File, Stream Content)> OpenFileAsync(Guid orgId, Guid operatorId, string fileId, CancellationToken cancellationToken)
    {
        var grant = await ActiveGrantAsync(orgId, operatorId, fileId, cancellationToken);
        var now = time.GetUtcNow();
        var file = StoredFile.TryParseId(fileId, out var id)
            ? await db.Files.AsNoTracking().FirstOrDefaultAsync(f => f.Id == id && f.OrganizationId == orgId && f.ExpiresAt > now, cancellationToken)
            : null;
        if (file is null)
        {
            throw ApiProblem.NotFound("file");
        }

        audit.Record("staff_access.read", $"staff_access:{grant.Id} {file.PublicId}", orgId);
        await db.SaveChangesAsync(cancellationToken);
        try
        {
            return (file, files.OpenRead(file.Id, file.OrganizationId));
        }
        catch (FileNotFoundException)
        {
            throw ApiProblem.NotFound("file content");
        }
    }

    private async Task<StaffAccessGrant> ActiveGrantAsync(Guid orgId, Guid operatorId, string what, CancellationToken cancellationToken)
    {
        var now = time.GetUtcNow();
        var grant = await db.StaffAccessGrants.AsNoTracking()
            .Where(g => g.OrganizationId == orgId && g.OperatorUserId == operatorId && g.Status == StaffAccessStatus.Approved && g.ExpiresAt > now)
            .OrderByDescending(g => g.ExpiresAt).FirstOrDefaultAsync(cancellationToken);
        if (grant is null)
        {
            await audit.RefuseAsync("staff_access.read", $"org:{orgId} {(what.Length > 40 ? what[..40] : what)} no_grant", orgId, cancellationToken);
            throw ApiProblem.Forbidden("Reading an organization's content needs an active access grant that the organization approved: request one at POST /api/v1/admin/orgs/{orgId}/access-grants.");
        }

        return grant;
    }
}
