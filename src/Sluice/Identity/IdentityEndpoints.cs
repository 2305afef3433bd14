using Microsoft.AspNetCore.Http.HttpResults;
using Sluice.Hosting;
using Sluice.Storage;

namespace Sluice.Identity;

/// <summary>The management API for accounts, organizations, members, invitations, keys and operators, under /api/v1.</summary>
internal static class IdentityEndpoints
{
    public static IEndpointRouteBuilder MapIdentity(this IEndpointRouteBuilder endpoints)
    {
        var api = endpoints.MapGroup("/api/v1");

        var auth = api.MapGroup("/auth").WithTags("auth");
        auth.MapPost("/signup", SignUp).AllowAnonymous();
        auth.MapPost("/login", Login).AllowAnonymous();
        auth.MapPost("/logout", Logout).RequireAuthorization(Policies.User);

        var me = api.MapGroup("/me").WithTags("me").RequireAuthorization(Policies.User);
        me.MapGet("", (HttpContext http, AccountService accounts, CancellationToken ct) => accounts.MeAsync(http.Caller().UserId!.Value, ct));
        me.MapPatch("", UpdateProfile);
        me.MapPost("/password", ChangePassword);

        var orgs = api.MapGroup("/orgs").WithTags("organizations");
        orgs.MapPost("", CreateOrganization).RequireAuthorization(Policies.User);
        orgs.MapGet("", (HttpContext http, OrganizationService service, CancellationToken ct) => service.ListForAsync(http.Caller(), ct))
            .RequireAuthorization(Policies.Authenticated);

        var org = orgs.MapGroup("/{orgId:guid}");
        org.MapGet("", (Guid orgId, OrganizationService service, CancellationToken ct) => service.GetAsync(orgId, ct))
            .RequireAuthorization(Policies.Org(OrgAccess.OrgRead));
        org.MapPatch("", (Guid orgId, UpdateOrganizationRequest request, OrganizationService service, CancellationToken ct) => service.UpdateAsync(orgId, request, ct))
            .RequireAuthorization(Policies.Org(OrgAccess.OrgWrite));

        org.MapGet("/members", (Guid orgId, OrganizationService service, CancellationToken ct) => service.MembersAsync(orgId, ct))
            .RequireAuthorization(Policies.Org(OrgAccess.MembersRead));
        org.MapPatch("/members/{userId:guid}", ChangeRole).RequireAuthorization(Policies.Org(OrgAccess.MembersWrite));
        org.MapDelete("/members/{userId:guid}", RemoveMember).RequireAuthorization(Policies.Org(OrgAccess.MembersWrite));

        org.MapPost("/invitations", Invite).RequireAuthorization(Policies.Org(OrgAccess.MembersWrite));
        org.MapGet("/invitations", (Guid orgId, OrganizationService service, CancellationToken ct) => service.PendingInvitationsAsync(orgId, ct))
            .RequireAuthorization(Policies.Org(OrgAccess.MembersRead));
        org.MapDelete("/invitations/{invitationId:guid}", RevokeInvitation).RequireAuthorization(Policies.Org(OrgAccess.MembersWrite));
        api.MapPost("/invitations/accept", AcceptInvitation).WithTags("organizations").RequireAuthorization(Policies.User);

        org.MapPost("/keys", CreateKey).RequireAuthorization(Policies.Org(OrgAccess.KeysWrite));
        org.MapGet("/keys", (Guid orgId, ApiKeyService keys, CancellationToken ct) => keys.ListAsync(orgId, ct))
            .RequireAuthorization(Policies.Org(OrgAccess.KeysRead));
        org.MapGet("/keys/{keyId:guid}", (Guid orgId, Guid keyId, ApiKeyService keys, CancellationToken ct) => keys.GetAsync(orgId, keyId, ct))
            .RequireAuthorization(Policies.Org(OrgAccess.KeysRead));
        org.MapDelete("/keys/{keyId:guid}", RevokeKey).RequireAuthorization(Policies.Org(OrgAccess.KeysWrite));
        org.MapPost("/keys/{keyId:guid}/rotate", RotateKey).RequireAuthorization(Policies.Org(OrgAccess.KeysWrite));
        org.MapPost("/keys/{keyId:guid}/reassign", (Guid orgId, Guid keyId, HttpContext http, ApiKeyService keys, CancellationToken ct) =>
                http.Caller().IsKey
                    // A reassigned key outlives its creator's role: only a signed-in owner or admin may decide that, never
                    // a key (which could otherwise reassign itself and keep its authority after its creator is demoted).
                    ? throw ApiProblem.Forbidden("keys cannot be reassigned with an API key; sign in as an owner or admin")
                    : keys.ReassignToOrganizationAsync(orgId, keyId, ct))
            .RequireAuthorization(Policies.Org(OrgAccess.MembersWrite));

        var operators = api.MapGroup("/operators").WithTags("operators").RequireAuthorization(Policies.Operator);
        operators.MapGet("", (OperatorService service, CancellationToken ct) => service.ListAsync(ct));
        operators.MapPost("", (GrantOperatorRequest request, OperatorService service, CancellationToken ct) => service.GrantAsync(request, ct));
        operators.MapDelete("/{userId:guid}", async (Guid userId, OperatorService service, CancellationToken ct) =>
        {
            await service.RevokeAsync(userId, ct);
            return TypedResults.NoContent();
        });
        api.MapGet("/admin/orgs", (OrganizationService service, CancellationToken ct) => service.ListAllAsync(ct))
            .WithTags("operators").RequireAuthorization(Policies.Operator);
        api.MapPatch("/admin/orgs/{orgId:guid}/limits", (Guid orgId, OrganizationLimitsRequest request, OrganizationService service, CancellationToken ct) =>
            service.SetLimitsAsync(orgId, request, ct)).WithTags("operators").RequireAuthorization(Policies.Operator);
        return endpoints;
    }

    private static async Task<Created<UserResponse>> SignUp(SignUpRequest request, AccountService accounts, CancellationToken ct)
    {
        var user = await accounts.SignUpAsync(request, ct);
        return TypedResults.Created("/api/v1/me", new UserResponse(user.Id, user.Email, user.DisplayName, user.IsPlatformOperator, user.CreatedAt));
    }

    private static async Task<Ok<UserResponse>> Login(LoginRequest request, HttpContext http, AccountService accounts, CancellationToken ct)
    {
        var (user, session, token) = await accounts.LoginAsync(
            request, http.Connection.RemoteIpAddress?.ToString(), http.Request.Headers.UserAgent.ToString(), ct);
        SessionCookie.Issue(http, token, session.ExpiresAt);
        return TypedResults.Ok(new UserResponse(user.Id, user.Email, user.DisplayName, user.IsPlatformOperator, user.CreatedAt));
    }

    private static async Task<NoContent> Logout(HttpContext http, AccountService accounts, CancellationToken ct)
    {
        if (Guid.TryParse(http.User.FindFirst(Caller.SessionClaim)?.Value, out var sessionId))
        {
            await accounts.LogoutAsync(sessionId, ct);
        }

        SessionCookie.Clear(http);
        return TypedResults.NoContent();
    }

    private static async Task<NoContent> UpdateProfile(UpdateProfileRequest request, HttpContext http, AccountService accounts, CancellationToken ct)
    {
        await accounts.UpdateProfileAsync(http.Caller().UserId!.Value, request, ct);
        return TypedResults.NoContent();
    }

    private static async Task<NoContent> ChangePassword(ChangePasswordRequest request, HttpContext http, AccountService accounts, CancellationToken ct)
    {
        var sessionId = Guid.Parse(http.User.FindFirst(Caller.SessionClaim)!.Value);
        await accounts.ChangePasswordAsync(http.Caller().UserId!.Value, sessionId, request, ct);
        return TypedResults.NoContent();
    }

    private static async Task<Created<OrganizationResponse>> CreateOrganization(
        CreateOrganizationRequest request, HttpContext http, OrganizationService service, CancellationToken ct)
    {
        var organization = await service.CreateAsync(request, http.Caller().UserId, ct);
        return TypedResults.Created($"/api/v1/orgs/{organization.Id}", organization);
    }

    private static async Task<MemberResponse> ChangeRole(
        Guid orgId, Guid userId, ChangeRoleRequest request, HttpContext http, OrganizationService service, SluiceDbContext db, CancellationToken ct) =>
        await service.ChangeRoleAsync(orgId, userId, request, await CallerRoleAsync(http, db, orgId), ct);

    private static async Task<NoContent> RemoveMember(Guid orgId, Guid userId, HttpContext http, OrganizationService service, SluiceDbContext db, CancellationToken ct)
    {
        await service.RemoveMemberAsync(orgId, userId, await CallerRoleAsync(http, db, orgId), ct);
        return TypedResults.NoContent();
    }

    private static async Task<Created<CreatedInvitationResponse>> Invite(
        Guid orgId, CreateInvitationRequest request, HttpContext http, OrganizationService service, SluiceDbContext db, CancellationToken ct)
    {
        var caller = http.Caller();
        if (caller.UserId is not { } invitedBy)
        {
            throw ApiProblem.Forbidden("Invitations are sent by people: sign in to invite, or use a key created by a person.");
        }

        var invitation = await service.InviteAsync(orgId, request, invitedBy, await CallerRoleAsync(http, db, orgId), ct);
        return TypedResults.Created($"/api/v1/orgs/{orgId}/invitations/{invitation.Id}", invitation);
    }

    private static async Task<NoContent> RevokeInvitation(Guid orgId, Guid invitationId, OrganizationService service, CancellationToken ct)
    {
        await service.RevokeInvitationAsync(orgId, invitationId, ct);
        return TypedResults.NoContent();
    }

    private static async Task<AcceptedInvitationResponse> AcceptInvitation(AcceptInvitationRequest request, HttpContext http, OrganizationService service, CancellationToken ct) =>
        await service.AcceptAsync(request, http.Caller().UserId!.Value, ct);

    private static async Task<Created<CreatedKeyResponse>> CreateKey(
        Guid orgId, CreateKeyRequest request, HttpContext http, ApiKeyService keys, SluiceDbContext db, CancellationToken ct)
    {
        var caller = http.Caller();
        var role = await CallerRoleAsync(http, db, orgId);
        var ceiling = role is { } r
            ? new ScopeCeiling(Permissions.ScopesAllowed(r), $"your role ({Roles.Format(r)})")
            : new ScopeCeiling(KeyScopes.Inference | KeyScopes.Batch | KeyScopes.ManagementRead | KeyScopes.ManagementWrite, "this organization's key");
        if (caller.IsKey)
        {
            ceiling = new ScopeCeiling(ceiling.Allowed & caller.KeyScopes, role is null ? "the calling key's scopes" : $"{ceiling.Because} with the calling key's scopes");
        }

        var created = await keys.CreateAsync(orgId, request, caller.UserId, ct, ceiling);
        return TypedResults.Created($"/api/v1/orgs/{orgId}/keys/{created.Details.Id}", created);
    }

    private static async Task<NoContent> RevokeKey(Guid orgId, Guid keyId, HttpContext http, ApiKeyService keys, SluiceDbContext db, CancellationToken ct)
    {
        await keys.RevokeAsync(orgId, keyId, http.Caller(), await CallerRoleAsync(http, db, orgId), ct);
        return TypedResults.NoContent();
    }

    private static async Task<CreatedKeyResponse> RotateKey(
        Guid orgId, Guid keyId, RotateKeyRequest? request, HttpContext http, ApiKeyService keys, SluiceDbContext db, CancellationToken ct) =>
        await keys.RotateAsync(orgId, keyId, request ?? new RotateKeyRequest(null), http.Caller(), await CallerRoleAsync(http, db, orgId), ct);

    /// <summary>
    /// The caller's current role in the org: a person's own, or, for a key, its creator's (null for a key reassigned
    /// to the organization, which has no creator).
    /// </summary>
    private static async Task<OrgRole?> CallerRoleAsync(HttpContext http, SluiceDbContext db, Guid orgId) =>
        http.Caller() is { UserId: { } userId } ? await OrgAccessHandler.MembershipRoleAsync(http, db, orgId, userId) : null;
}
