using System.Security.Cryptography;
using System.Text;
using Sluice.Crypto;

namespace Sluice.Identity;

/// <summary>
/// API keys look like <c>sk-sluice-</c> + 32 base62 characters of secret + 6 base62 characters of CRC-32 over the
/// secret. The fixed prefix lets secret scanners find leaked keys; the checksum rejects mistyped or made-up keys
/// without touching the database.
/// </summary>
public static class ApiKeyFormat
{
    public const string Prefix = "sk-sluice-";
    public const int SecretLength = 32;
    public const int ChecksumLength = 6;
    public const int Length = 10 + SecretLength + ChecksumLength;

    /// <summary>How much of the key is stored in clear to find its row: the fixed prefix and 8 secret characters.</summary>
    public const int LookupPrefixLength = 10 + 8;

    private const string Alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

    public static string Generate()
    {
        var secret = RandomNumberGenerator.GetString(Alphabet, SecretLength);
        return Prefix + secret + Checksum(secret);
    }

    /// <summary>A well-formed key around <paramref name="secret"/> (32 base62 characters): what anyone can mint, for tests and benchmarks.</summary>
    internal static string WithChecksum(string secret) => Prefix + secret + Checksum(secret);

    /// <summary>True when <paramref name="key"/> has the shape and checksum of a Sluice key.</summary>
    public static bool IsWellFormed(ReadOnlySpan<char> key)
    {
        if (key.Length != Length || !key.StartsWith(Prefix, StringComparison.Ordinal))
        {
            return false;
        }

        var body = key[Prefix.Length..];
        foreach (var c in body)
        {
            if (!char.IsAsciiLetterOrDigit(c))
            {
                return false;
            }
        }

        Span<char> expected = stackalloc char[ChecksumLength];
        WriteChecksum(body[..SecretLength], expected);
        return body[SecretLength..].SequenceEqual(expected);
    }

    /// <summary>The part of a key stored in clear (<see cref="LookupPrefixLength"/> characters).</summary>
    public static string LookupPrefix(string key) => key[..LookupPrefixLength];

    private static string Checksum(string secret)
    {
        Span<char> checksum = stackalloc char[ChecksumLength];
        WriteChecksum(secret, checksum);
        return new string(checksum);
    }

    private static void WriteChecksum(ReadOnlySpan<char> secret, Span<char> destination)
    {
        Span<byte> ascii = stackalloc byte[SecretLength];
        Encoding.ASCII.GetBytes(secret, ascii);
        ulong value = Crc32.Compute(ascii);
        for (var i = ChecksumLength - 1; i >= 0; i--)
        {
            destination[i] = Alphabet[(int)(value % 62)];
            value /= 62;
        }
    }
}
