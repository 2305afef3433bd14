using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;
using Microsoft.AspNetCore.Antiforgery;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using Sluice.Crypto;
using Sluice.Identity;
using Sluice.Storage;

namespace Sluice.WebConsole;

/// <summary>
/// The console's anti-forgery tokens, in place of ASP.NET's (whose key ring is per process here, so a token from one
/// replica would fail on another and every restart would break open forms). A token is a random nonce, an expiry and an
/// HMAC over both and the session it was issued to, under a key derived from the secrets key every replica shares. A
/// post is accepted once: its nonce is then recorded, and the same form sent again (a replay) is refused. A token from
/// another session, an expired one, or a post another site made the browser send (Origin, Sec-Fetch-Site) is refused.
/// No cookie: the session cookie is the only one.
/// </summary>
internal sealed class ConsoleFormTokens(SecretBox secrets, TimeProvider time, IOptions<ConsoleOptions> options) : IAntiforgery
{
    public const string FieldName = "__RequestVerificationToken";
    public const string HeaderName = "X-CSRF-TOKEN";

    private const int NonceBytes = 16;
    private const int MacBytes = 32;
    private readonly byte[] _key = secrets.DeriveKey("console-forms");

    public AntiforgeryTokenSet GetAndStoreTokens(HttpContext httpContext) => GetTokens(httpContext);

    public AntiforgeryTokenSet GetTokens(HttpContext httpContext) => new(Issue(httpContext), null, FieldName, HeaderName);

    public async Task<bool> IsRequestValidAsync(HttpContext httpContext)
    {
        try
        {
            await ValidateRequestAsync(httpContext);
            return true;
        }
        catch (AntiforgeryValidationException)
        {
            return false;
        }
    }

    public async Task ValidateRequestAsync(HttpContext httpContext)
    {
        var request = httpContext.Request;
        if (HttpMethods.IsGet(request.Method) || HttpMethods.IsHead(request.Method) || HttpMethods.IsOptions(request.Method) || HttpMethods.IsTrace(request.Method))
        {
            return;
        }

        if (!SameOrigin(request))
        {
            throw new AntiforgeryValidationException("The form was posted from another site.");
        }

        string? token = request.Headers[HeaderName];
        if (string.IsNullOrEmpty(token) && request.HasFormContentType)
        {
            token = (await request.ReadFormAsync(httpContext.RequestAborted))[FieldName];
        }

        if (string.IsNullOrEmpty(token) || !TryRead(token, Binding(httpContext), out var nonce, out var expiresAt))
        {
            throw new AntiforgeryValidationException("The form token is missing, malformed or was issued to another session.");
        }

        if (expiresAt <= time.GetUtcNow())
        {
            throw new AntiforgeryValidationException("The form token has expired.");
        }

        if (!await ConsumeAsync(httpContext, nonce, expiresAt))
        {
            throw new AntiforgeryValidationException("The form was already sent once.");
        }
    }

    public void SetCookieTokenAndHeader(HttpContext httpContext)
    {
    }

    /// <summary>A new token for the caller's session (or for no session, on the sign-in and sign-up forms).</summary>
    public string Issue(HttpContext httpContext)
    {
        Span<byte> token = stackalloc byte[NonceBytes + sizeof(long) + MacBytes];
        RandomNumberGenerator.Fill(token[..NonceBytes]);
        BinaryPrimitives.WriteInt64BigEndian(token.Slice(NonceBytes, sizeof(long)), (time.GetUtcNow() + options.Value.FormLifetime).ToUnixTimeSeconds());
        Mac(Binding(httpContext), token[..(NonceBytes + sizeof(long))], token[(NonceBytes + sizeof(long))..]);
        return Base64Url(token);
    }

    private bool TryRead(string token, string binding, out string nonce, out DateTimeOffset expiresAt)
    {
        nonce = "";
        expiresAt = default;
        Span<byte> bytes = stackalloc byte[NonceBytes + sizeof(long) + MacBytes];
        if (token.Length > 128 || !TryFromBase64Url(token, bytes))
        {
            return false;
        }

        Span<byte> expected = stackalloc byte[MacBytes];
        Mac(binding, bytes[..(NonceBytes + sizeof(long))], expected);
        if (!CryptographicOperations.FixedTimeEquals(expected, bytes[(NonceBytes + sizeof(long))..]))
        {
            return false;
        }

        nonce = Convert.ToHexStringLower(bytes[..NonceBytes]);
        expiresAt = DateTimeOffset.FromUnixTimeSeconds(BinaryPrimitives.ReadInt64BigEndian(bytes.Slice(NonceBytes, sizeof(long))));
        return true;
    }

    private void Mac(string binding, ReadOnlySpan<byte> body, Span<byte> destination)
    {
        var bound = Encoding.UTF8.GetBytes(binding);
        var message = new byte[bound.Length + 1 + body.Length];
        bound.CopyTo(message, 0);
        body.CopyTo(message.AsSpan(bound.Length + 1));
        HMACSHA256.HashData(_key, message, destination);
    }

    /// <summary>Records the nonce; false when it was recorded before (the form was already sent).</summary>
    private static async Task<bool> ConsumeAsync(HttpContext httpContext, string nonce, DateTimeOffset expiresAt)
    {
        var db = httpContext.RequestServices.GetRequiredService<SluiceDbContext>();
        var entry = db.ConsoleFormNonces.Add(new ConsoleFormNonce { Nonce = nonce, ExpiresAt = expiresAt });
        try
        {
            await db.SaveChangesAsync(httpContext.RequestAborted);
            return true;
        }
        catch (DbUpdateException)
        {
            // The page's own work shares this context: the refused nonce must not be saved again with it.
            entry.State = EntityState.Detached;
            if (await db.ConsoleFormNonces.AsNoTracking().AnyAsync(n => n.Nonce == nonce, httpContext.RequestAborted))
            {
                return false;
            }

            throw;
        }
        finally
        {
            entry.State = EntityState.Detached;
        }
    }

    /// <summary>What a token is bound to: the session (so a token cannot be used from another), or nothing before sign-in.</summary>
    private static string Binding(HttpContext httpContext) => httpContext.User.FindFirst(Caller.SessionClaim)?.Value ?? "anonymous";

    private static bool SameOrigin(HttpRequest request)
    {
        if (string.Equals(request.Headers["Sec-Fetch-Site"], "cross-site", StringComparison.OrdinalIgnoreCase))
        {
            return false;
        }

        // Browsers send Origin on every form post; a client that sends none is still held to the token. The scheme is
        // not compared: behind a proxy that ends TLS the request arrives over HTTP from an https:// page. A proxy that
        // rewrites Host names the browser's in X-Forwarded-Host, a header another site cannot make a browser send.
        var origin = request.Headers.Origin.ToString();
        if (origin.Length == 0)
        {
            return true;
        }

        return Uri.TryCreate(origin, UriKind.Absolute, out var uri)
            && (string.Equals(uri.Authority, request.Host.Value, StringComparison.OrdinalIgnoreCase)
                || string.Equals(uri.Authority, request.Headers["X-Forwarded-Host"].ToString(), StringComparison.OrdinalIgnoreCase));
    }

    private static string Base64Url(ReadOnlySpan<byte> bytes) => System.Buffers.Text.Base64Url.EncodeToString(bytes);

    private static bool TryFromBase64Url(string text, Span<byte> destination) =>
        System.Buffers.Text.Base64Url.TryDecodeFromChars(text, destination, out var written) && written == destination.Length;
}
