using Microsoft.EntityFrameworkCore;
using Sluice.Audit;
using Sluice.Identity;
using Sluice.Storage;

namespace Sluice.Privacy;

/// <summary>
/// Deletion of an account in two steps. Closing (on an approved deletion request) takes effect at once: no sign-in,
/// sessions ended, the person's keys revoked. Erasing (after <c>Retention:DeletedAccountGrace</c>,
/// at most 30 days, by the retention sweeper) removes memberships and removes or pseudonymises every piece of personal data; what the law
/// requires (the ledger) stays, tied only to a pseudonymous id.
/// </summary>
public sealed class AccountErasure(SluiceDbContext db, AuditLog audit, ApiKeyVerifier keys, TimeProvider time)
{
    /// <summary>Why the account cannot be deleted as it stands, or null.</summary>
    public async Task<string?> BlockerAsync(Guid userId, CancellationToken cancellationToken)
    {
        if (await db.Users.AsNoTracking().Where(u => u.Id == userId).Select(u => u.IsPlatformOperator).SingleAsync(cancellationToken))
        {
            return "platform operators must hand the operator role to someone else (DELETE /api/v1/operators/{id}) before their account can be deleted";
        }

        var owned = await db.Memberships.AsNoTracking().Where(m => m.UserId == userId && m.Role == OrgRole.Owner).Select(m => m.OrganizationId).ToListAsync(cancellationToken);
        foreach (var orgId in owned)
        {
            var others = await db.Memberships.AsNoTracking().Where(m => m.OrganizationId == orgId && m.UserId != userId).ToListAsync(cancellationToken);
            if (others.Count > 0 && others.All(m => m.Role != OrgRole.Owner))
            {
                return $"you are the only owner of organization {orgId}, which has other members: make one of them an owner first";
            }
        }

        return null;
    }

    /// <summary>
    /// Closes the account in the caller's unit of work (the caller saves): organizations the person was the only member
    /// of are closed with it (keys revoked, name and contact details replaced).
    /// </summary>
    public async Task CloseAsync(Guid userId, CancellationToken cancellationToken)
    {
        var now = time.GetUtcNow();
        var user = await db.Users.SingleAsync(u => u.Id == userId, cancellationToken);
        user.ClosedAt ??= now;

        // Keys the person made, and every key of an organization they were the only member of.
        var soleOrgs = await db.Memberships.Where(m => m.UserId == userId)
            .Where(m => !db.Memberships.Any(o => o.OrganizationId == m.OrganizationId && o.UserId != userId))
            .Select(m => m.OrganizationId).ToListAsync(cancellationToken);
        var revoked = await db.ApiKeys.Where(k => k.RevokedAt == null && (k.CreatedByUserId == userId || soleOrgs.Contains(k.OrganizationId))).ToListAsync(cancellationToken);
        foreach (var key in revoked)
        {
            key.RevokedAt = now;
            key.UpdatedAt = now;
        }

        // An organization left without members is closed with the account: its name and billing address are often the person's own.
        foreach (var organization in await db.Organizations.Where(o => soleOrgs.Contains(o.Id)).ToListAsync(cancellationToken))
        {
            organization.Name = $"Closed organization {organization.Id.ToString()[..8]}";
            organization.BillingEmail = null;
            organization.LowBalanceWebhookUrl = null;
            organization.LowBalanceWebhookSecret = null;
            organization.UpdatedAt = now;
        }

        // Memberships stay until erasure (a closed account can use none of them), so a legal hold on one of the
        // person's organizations still covers them during the grace period.
        db.Sessions.RemoveRange(await db.Sessions.Where(s => s.UserId == userId).ToListAsync(cancellationToken));
        audit.Record("user.close", $"user:{userId} keys_revoked:{revoked.Count}");
        foreach (var key in revoked)
        {
            keys.Evict(key.Id);
        }
    }

    /// <summary>
    /// An operator's prompt erasure, without waiting for a request or the grace period: for an account learned to belong
    /// to a child (C38), or on a court order. A reason is required; a legal hold on the person stops it.
    /// </summary>
    public async Task EraseNowAsync(Guid userId, string? reason, CancellationToken cancellationToken)
    {
        var user = await db.Users.AsNoTracking().SingleOrDefaultAsync(u => u.Id == userId, cancellationToken) ?? throw Hosting.ApiProblem.NotFound("account");
        if (string.IsNullOrWhiteSpace(reason) || reason.Length > 1000)
        {
            await audit.RefuseAsync("user.erase", $"user:{userId} no_reason", null, cancellationToken);
            throw Hosting.ApiProblem.Invalid("reason", "is required (at most 1000 characters): say why the account is erased without a request");
        }

        if (user.ErasedAt is not null)
        {
            throw Hosting.ApiProblem.Conflict("userId", "this account was already erased");
        }

        var holds = await HoldSet.ActiveAsync(db, cancellationToken);
        if (holds.CoversClass(RetentionClass.DeletedAccounts) || (await holds.PeopleAsync(db, cancellationToken)).Contains(userId))
        {
            await audit.RefuseAsync("user.erase", $"user:{userId} legal_hold", null, cancellationToken);
            throw Hosting.ApiProblem.Conflict("userId", "a legal hold covers this account; release it first");
        }

        if (await BlockerAsync(userId, cancellationToken) is { } blocker)
        {
            throw Hosting.ApiProblem.Conflict("userId", blocker);
        }

        await CloseAsync(userId, cancellationToken);
        await db.SaveChangesAsync(cancellationToken);
        db.ChangeTracker.Clear();
        await EraseAsync(userId, cancellationToken, actor: null);
    }

    /// <summary>Erases a closed account's personal data, in one transaction, and completes its deletion request.</summary>
    public async Task EraseAsync(Guid userId, CancellationToken cancellationToken, string? actor = "system")
    {
        var now = time.GetUtcNow();
        await using var transaction = await db.Database.BeginTransactionAsync(cancellationToken);
        var user = await db.Users.SingleAsync(u => u.Id == userId, cancellationToken);
        var email = user.Email;

        user.Email = $"erased-{userId:N}@erased.invalid";
        user.DisplayName = null;
        user.PasswordHash = "!";
        user.IsPlatformOperator = false;
        user.AgeAttestedAt = null;
        user.ClosedAt ??= now;
        user.ErasedAt = now;

        await db.LoginEvents.Where(e => e.UserId == userId).ExecuteDeleteAsync(cancellationToken);
        await db.Sessions.Where(s => s.UserId == userId).ExecuteDeleteAsync(cancellationToken);
        await db.Memberships.Where(m => m.UserId == userId).ExecuteDeleteAsync(cancellationToken);
        await db.Notifications.Where(n => n.UserId == userId).ExecuteDeleteAsync(cancellationToken);
        await db.Invitations.Where(i => i.Email == email).ExecuteDeleteAsync(cancellationToken);
        await db.Organizations.Where(o => o.BillingEmail == email).ExecuteUpdateAsync(set => set.SetProperty(o => o.BillingEmail, (string?)null), cancellationToken);
        await db.PrivacyRequests.Where(r => r.UserId == userId).ExecuteUpdateAsync(set => set
            .SetProperty(r => r.Details, (string?)null)
            .SetProperty(r => r.AppealReason, (string?)null)
            .SetProperty(r => r.DecisionReason, (string?)null)
            .SetProperty(r => r.VerificationCodeHash, (string?)null), cancellationToken);
        await db.PrivacyRequests.Where(r => r.UserId == userId && r.Type == PrivacyRequestTypes.Deletion && r.Status == PrivacyRequestStatus.Approved)
            .ExecuteUpdateAsync(set => set.SetProperty(r => r.Status, PrivacyRequestStatus.Completed).SetProperty(r => r.CompletedAt, now), cancellationToken);

        audit.Record("user.erase", $"user:{userId}", actorOverride: actor);
        await db.SaveChangesAsync(cancellationToken);
        await transaction.CommitAsync(cancellationToken);
    }
}
