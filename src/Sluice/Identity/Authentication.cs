using System.Security.Claims;
using System.Text.Encodings.Web;
using Microsoft.AspNetCore.Authentication;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using Sluice.Storage;

namespace Sluice.Identity;

public static class AuthenticationSchemes
{
    /// <summary>Chooses <see cref="ApiKey"/> when the request carries a key, <see cref="Session"/> otherwise.</summary>
    public const string Default = "Sluice";
    public const string Session = "SluiceSession";
    public const string ApiKey = "SluiceApiKey";

    public const string SessionCookie = "sluice_session";
    public const string ApiKeyHeader = "x-api-key";

    public static bool CarriesApiKey(HttpRequest request) =>
        request.Headers.ContainsKey(ApiKeyHeader)
        || request.Headers.Authorization.ToString().StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase);

    /// <summary>The key from <c>Authorization: Bearer …</c> or <c>x-api-key</c>, or null.</summary>
    public static string? PresentedKey(HttpRequest request)
    {
        var authorization = request.Headers.Authorization.ToString();
        if (authorization.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase))
        {
            return authorization["Bearer ".Length..].Trim();
        }

        var header = request.Headers[ApiKeyHeader].ToString();
        return header.Length > 0 ? header.Trim() : null;
    }
}

/// <summary>Signs in a browser or client by its session cookie; the cookie's token is looked up by SHA-256.</summary>
internal sealed class SessionAuthenticationHandler(
    IOptionsMonitor<AuthenticationSchemeOptions> options,
    ILoggerFactory logger,
    UrlEncoder encoder,
    SluiceDbContext db,
    TimeProvider time) : AuthenticationHandler<AuthenticationSchemeOptions>(options, logger, encoder)
{
    protected override async Task<AuthenticateResult> HandleAuthenticateAsync()
    {
        if (!Request.Cookies.TryGetValue(AuthenticationSchemes.SessionCookie, out var token) || string.IsNullOrEmpty(token))
        {
            return AuthenticateResult.NoResult();
        }

        var hash = SessionTokens.Hash(token);
        var now = time.GetUtcNow();
        var found = await db.Sessions.AsNoTracking()
            .Where(s => s.TokenHash == hash && s.RevokedAt == null && s.ExpiresAt > now)
            .Join(db.Users.Where(u => u.ClosedAt == null), s => s.UserId, u => u.Id, (s, u) => new { SessionId = s.Id, UserId = u.Id, u.IsPlatformOperator })
            .SingleOrDefaultAsync(Context.RequestAborted);
        if (found is null)
        {
            return AuthenticateResult.Fail("The session has ended; sign in again.");
        }

        var claims = new List<Claim>
        {
            new(Caller.UserClaim, found.UserId.ToString()),
            new(Caller.SessionClaim, found.SessionId.ToString()),
        };
        if (found.IsPlatformOperator)
        {
            claims.Add(new Claim(Caller.OperatorClaim, "true"));
        }

        return AuthenticateResult.Success(new AuthenticationTicket(new ClaimsPrincipal(new ClaimsIdentity(claims, Scheme.Name)), Scheme.Name));
    }
}

/// <summary>Authenticates an organization's API key through the verification cache; bcrypt runs only on a miss.</summary>
internal sealed class ApiKeyAuthenticationHandler(
    IOptionsMonitor<AuthenticationSchemeOptions> options,
    ILoggerFactory logger,
    UrlEncoder encoder,
    ApiKeyVerifier verifier,
    ApiKeyUsageRecorder usage) : AuthenticationHandler<AuthenticationSchemeOptions>(options, logger, encoder)
{
    protected override async Task<AuthenticateResult> HandleAuthenticateAsync()
    {
        var presented = AuthenticationSchemes.PresentedKey(Request);
        if (presented is null)
        {
            return AuthenticateResult.NoResult();
        }

        var key = await verifier.VerifyAsync(presented, Context.RequestAborted);
        if (key is null)
        {
            return AuthenticateResult.Fail("The API key is malformed, unknown, revoked or expired.");
        }

        usage.Touch(key.KeyId);
        Context.Items[typeof(VerifiedKey)] = key; // the gateway reads the key's limits and models from here, without I/O
        return AuthenticateResult.Success(new AuthenticationTicket(ApiKeyClaims.Principal(key, Scheme.Name), Scheme.Name));
    }
}
