using System.Security.Claims;

namespace Sluice.Identity;

/// <summary>Who is calling: a signed-in person (session) or an organization's API key. Built from the request's claims.</summary>
public sealed record Caller(Guid? UserId, bool IsOperator, Guid? KeyId, Guid? KeyOrganizationId, KeyScopes KeyScopes)
{
    public const string UserClaim = "sluice:user";
    public const string OperatorClaim = "sluice:operator";
    public const string SessionClaim = "sluice:session";
    public const string KeyClaim = "sluice:key";
    public const string KeyOrganizationClaim = "sluice:key-org";
    public const string KeyScopesClaim = "sluice:key-scopes";
    public const string KeyCreatorClaim = "sluice:key-creator";

    public bool IsKey => KeyId is not null;

    public static Caller From(ClaimsPrincipal principal)
    {
        static Guid? Id(ClaimsPrincipal p, string type) => Guid.TryParse(p.FindFirstValue(type), out var id) ? id : null;

        var keyId = Id(principal, KeyClaim);
        return new Caller(
            keyId is null ? Id(principal, UserClaim) : Id(principal, KeyCreatorClaim),
            keyId is null && principal.HasClaim(OperatorClaim, "true"),
            keyId,
            Id(principal, KeyOrganizationClaim),
            int.TryParse(principal.FindFirstValue(KeyScopesClaim), out var scopes) ? (KeyScopes)scopes : KeyScopes.None);
    }
}

public static class CallerHttpContextExtensions
{
    /// <summary>
    /// The caller. A key-authenticated request (the gate, the key scheme, a batch line) carries its verified key, from
    /// which its claims were built, so the key is read directly instead of parsing those claims back.
    /// </summary>
    public static Caller Caller(this HttpContext context) => context.Items.TryGetValue(typeof(VerifiedKey), out var item) && item is VerifiedKey key
        ? new Identity.Caller(key.CreatedByUserId, false, key.KeyId, key.OrganizationId, key.Scopes)
        : Identity.Caller.From(context.User);
}
