using Microsoft.EntityFrameworkCore;
using Sluice.Audit;
using Sluice.Gateway;
using Sluice.Hosting;
using Sluice.Storage;

namespace Sluice.Privacy;

public static class ConsentPurposes
{
    /// <summary>Use of customer content to train models (C04): off unless granted.</summary>
    public const string Training = "training";

    /// <summary>Marketing and other non-essential communications (C35): off unless granted.</summary>
    public const string Marketing = "marketing";

    /// <summary>Analytics cookies in the console (C37): off unless granted, and refused by DNT: 1 or Sec-GPC: 1.</summary>
    public const string Analytics = "analytics";

    public static readonly IReadOnlyList<string> All = [Training, Marketing, Analytics];
}

public sealed record RecordConsentRequest(string? Purpose, bool? Granted);

/// <summary>A purpose's current choice: what was recorded, and whether it takes effect now (restrictions and browser signals can override a grant).</summary>
public sealed record ConsentState(string Purpose, bool Granted, bool Effective, int Version, DateTimeOffset? RecordedAt, string? OverriddenBy);

public sealed record ConsentHistoryItem(string Purpose, bool Granted, int Version, int PolicyVersion, string RecordedBy, DateTimeOffset RecordedAt);

public sealed record ConsentsResponse(IReadOnlyList<ConsentState> Current, IReadOnlyList<ConsentHistoryItem> History);

/// <summary>
/// Consent per person and per organization, versioned: each choice adds a row; the newest row is in force. Nothing
/// optional is on by default. An organization's training consent is mirrored onto the organization for the gateway.
/// </summary>
public sealed class ConsentService(
    SluiceDbContext db, AuditLog audit, AuditActor actor, PolicyPublisher policy, OrganizationPolicies organizations, TimeProvider time)
{
    /// <summary>Whether a request's browser signals refuse tracking (<c>DNT: 1</c>, <c>Sec-GPC: 1</c>).</summary>
    public static bool BrowserRefusesTracking(HttpRequest request) =>
        request.Headers["DNT"].ToString().Trim() == "1" || request.Headers["Sec-GPC"].ToString().Trim() == "1";

    public async Task<ConsentsResponse> ForUserAsync(Guid userId, bool browserRefuses, CancellationToken cancellationToken)
    {
        var restricted = await db.Users.AsNoTracking().Where(u => u.Id == userId).Select(u => u.ProcessingRestrictedAt).SingleAsync(cancellationToken) is not null;
        var rows = await db.ConsentRecords.AsNoTracking().Where(c => c.UserId == userId).ToListAsync(cancellationToken);
        return Describe(rows, ConsentPurposes.All, purpose =>
            restricted ? "processing_restriction" : purpose == ConsentPurposes.Analytics && browserRefuses ? "browser_signal" : null);
    }

    public async Task<ConsentsResponse> ForOrganizationAsync(Guid orgId, CancellationToken cancellationToken)
    {
        var rows = await db.ConsentRecords.AsNoTracking().Where(c => c.OrganizationId == orgId).ToListAsync(cancellationToken);
        return Describe(rows, [ConsentPurposes.Training], _ => null);
    }

    public async Task<ConsentsResponse> RecordForUserAsync(Guid userId, RecordConsentRequest request, bool browserRefuses, CancellationToken cancellationToken)
    {
        var (purpose, granted) = Validate(request, ConsentPurposes.All);
        if (granted && purpose == ConsentPurposes.Analytics && browserRefuses)
        {
            throw ApiProblem.Conflict("granted", "your browser sends Do Not Track or Global Privacy Control, which Sluice honours as a refusal of analytics; turn the signal off to consent");
        }

        var version = await db.ConsentRecords.Where(c => c.UserId == userId && c.Purpose == purpose).MaxAsync(c => (int?)c.Version, cancellationToken) ?? 0;
        db.ConsentRecords.Add(await NewRecordAsync(userId, null, purpose, granted, version + 1, cancellationToken));
        audit.Record(granted ? "consent.grant" : "consent.withdraw", $"user:{userId} {purpose} v{version + 1}");
        await db.SaveChangesAsync(cancellationToken);
        return await ForUserAsync(userId, browserRefuses, cancellationToken);
    }

    public async Task<ConsentsResponse> RecordForOrganizationAsync(Guid orgId, RecordConsentRequest request, CancellationToken cancellationToken)
    {
        var (purpose, granted) = Validate(request, [ConsentPurposes.Training]);
        var organization = await db.Organizations.SingleOrDefaultAsync(o => o.Id == orgId, cancellationToken) ?? throw ApiProblem.NotFound("organization");
        var version = await db.ConsentRecords.Where(c => c.OrganizationId == orgId && c.Purpose == purpose).MaxAsync(c => (int?)c.Version, cancellationToken) ?? 0;
        db.ConsentRecords.Add(await NewRecordAsync(null, orgId, purpose, granted, version + 1, cancellationToken));
        organization.TrainingConsent = granted;
        organization.UpdatedAt = time.GetUtcNow();
        audit.Record(granted ? "consent.grant" : "consent.withdraw", $"org:{orgId} {purpose} v{version + 1}", orgId);
        await db.SaveChangesAsync(cancellationToken);
        organizations.Forget(orgId);
        return await ForOrganizationAsync(orgId, cancellationToken);
    }

    /// <summary>
    /// Adds a withdrawal (a new version, recorded by <c>system</c>) for each purpose, in the caller's unit of work: what a
    /// restriction, an objection or an opt-out does to a person's consents.
    /// </summary>
    public async Task WithdrawAsync(Guid userId, IReadOnlyList<string> purposes, CancellationToken cancellationToken)
    {
        foreach (var purpose in purposes)
        {
            var version = await db.ConsentRecords.Where(c => c.UserId == userId && c.Purpose == purpose).MaxAsync(c => (int?)c.Version, cancellationToken) ?? 0;
            db.ConsentRecords.Add(await NewRecordAsync(userId, null, purpose, false, version + 1, cancellationToken, recordedBy: "system"));
        }
    }

    private async Task<ConsentRecord> NewRecordAsync(
        Guid? userId, Guid? orgId, string purpose, bool granted, int version, CancellationToken cancellationToken, string? recordedBy = null)
    {
        var now = time.GetUtcNow();
        return new ConsentRecord
        {
            Id = Guid.CreateVersion7(now),
            UserId = userId,
            OrganizationId = orgId,
            Purpose = purpose,
            Granted = granted,
            Version = version,
            PolicyVersion = await policy.CurrentVersionAsync(db, cancellationToken),
            RecordedBy = recordedBy ?? actor.Id,
            RecordedAt = now,
        };
    }

    private static (string Purpose, bool Granted) Validate(RecordConsentRequest request, IReadOnlyList<string> purposes)
    {
        var errors = new FieldErrors();
        if (request.Purpose is null || !purposes.Contains(request.Purpose))
        {
            errors.Add("purpose", $"must be one of: {string.Join(", ", purposes)}");
        }

        if (request.Granted is null)
        {
            errors.Add("granted", "is required: true to consent, false to refuse or withdraw");
        }

        errors.ThrowIfAny();
        return (request.Purpose!, request.Granted!.Value);
    }

    private static ConsentsResponse Describe(List<ConsentRecord> rows, IReadOnlyList<string> purposes, Func<string, string?> overriddenBy)
    {
        var current = purposes.Select(purpose =>
        {
            var latest = rows.Where(r => r.Purpose == purpose).MaxBy(r => r.Version);
            var granted = latest?.Granted ?? false;
            var overridden = granted ? overriddenBy(purpose) : null;
            return new ConsentState(purpose, granted, granted && overridden is null, latest?.Version ?? 0, latest?.RecordedAt, overridden);
        }).ToList();
        var history = rows.OrderBy(r => r.RecordedAt).ThenBy(r => r.Version)
            .Select(r => new ConsentHistoryItem(r.Purpose, r.Granted, r.Version, r.PolicyVersion, r.RecordedBy, r.RecordedAt)).ToList();
        return new ConsentsResponse(current, history);
    }
}
