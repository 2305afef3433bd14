using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text;

namespace Sluice.Crypto;

/// <summary>
/// bcrypt (<c>$2b$</c>) through the system's libxcrypt (<c>libcrypt.so.1</c>). Secrets are copied into native
/// buffers that are zeroed before they are freed, and no message here ever contains the secret.
/// </summary>
public static unsafe partial class Bcrypt
{
    /// <summary>bcrypt reads at most 72 bytes; longer secrets are refused instead of silently truncated.</summary>
    public const int MaxSecretBytes = 72;

    public const int MinCost = 4;
    public const int MaxCost = 31;

    private const string Library = "libcrypt.so.1";

    // sizeof(struct crypt_data) in libxcrypt: the scratch area crypt_rn works in.
    private const int CryptDataSize = 32768;
    private const int SettingBufferSize = 128;

    public static string Hash(ReadOnlySpan<char> secret, int cost)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(cost, MinCost);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(cost, MaxCost);
        var setting = GenerateSetting(cost);
        return Crypt(secret, setting) ?? throw new CryptographicException("libxcrypt could not compute a bcrypt hash.");
    }

    /// <summary>True when <paramref name="secret"/> hashes to <paramref name="hash"/>; false for a wrong secret or a malformed hash.</summary>
    public static bool Verify(ReadOnlySpan<char> secret, string hash)
    {
        if (!hash.StartsWith("$2", StringComparison.Ordinal)
            || Encoding.UTF8.GetByteCount(secret) > MaxSecretBytes
            || secret.Contains('\0'))
        {
            return false;
        }

        var computed = Crypt(secret, hash);
        return computed is not null
            && CryptographicOperations.FixedTimeEquals(Encoding.ASCII.GetBytes(computed), Encoding.ASCII.GetBytes(hash));
    }

    /// <summary>Throws when bcrypt cannot represent <paramref name="secret"/> faithfully.</summary>
    public static void EnsureHashable(ReadOnlySpan<char> secret)
    {
        var length = Encoding.UTF8.GetByteCount(secret);
        if (length > MaxSecretBytes)
        {
            throw new SecretTooLongException(length);
        }

        if (secret.Contains('\0'))
        {
            throw new ArgumentException("A password cannot contain the NUL character.", nameof(secret));
        }
    }

    private static string GenerateSetting(int cost)
    {
        var prefix = "$2b$\0"u8;
        var output = stackalloc byte[SettingBufferSize];
        fixed (byte* prefixPointer = prefix)
        {
            // With no random bytes given, libxcrypt draws them from the operating system itself.
            var result = CryptGensaltRn(prefixPointer, (nuint)cost, null, 0, output, SettingBufferSize);
            if (result == null)
            {
                throw new CryptographicException($"libxcrypt could not generate a bcrypt salt (errno {Marshal.GetLastPInvokeError()}).");
            }

            return Marshal.PtrToStringAnsi((nint)result)!;
        }
    }

    private static string? Crypt(ReadOnlySpan<char> secret, string setting)
    {
        EnsureHashable(secret);
        var secretLength = Encoding.UTF8.GetByteCount(secret);
        var phrase = (byte*)NativeMemory.AllocZeroed((nuint)secretLength + 1);
        var data = NativeMemory.AllocZeroed(CryptDataSize);
        var settingBytes = Encoding.ASCII.GetBytes(setting + "\0");
        try
        {
            Encoding.UTF8.GetBytes(secret, new Span<byte>(phrase, secretLength));
            fixed (byte* settingPointer = settingBytes)
            {
                var result = CryptRn(phrase, settingPointer, data, CryptDataSize);
                return result == null ? null : Marshal.PtrToStringAnsi((nint)result);
            }
        }
        finally
        {
            NativeMemory.Clear(phrase, (nuint)secretLength + 1);
            NativeMemory.Clear(data, CryptDataSize);
            NativeMemory.Free(phrase);
            NativeMemory.Free(data);
        }
    }

    [LibraryImport(Library, EntryPoint = "crypt_rn", SetLastError = true)]
    private static partial byte* CryptRn(byte* phrase, byte* setting, void* data, int size);

    [LibraryImport(Library, EntryPoint = "crypt_gensalt_rn", SetLastError = true)]
    private static partial byte* CryptGensaltRn(byte* prefix, nuint count, byte* randomBytes, int randomByteCount, byte* output, int outputSize);
}

public sealed class SecretTooLongException(int byteCount)
    : ArgumentException($"Passwords are limited to {Bcrypt.MaxSecretBytes} bytes of UTF-8; this one has {byteCount}. Choose a shorter one.");
