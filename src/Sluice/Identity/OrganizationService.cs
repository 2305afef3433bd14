using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using Sluice.Audit;
using Sluice.Hosting;
using Sluice.Storage;

namespace Sluice.Identity;

/// <summary>Organizations, their members and roles, and invitations. Callers are authorised by policy before they get here.</summary>
public sealed class OrganizationService(
    SluiceDbContext db, AuditLog audit, ApiKeyVerifier keys, IOptions<IdentityOptions> options, TimeProvider time, ILogger<OrganizationService> logger,
    Gateway.OrganizationPolicies? policies = null)
{
    public async Task<OrganizationResponse> CreateAsync(CreateOrganizationRequest request, Guid? ownerUserId, CancellationToken cancellationToken)
    {
        var errors = new FieldErrors();
        var name = ValidName(request.Name, errors);
        var billingEmail = request.BillingEmail is null ? null : AccountService.ValidEmail(request.BillingEmail, "billingEmail", errors);
        errors.ThrowIfAny();

        var now = time.GetUtcNow();
        var organization = new Organization { Id = Guid.CreateVersion7(now), Name = name!, BillingEmail = billingEmail, CreatedAt = now, UpdatedAt = now };
        db.Organizations.Add(organization);
        if (ownerUserId is { } owner)
        {
            db.Memberships.Add(new Membership { OrganizationId = organization.Id, UserId = owner, Role = OrgRole.Owner, CreatedAt = now });
        }

        audit.Record("org.create", $"org:{organization.Id}", organization.Id);
        await db.SaveChangesAsync(cancellationToken);
        IdentityLog.OrganizationCreated(logger, organization.Id, ownerUserId);
        return Response(organization);
    }

    public async Task<IReadOnlyList<OrganizationResponse>> ListForAsync(Caller caller, CancellationToken cancellationToken)
    {
        var query = db.Organizations.AsNoTracking();
        query = caller.IsKey
            ? query.Where(o => o.Id == caller.KeyOrganizationId)
            : query.Where(o => db.Memberships.Any(m => m.OrganizationId == o.Id && m.UserId == caller.UserId));
        return (await query.ToListAsync(cancellationToken)).OrderBy(o => o.Name, StringComparer.Ordinal).Select(Response).ToList();
    }

    public async Task<IReadOnlyList<OrganizationResponse>> ListAllAsync(CancellationToken cancellationToken) =>
        (await db.Organizations.AsNoTracking().ToListAsync(cancellationToken)).OrderBy(o => o.CreatedAt).Select(Response).ToList();

    public async Task<OrganizationResponse> GetAsync(Guid orgId, CancellationToken cancellationToken) =>
        Response(await FindAsync(orgId, cancellationToken));

    public async Task<OrganizationResponse> UpdateAsync(Guid orgId, UpdateOrganizationRequest request, CancellationToken cancellationToken)
    {
        var organization = await FindAsync(orgId, cancellationToken);
        var errors = new FieldErrors();
        if (request.Name is not null)
        {
            organization.Name = ValidName(request.Name, errors) ?? organization.Name;
        }

        if (request.BillingEmail is not null)
        {
            organization.BillingEmail = request.BillingEmail.Length == 0 ? null : AccountService.ValidEmail(request.BillingEmail, "billingEmail", errors);
        }

        organization.RequireZeroRetention = request.RequireZeroRetention ?? organization.RequireZeroRetention;
        organization.RequireNoTraining = request.RequireNoTraining ?? organization.RequireNoTraining;
        var costChanged = request.UsageCostInResponses is { } cost && cost != organization.UsageCostInResponses;
        organization.UsageCostInResponses = request.UsageCostInResponses ?? organization.UsageCostInResponses;

        errors.ThrowIfAny();
        organization.UpdatedAt = time.GetUtcNow();
        audit.Record("org.update", $"org:{orgId}", orgId);
        if (costChanged)
        {
            // Its own entry: whether callers see their charge in answers is a billing-visible choice.
            audit.Record(organization.UsageCostInResponses ? "org.usage_cost.enable" : "org.usage_cost.disable", $"org:{orgId}", orgId);
        }
        await db.SaveChangesAsync(cancellationToken);
        policies?.Forget(orgId); // applies at once on this replica; others within the cache's lifetime
        return Response(organization);
    }

    public async Task<IReadOnlyList<MemberResponse>> MembersAsync(Guid orgId, CancellationToken cancellationToken)
    {
        var members = await db.Memberships.AsNoTracking()
            .Where(m => m.OrganizationId == orgId)
            .Join(db.Users, m => m.UserId, u => u.Id, (m, u) => new { u.Id, u.Email, u.DisplayName, m.Role, m.CreatedAt })
            .ToListAsync(cancellationToken);
        return members.OrderBy(m => m.CreatedAt).Select(m => new MemberResponse(m.Id, m.Email, m.DisplayName, Roles.Format(m.Role), m.CreatedAt)).ToList();
    }

    public async Task<MemberResponse> ChangeRoleAsync(Guid orgId, Guid userId, ChangeRoleRequest request, OrgRole? callerRole, CancellationToken cancellationToken)
    {
        if (!Roles.TryParse(request.Role, out var role))
        {
            throw ApiProblem.Invalid("role", $"must be one of: {Roles.Names}");
        }

        var membership = await db.Memberships.SingleOrDefaultAsync(m => m.OrganizationId == orgId && m.UserId == userId, cancellationToken)
            ?? throw ApiProblem.NotFound("member");
        if ((role == OrgRole.Owner || membership.Role == OrgRole.Owner) && callerRole != OrgRole.Owner)
        {
            throw ApiProblem.Forbidden("Only an owner can make someone an owner or change an owner's role.");
        }

        if (membership.Role == OrgRole.Owner && role != OrgRole.Owner)
        {
            await EnsureAnotherOwnerAsync(orgId, userId, cancellationToken);
        }

        // The keys they made carry at most their new role's authority: marked changed, so every replica re-reads them.
        var changed = await ApiKeyService.MarkKeysOfChangedAsync(db, userId, orgId, time.GetUtcNow(), cancellationToken);
        membership.Role = role;
        audit.Record("member.role_change", $"user:{userId} as {Roles.Format(role)}", orgId);
        await db.SaveChangesAsync(cancellationToken);
        foreach (var keyId in changed)
        {
            keys.Evict(keyId);
        }

        return (await MembersAsync(orgId, cancellationToken)).Single(m => m.UserId == userId);
    }

    public async Task RemoveMemberAsync(Guid orgId, Guid userId, OrgRole? callerRole, CancellationToken cancellationToken)
    {
        var membership = await db.Memberships.SingleOrDefaultAsync(m => m.OrganizationId == orgId && m.UserId == userId, cancellationToken)
            ?? throw ApiProblem.NotFound("member");
        if (membership.Role == OrgRole.Owner)
        {
            if (callerRole != OrgRole.Owner)
            {
                throw ApiProblem.Forbidden("Only an owner can remove an owner.");
            }

            await EnsureAnotherOwnerAsync(orgId, userId, cancellationToken);
        }

        // The keys they made stop with the membership (unless an admin reassigned them to the organization first).
        var stopped = await ApiKeyService.MarkKeysOfChangedAsync(db, userId, orgId, time.GetUtcNow(), cancellationToken);
        db.Memberships.Remove(membership);
        audit.Record("member.remove", $"user:{userId} keys_stopped:{stopped.Count}", orgId);
        await db.SaveChangesAsync(cancellationToken);
        foreach (var keyId in stopped)
        {
            keys.Evict(keyId);
        }
    }

    public async Task<CreatedInvitationResponse> InviteAsync(
        Guid orgId, CreateInvitationRequest request, Guid invitedBy, OrgRole? callerRole, CancellationToken cancellationToken)
    {
        var errors = new FieldErrors();
        var email = AccountService.ValidEmail(request.Email, "email", errors);
        if (!Roles.TryParse(request.Role, out var role))
        {
            errors.Add("role", $"must be one of: {Roles.Names}");
        }

        errors.ThrowIfAny();
        if (role == OrgRole.Owner && callerRole != OrgRole.Owner)
        {
            throw ApiProblem.Forbidden("Only an owner can invite an owner.");
        }

        if (await db.Memberships.AnyAsync(m => m.OrganizationId == orgId && db.Users.Any(u => u.Id == m.UserId && u.Email == email), cancellationToken))
        {
            throw ApiProblem.Conflict("email", "this person is already a member of the organization");
        }

        var now = time.GetUtcNow();
        var token = SessionTokens.Create();
        var invitation = new Invitation
        {
            Id = Guid.CreateVersion7(now),
            OrganizationId = orgId,
            Email = email!,
            Role = role,
            TokenHash = SessionTokens.Hash(token),
            ExpiresAt = now + options.Value.InvitationLifetime,
            CreatedByUserId = invitedBy,
            CreatedAt = now,
        };
        db.Invitations.Add(invitation);
        audit.Record("invitation.create", $"invitation:{invitation.Id} as {Roles.Format(role)}", orgId);
        await db.SaveChangesAsync(cancellationToken);
        return new CreatedInvitationResponse(invitation.Id, orgId, invitation.Email, Roles.Format(role), invitation.ExpiresAt, token);
    }

    public async Task<IReadOnlyList<InvitationResponse>> PendingInvitationsAsync(Guid orgId, CancellationToken cancellationToken)
    {
        var now = time.GetUtcNow();
        var pending = await db.Invitations.AsNoTracking()
            .Where(i => i.OrganizationId == orgId && i.AcceptedAt == null && i.RevokedAt == null && i.ExpiresAt > now)
            .ToListAsync(cancellationToken);
        return pending.OrderBy(i => i.CreatedAt).Select(i => new InvitationResponse(i.Id, i.OrganizationId, i.Email, Roles.Format(i.Role), i.ExpiresAt, i.CreatedAt)).ToList();
    }

    /// <summary>
    /// The live invitations addressed to this person's email, with the organization's name. Accepting one still takes its
    /// token (the link they were sent): the token, not the email, proves the invitation reached them.
    /// </summary>
    public async Task<IReadOnlyList<InvitationForUser>> InvitationsForAsync(Guid userId, CancellationToken cancellationToken)
    {
        var now = time.GetUtcNow();
        var email = await db.Users.AsNoTracking().Where(u => u.Id == userId).Select(u => u.Email).SingleAsync(cancellationToken);
        var pending = await db.Invitations.AsNoTracking()
            .Where(i => i.Email == email && i.AcceptedAt == null && i.RevokedAt == null && i.ExpiresAt > now
                && !db.Memberships.Any(m => m.OrganizationId == i.OrganizationId && m.UserId == userId))
            .Join(db.Organizations, i => i.OrganizationId, o => o.Id, (i, o) => new { i.Id, i.OrganizationId, o.Name, i.Role, i.ExpiresAt, i.CreatedAt })
            .ToListAsync(cancellationToken);
        return pending.OrderBy(i => i.CreatedAt).Select(i => new InvitationForUser(i.Id, i.OrganizationId, i.Name, Roles.Format(i.Role), i.ExpiresAt, i.CreatedAt)).ToList();
    }

    public async Task RevokeInvitationAsync(Guid orgId, Guid invitationId, CancellationToken cancellationToken)
    {
        var invitation = await db.Invitations.SingleOrDefaultAsync(i => i.Id == invitationId && i.OrganizationId == orgId && i.RevokedAt == null && i.AcceptedAt == null, cancellationToken)
            ?? throw ApiProblem.NotFound("invitation");
        invitation.RevokedAt = time.GetUtcNow();
        audit.Record("invitation.revoke", $"invitation:{invitationId}", orgId);
        await db.SaveChangesAsync(cancellationToken);
    }

    /// <summary>Joins the signed-in person to the organization, if the token is live and was sent to their email.</summary>
    public async Task<AcceptedInvitationResponse> AcceptAsync(AcceptInvitationRequest request, Guid userId, CancellationToken cancellationToken)
    {
        if (string.IsNullOrWhiteSpace(request.Token))
        {
            throw ApiProblem.Invalid("token", "is required");
        }

        var hash = SessionTokens.Hash(request.Token.Trim());
        var invitation = await db.Invitations.SingleOrDefaultAsync(i => i.TokenHash == hash, cancellationToken);
        var now = time.GetUtcNow();
        if (invitation is null || invitation.RevokedAt is not null)
        {
            throw ApiProblem.Invalid("token", "is not a valid invitation; ask for a new one");
        }

        if (invitation.AcceptedAt is not null)
        {
            throw ApiProblem.Conflict("token", "this invitation has already been used");
        }

        if (invitation.ExpiresAt <= now)
        {
            throw ApiProblem.Invalid("token", "this invitation has expired; ask for a new one");
        }

        var user = await db.Users.SingleAsync(u => u.Id == userId, cancellationToken);
        if (!string.Equals(user.Email, invitation.Email, StringComparison.Ordinal))
        {
            throw ApiProblem.Invalid("token", "this invitation was sent to another email address; sign in with that account");
        }

        if (await db.Memberships.AnyAsync(m => m.OrganizationId == invitation.OrganizationId && m.UserId == userId, cancellationToken))
        {
            throw ApiProblem.Conflict("token", "you are already a member of this organization");
        }

        invitation.AcceptedAt = now;
        invitation.AcceptedByUserId = userId;
        db.Memberships.Add(new Membership { OrganizationId = invitation.OrganizationId, UserId = userId, Role = invitation.Role, CreatedAt = now });
        audit.Record("invitation.accept", $"invitation:{invitation.Id} as {Roles.Format(invitation.Role)}", invitation.OrganizationId);
        await db.SaveChangesAsync(cancellationToken);
        return new AcceptedInvitationResponse(invitation.OrganizationId, Roles.Format(invitation.Role));
    }

    private async Task EnsureAnotherOwnerAsync(Guid orgId, Guid leavingUserId, CancellationToken cancellationToken)
    {
        if (!await db.Memberships.AnyAsync(m => m.OrganizationId == orgId && m.Role == OrgRole.Owner && m.UserId != leavingUserId, cancellationToken))
        {
            throw ApiProblem.Conflict("role", "an organization needs at least one owner; make someone else owner first");
        }
    }

    private async Task<Organization> FindAsync(Guid orgId, CancellationToken cancellationToken) =>
        await db.Organizations.SingleOrDefaultAsync(o => o.Id == orgId, cancellationToken) ?? throw ApiProblem.NotFound("organization");

    private static string? ValidName(string? value, FieldErrors errors)
    {
        var name = value?.Trim();
        if (string.IsNullOrEmpty(name))
        {
            errors.Add("name", "is required");
            return null;
        }

        if (name.Length > 200)
        {
            errors.Add("name", "must be at most 200 characters");
            return null;
        }

        return name;
    }

    private static OrganizationResponse Response(Organization o) =>
        new(o.Id, o.Name, o.BillingEmail, o.RequireZeroRetention, o.RequireNoTraining, o.RequestsPerMinute, o.TokensPerMinute, o.CreatedAt, o.UpdatedAt, o.UsageCostInResponses);

    /// <summary>An operator's rate limits for the whole organization (null removes a limit).</summary>
    public async Task<OrganizationResponse> SetLimitsAsync(Guid orgId, OrganizationLimitsRequest request, CancellationToken cancellationToken)
    {
        var organization = await FindAsync(orgId, cancellationToken);
        if (request.RequestsPerMinute is <= 0 || request.TokensPerMinute is <= 0)
        {
            throw ApiProblem.Invalid(request.RequestsPerMinute is <= 0 ? "requestsPerMinute" : "tokensPerMinute", "must be positive, or null for no limit");
        }

        organization.RequestsPerMinute = request.RequestsPerMinute;
        organization.TokensPerMinute = request.TokensPerMinute;
        organization.UpdatedAt = time.GetUtcNow();
        audit.Record("org.limits", $"org:{orgId} rpm={request.RequestsPerMinute?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "none"} tpm={request.TokensPerMinute?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "none"}", orgId);
        await db.SaveChangesAsync(cancellationToken);
        policies?.Forget(orgId);
        return Response(organization);
    }
}
