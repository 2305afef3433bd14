using System.Text;
using Sluice.Crypto;

namespace Sluice.Identity;

/// <summary>What a new password must be: long enough, within bcrypt's 72 bytes, and not an obvious guess.</summary>
public static class PasswordPolicy
{
    private static readonly HashSet<string> Common = new(StringComparer.OrdinalIgnoreCase)
    {
        "password", "password1", "password123", "passw0rd", "1234567890", "12345678910", "0123456789", "qwertyuiop",
        "qwerty123", "iloveyou", "letmein123", "welcome123", "administrator", "changeme123", "sluicesluice",
        "abcdefghij", "1111111111", "aaaaaaaaaa", "trustno1trustno1",
    };

    /// <summary>Null when acceptable, otherwise what is wrong (never the password itself).</summary>
    public static string? Problem(string? password, string? email, int minimumLength)
    {
        if (string.IsNullOrEmpty(password))
        {
            return "is required";
        }

        var bytes = Encoding.UTF8.GetByteCount(password);
        if (bytes > Bcrypt.MaxSecretBytes)
        {
            return $"is {bytes} bytes long; passwords are limited to {Bcrypt.MaxSecretBytes} bytes of UTF-8 (bcrypt would ignore the rest)";
        }

        if (password.Contains('\0', StringComparison.Ordinal))
        {
            return "cannot contain the NUL character";
        }

        if (password.Length < minimumLength)
        {
            return $"must be at least {minimumLength} characters long";
        }

        if (Common.Contains(password) || password.Distinct().Count() <= 2)
        {
            return "is too common or too easy to guess; choose another";
        }

        var local = email?.Split('@')[0];
        if (!string.IsNullOrEmpty(local) && local.Length >= 4 && password.Contains(local, StringComparison.OrdinalIgnoreCase))
        {
            return "must not contain your email address";
        }

        return null;
    }
}
