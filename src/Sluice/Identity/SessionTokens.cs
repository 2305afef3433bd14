using System.Security.Cryptography;
using System.Text;

namespace Sluice.Identity;

/// <summary>
/// Random bearer tokens for sessions and invitations. They carry 256 bits of entropy, so a fast SHA-256 suffices
/// for storage (unlike passwords, they cannot be guessed from a dictionary); only the hash is kept.
/// </summary>
public static class SessionTokens
{
    public static string Create() => Base64UrlEncode(RandomNumberGenerator.GetBytes(32));

    public static string Hash(string token) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(token)));

    private static string Base64UrlEncode(byte[] bytes) =>
        Convert.ToBase64String(bytes).TrimEnd('=').Replace('+', '-').Replace('/', '_');
}
