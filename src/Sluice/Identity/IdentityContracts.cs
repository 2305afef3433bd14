namespace Sluice.Identity;

// Requests: every property is nullable so a missing field is reported by name rather than failing to bind.

public sealed record SignUpRequest(string? Email, string? Name, string? Password, bool? AgeAttestation, DateOnly? DateOfBirth);

public sealed record LoginRequest(string? Email, string? Password);

public sealed record UpdateProfileRequest(string? Name);

public sealed record ChangePasswordRequest(string? CurrentPassword, string? NewPassword);

public sealed record CreateOrganizationRequest(string? Name, string? BillingEmail);

public sealed record UpdateOrganizationRequest(string? Name, string? BillingEmail, bool? RequireZeroRetention = null, bool? RequireNoTraining = null,
    bool? UsageCostInResponses = null);

public sealed record OrganizationLimitsRequest(int? RequestsPerMinute, int? TokensPerMinute);

public sealed record ChangeRoleRequest(string? Role);

public sealed record CreateInvitationRequest(string? Email, string? Role);

public sealed record AcceptInvitationRequest(string? Token);

public sealed record GrantOperatorRequest(string? Email);

public sealed record SpendLimits(long? DailyMicros, long? MonthlyMicros, long? TotalMicros);

public sealed record CreateKeyRequest(
    string? Name,
    IReadOnlyList<string>? Scopes,
    IReadOnlyList<string>? Models,
    DateTimeOffset? ExpiresAt,
    SpendLimits? SpendLimits,
    int? RequestsPerMinute,
    int? TokensPerMinute);

public sealed record RotateKeyRequest(int? GracePeriodSeconds);

// Responses

public sealed record UserResponse(Guid Id, string Email, string? Name, bool IsPlatformOperator, DateTimeOffset CreatedAt);

public sealed record MembershipSummary(Guid OrganizationId, string OrganizationName, string Role);

public sealed record MeResponse(Guid Id, string Email, string? Name, bool IsPlatformOperator, DateTimeOffset CreatedAt, IReadOnlyList<MembershipSummary> Memberships);

public sealed record OrganizationResponse(
    Guid Id, string Name, string? BillingEmail, bool RequireZeroRetention, bool RequireNoTraining, int? RequestsPerMinute, int? TokensPerMinute,
    DateTimeOffset CreatedAt, DateTimeOffset UpdatedAt, bool UsageCostInResponses = true);

public sealed record MemberResponse(Guid UserId, string Email, string? Name, string Role, DateTimeOffset JoinedAt);

public sealed record InvitationResponse(Guid Id, Guid OrganizationId, string Email, string Role, DateTimeOffset ExpiresAt, DateTimeOffset CreatedAt);

/// <summary>Returned once, at creation: the token is not stored and cannot be shown again.</summary>
public sealed record CreatedInvitationResponse(Guid Id, Guid OrganizationId, string Email, string Role, DateTimeOffset ExpiresAt, string Token);

/// <summary>An invitation addressed to the signed-in person, as their invitations page lists it.</summary>
public sealed record InvitationForUser(Guid Id, Guid OrganizationId, string OrganizationName, string Role, DateTimeOffset ExpiresAt, DateTimeOffset CreatedAt);

public sealed record AcceptedInvitationResponse(Guid OrganizationId, string Role);

public sealed record KeyResponse(
    Guid Id,
    Guid OrganizationId,
    string Name,
    string Prefix,
    IReadOnlyList<string> Scopes,
    IReadOnlyList<string>? Models,
    DateTimeOffset? ExpiresAt,
    SpendLimits SpendLimits,
    int? RequestsPerMinute,
    int? TokensPerMinute,
    Guid? CreatedBy,
    DateTimeOffset CreatedAt,
    DateTimeOffset? LastUsedAt,
    DateTimeOffset? RevokedAt,
    DateTimeOffset? PreviousSecretValidUntil)
{
    public static KeyResponse From(ApiKey key, DateTimeOffset now) => new(
        key.Id, key.OrganizationId, key.Name, key.Prefix, KeyScopeNames.Format(key.Scopes),
        key.AllowedModels?.Split(' ', StringSplitOptions.RemoveEmptyEntries),
        key.ExpiresAt, new SpendLimits(key.SpendLimitDailyMicros, key.SpendLimitMonthlyMicros, key.SpendLimitTotalMicros),
        key.RequestsPerMinute, key.TokensPerMinute, key.CreatedByUserId, key.CreatedAt, key.LastUsedAt, key.RevokedAt,
        key.PreviousValidUntil is { } until && until > now ? until : null);
}

/// <summary>Returned once, at creation or rotation: the secret is stored only as a bcrypt hash.</summary>
public sealed record CreatedKeyResponse(string Key, KeyResponse Details);
