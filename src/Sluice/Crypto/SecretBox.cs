using System.Security.Cryptography;
using System.Text;

namespace Sluice.Crypto;

/// <summary>
/// Encrypts small secrets (upstream API keys) with AES-256-GCM under a key kept in a file outside the database,
/// binding each ciphertext to its owner's id as associated data so it cannot be moved to another row.
/// </summary>
public sealed class SecretBox
{
    private const int NonceSize = 12;
    private const int TagSize = 16;
    private readonly byte[] _key;

    public SecretBox(string keyFile)
    {
        KeyFile = keyFile;
        _key = LoadOrCreate(keyFile);
    }

    public string KeyFile { get; }

    /// <summary>
    /// A 256-bit key for one purpose (HKDF-SHA256 over this box's key), so every replica that shares the secrets key
    /// file derives the same one, and no purpose's key reveals another's or the box's own.
    /// </summary>
    public byte[] DeriveKey(string purpose) =>
        HKDF.DeriveKey(HashAlgorithmName.SHA256, _key, 32, salt: [], info: Encoding.UTF8.GetBytes("sluice:" + purpose));

    public string Seal(string secret, string associatedData)
    {
        var plaintext = Encoding.UTF8.GetBytes(secret);
        var output = new byte[NonceSize + plaintext.Length + TagSize];
        var nonce = output.AsSpan(0, NonceSize);
        RandomNumberGenerator.Fill(nonce);
        using var aes = new AesGcm(_key, TagSize);
        aes.Encrypt(nonce, plaintext, output.AsSpan(NonceSize, plaintext.Length), output.AsSpan(NonceSize + plaintext.Length), Encoding.UTF8.GetBytes(associatedData));
        CryptographicOperations.ZeroMemory(plaintext);
        return Convert.ToBase64String(output);
    }

    public string Open(string sealedSecret, string associatedData)
    {
        var input = Convert.FromBase64String(sealedSecret);
        var length = input.Length - NonceSize - TagSize;
        var plaintext = new byte[length];
        using var aes = new AesGcm(_key, TagSize);
        aes.Decrypt(input.AsSpan(0, NonceSize), input.AsSpan(NonceSize, length), input.AsSpan(NonceSize + length), plaintext, Encoding.UTF8.GetBytes(associatedData));
        return Encoding.UTF8.GetString(plaintext);
    }

    private static byte[] LoadOrCreate(string keyFile)
    {
        var key = Convert.FromBase64String(SecretFile.ReadOrCreate(keyFile, () => Convert.ToBase64String(RandomNumberGenerator.GetBytes(32))).Trim());
        return key.Length == 32 ? key : throw new CryptographicException($"{keyFile} does not hold a 256-bit key.");
    }
}
