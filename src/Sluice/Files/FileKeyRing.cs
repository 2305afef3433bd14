using System.Security.Cryptography;
using System.Text;

namespace Sluice.Files;

/// <summary>
/// The key-encryption keys (KEKs) that wrap every file's data key, kept outside the database: a file only the server
/// can read, or a setting. The last key is current and wraps new data keys; older ones still unwrap until
/// <c>sluice files rotate-kek</c> has rewrapped every file under the newest and retired them.
/// </summary>
public sealed class FileKeyRing
{
    public const int KeyIdSize = 8;
    private const int KeySize = 32;
    private readonly Lock _lock = new();
    private IReadOnlyList<(byte[] Id, byte[] Key)> _loaded;
    private DateTime _loadedStamp;

    private FileKeyRing(string? file, IReadOnlyList<(byte[] Id, byte[] Key)> keys)
    {
        File = file;
        _loaded = keys;
        _loadedStamp = file is null ? default : System.IO.File.GetLastWriteTimeUtc(file);
    }

    /// <summary>The ring, reread when its file changed (a rotation by the CLI reaches running servers at their next file operation).</summary>
    private IReadOnlyList<(byte[] Id, byte[] Key)> Ring
    {
        get
        {
            if (File is not null && System.IO.File.GetLastWriteTimeUtc(File) is var stamp && stamp != _loadedStamp)
            {
                lock (_lock)
                {
                    if (stamp != _loadedStamp)
                    {
                        _loaded = Parse(System.IO.File.ReadAllText(File), File);
                        _loadedStamp = stamp;
                    }
                }
            }

            return _loaded;
        }
    }

    /// <summary>The ring's file, or null when it comes from a setting (and then cannot be rotated by Sluice).</summary>
    public string? File { get; }

    public int Count => Ring.Count;

    public string CurrentId => Convert.ToHexStringLower(Ring[^1].Id);

    public static FileKeyRing FromFile(string path) =>
        new(path, Parse(Crypto.SecretFile.ReadOrCreate(path, NewLine), path));

    public static FileKeyRing FromText(string text) => new(null, Parse(text, "Files:KeyEncryptionKeys"));

    /// <summary>Adds a new current key to the ring file (written aside and moved into place).</summary>
    public void AddKey()
    {
        var file = File ?? throw new InvalidOperationException("The key ring comes from the Files:KeyEncryptionKeys setting; add a key there.");
        lock (_lock)
        {
            var text = System.IO.File.ReadAllText(file).TrimEnd() + "\n" + NewLine();
            Replace(file, text);
        }
    }

    /// <summary>Keeps only the current key in the ring file (after every data key has been rewrapped under it).</summary>
    public void RetireOldKeys()
    {
        var file = File ?? throw new InvalidOperationException("The key ring comes from the Files:KeyEncryptionKeys setting; edit it there.");
        lock (_lock)
        {
            var current = Ring[^1];
            var text = $"{Convert.ToHexStringLower(current.Id)}:{Convert.ToBase64String(current.Key)}\n";
            Replace(file, text);
        }
    }

    /// <summary>Wraps a data key under the current KEK: key id, nonce, wrapped key and tag into <paramref name="slot"/>.</summary>
    public void Wrap(ReadOnlySpan<byte> dataKey, ReadOnlySpan<byte> associatedData, Span<byte> slot)
    {
        var (id, key) = Ring[^1];
        id.CopyTo(slot);
        var nonce = slot.Slice(KeyIdSize, 12);
        RandomNumberGenerator.Fill(nonce);
        using var aes = new AesGcm(key, 16);
        aes.Encrypt(nonce, dataKey, slot.Slice(KeyIdSize + 12, KeySize), slot.Slice(KeyIdSize + 12 + KeySize, 16), associatedData);
    }

    /// <summary>Unwraps a slot written by <see cref="Wrap"/>; false when its KEK is not in the ring or the slot was shredded.</summary>
    public bool TryUnwrap(ReadOnlySpan<byte> slot, ReadOnlySpan<byte> associatedData, Span<byte> dataKey, out bool underCurrent)
    {
        underCurrent = false;
        var keys = Ring;
        for (var i = 0; i < keys.Count; i++)
        {
            if (!slot[..KeyIdSize].SequenceEqual(keys[i].Id))
            {
                continue;
            }

            try
            {
                using var aes = new AesGcm(keys[i].Key, 16);
                aes.Decrypt(slot.Slice(KeyIdSize, 12), slot.Slice(KeyIdSize + 12, KeySize), slot.Slice(KeyIdSize + 12 + KeySize, 16), dataKey, associatedData);
                underCurrent = i == keys.Count - 1;
                return true;
            }
            catch (AuthenticationTagMismatchException)
            {
                return false;
            }
        }

        return false;
    }

    public const int SlotSize = KeyIdSize + 12 + KeySize + 16;

    private static string NewLine() =>
        $"{Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(KeyIdSize))}:{Convert.ToBase64String(RandomNumberGenerator.GetBytes(KeySize))}\n";

    private static List<(byte[] Id, byte[] Key)> Parse(string text, string source)
    {
        var keys = new List<(byte[] Id, byte[] Key)>();
        foreach (var raw in text.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            if (raw.StartsWith('#'))
            {
                continue;
            }

            var parts = raw.Split(':', 2);
            byte[] id, key;
            try
            {
                id = Convert.FromHexString(parts[0]);
                key = parts.Length == 2 ? Convert.FromBase64String(parts[1]) : [];
            }
            catch (FormatException)
            {
                throw new CryptographicException($"{source}: every line must be 'id:base64-key' (16 hex digits, a 256-bit key).");
            }

            if (id.Length != KeyIdSize || key.Length != KeySize)
            {
                throw new CryptographicException($"{source}: every line must be 'id:base64-key' (16 hex digits, a 256-bit key).");
            }

            keys.Add((id, key));
        }

        return keys.Count > 0 ? keys : throw new CryptographicException($"{source} holds no key-encryption key.");
    }

    private static void Replace(string file, string text)
    {
        var temporary = file + "." + Guid.NewGuid().ToString("N") + ".tmp";
        var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write };
        if (!OperatingSystem.IsWindows())
        {
            options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        }

        using (var stream = new FileStream(temporary, options))
        {
            stream.Write(Encoding.ASCII.GetBytes(text));
            stream.Flush(flushToDisk: true);
        }

        System.IO.File.Move(temporary, file, overwrite: true);
    }
}
