namespace Sluice.Identity;

/// <summary>
/// The one cookie Sluice sets: the session's token, HttpOnly, SameSite=Lax (sent on top-level navigation to the console,
/// never on another site's form posts or requests), Secure whenever the request came over HTTPS.
/// </summary>
public static class SessionCookie
{
    public static void Issue(HttpContext http, string token, DateTimeOffset expiresAt) =>
        http.Response.Cookies.Append(AuthenticationSchemes.SessionCookie, token, Options(http, expiresAt));

    public static void Clear(HttpContext http) => http.Response.Cookies.Delete(AuthenticationSchemes.SessionCookie, Options(http, null));

    private static CookieOptions Options(HttpContext http, DateTimeOffset? expiresAt) => new()
    {
        HttpOnly = true,
        SameSite = SameSiteMode.Lax,
        Secure = http.Request.IsHttps,
        Path = "/",
        Expires = expiresAt,
        IsEssential = true,
    };
}
