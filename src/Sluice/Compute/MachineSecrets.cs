using System.Security.Cryptography;
using System.Text;

namespace Sluice.Compute;

/// <summary>
/// The compute plane's random secrets. Each is 256 bits from the system's CSPRNG, shown once and stored as its SHA-256
/// (a fast hash is right for a secret with 256 bits of entropy: there is nothing to guess, so no salt or stretching).
/// A machine credential carries its machine id, so checking one is a primary-key read and a constant-time compare.
/// </summary>
public static class MachineSecrets
{
    public const string JoinTokenPrefix = "sjt_";
    public const string CredentialPrefix = "smc_";
    public const string ServingTokenPrefix = "sst_";

    private const int SecretChars = 43; // base64url of 32 bytes, unpadded

    public static string NewSecret() => Base64Url(RandomNumberGenerator.GetBytes(32));

    public static string NewJoinToken() => JoinTokenPrefix + NewSecret();

    public static string NewServingToken() => ServingTokenPrefix + NewSecret();

    /// <summary><c>smc_{machine id, 32 hex}_{secret}</c>.</summary>
    public static string NewCredential(Guid machineId) => $"{CredentialPrefix}{machineId:N}_{NewSecret()}";

    public static string Hash(string secret) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(secret)));

    public static bool IsWellFormedJoinToken(string? token) =>
        token is { Length: 4 + SecretChars } && token.StartsWith(JoinTokenPrefix, StringComparison.Ordinal) && IsBase64Url(token.AsSpan(4));

    /// <summary>Splits a credential into its machine id and the whole credential's hash; false when it is malformed.</summary>
    public static bool TryParseCredential(string? credential, out Guid machineId)
    {
        machineId = Guid.Empty;
        return credential is { Length: 4 + 32 + 1 + SecretChars }
            && credential.StartsWith(CredentialPrefix, StringComparison.Ordinal)
            && credential[36] == '_'
            && Guid.TryParseExact(credential.AsSpan(4, 32), "N", out machineId)
            && IsBase64Url(credential.AsSpan(37));
    }

    /// <summary>Constant-time comparison of two lower-case hex hashes.</summary>
    public static bool HashEquals(string presentedHash, string storedHash) =>
        CryptographicOperations.FixedTimeEquals(Encoding.ASCII.GetBytes(presentedHash), Encoding.ASCII.GetBytes(storedHash));

    private static string Base64Url(byte[] bytes) => Convert.ToBase64String(bytes).TrimEnd('=').Replace('+', '-').Replace('/', '_');

    private static bool IsBase64Url(ReadOnlySpan<char> value)
    {
        foreach (var c in value)
        {
            if (!(char.IsAsciiLetterOrDigit(c) || c is '-' or '_'))
            {
                return false;
            }
        }

        return true;
    }
}
