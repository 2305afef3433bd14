using System.Security.Cryptography;
using System.Text;
using Microsoft.Extensions.Options;
using Sluice.Crypto;
using Sluice.Hosting;

namespace Sluice.Audit;

/// <summary>
/// Signs and verifies checkpoints as C2SP signed notes (c2sp.org/signed-note, c2sp.org/tlog-checkpoint) with an
/// ECDSA P-256 key (signature type 0x02; key id = first 4 bytes of SHA-256 of the SPKI public key). The private key
/// lives in a PEM file outside the database, created with owner-only permissions on first use.
/// </summary>
public sealed class CheckpointSigner : IDisposable
{
    private const string Dash = "\u2014 ";
    private readonly ECDsa _key;

    public CheckpointSigner(IOptions<AuditOptions> audit, IOptions<ServerOptions> server)
        : this(KeyFile(audit.Value, server.Value), audit.Value.Origin)
    {
    }

    public CheckpointSigner(string keyFile, string origin)
    {
        Origin = origin;
        KeyFilePath = keyFile;
        _key = LoadOrCreate(keyFile);
        PublicKeySpki = _key.ExportSubjectPublicKeyInfo();
        KeyId = KeyIdOf(PublicKeySpki);
    }

    public string Origin { get; }

    public byte[] PublicKeySpki { get; }

    public byte[] KeyId { get; }

    public string PublicKeyPem => PemEncoding.WriteString("PUBLIC KEY", PublicKeySpki);

    public string KeyFilePath { get; }

    public static string KeyFile(AuditOptions audit, ServerOptions server) =>
        string.IsNullOrWhiteSpace(audit.SigningKeyFile)
            ? Path.Combine(Path.GetFullPath(server.DataDir), "keys", "audit-signing-key.pem")
            : Path.GetFullPath(audit.SigningKeyFile);

    /// <summary>The signed note for a tree of <paramref name="size"/> with <paramref name="root"/>.</summary>
    public string Sign(long size, byte[] root)
    {
        var body = $"{Origin}\n{size}\n{Convert.ToBase64String(root)}\n";
        var signature = _key.SignData(Encoding.UTF8.GetBytes(body), HashAlgorithmName.SHA256, DSASignatureFormat.Rfc3279DerSequence);
        return $"{body}\n{Dash}{Origin} {Convert.ToBase64String([.. KeyId, .. signature])}\n";
    }

    /// <summary>Parses a checkpoint note and checks its signature by the given public key; never throws on bad input.</summary>
    public static bool TryVerify(string note, string origin, byte[] publicKeySpki, out long size, out byte[] root, out string? error)
    {
        size = 0;
        root = [];
        var separator = note.IndexOf("\n\n", StringComparison.Ordinal);
        if (separator < 0 || !note.EndsWith('\n'))
        {
            error = "not a signed note";
            return false;
        }

        var body = note[..(separator + 1)];
        var lines = body.Split('\n');
        if (lines.Length < 4 || lines[0] != origin || !long.TryParse(lines[1], System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out size))
        {
            error = "the checkpoint's origin or size line is wrong";
            return false;
        }

        try
        {
            root = Convert.FromBase64String(lines[2]);
        }
        catch (FormatException)
        {
            error = "the checkpoint's root is not base64";
            return false;
        }

        using var key = ECDsa.Create();
        key.ImportSubjectPublicKeyInfo(publicKeySpki, out _);
        var keyId = KeyIdOf(publicKeySpki);
        foreach (var line in note[(separator + 2)..].Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            var parts = line.StartsWith(Dash, StringComparison.Ordinal) ? line[Dash.Length..].Split(' ') : [];
            if (parts.Length != 2 || parts[0] != origin)
            {
                continue;
            }

            byte[] blob;
            try
            {
                blob = Convert.FromBase64String(parts[1]);
            }
            catch (FormatException)
            {
                continue;
            }

            if (blob.Length > 4 && blob.AsSpan(0, 4).SequenceEqual(keyId))
            {
                var valid = key.VerifyData(Encoding.UTF8.GetBytes(body), blob.AsSpan(4), HashAlgorithmName.SHA256, DSASignatureFormat.Rfc3279DerSequence);
                error = valid ? null : "the signature does not verify";
                return valid && root.Length == Merkle.HashSize;
            }
        }

        error = "no signature by the audit key";
        return false;
    }

    public static byte[] KeyIdOf(byte[] spki) => SHA256.HashData(spki).AsSpan(0, 4).ToArray();

    private static ECDsa LoadOrCreate(string keyFile)
    {
        var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        key.ImportFromPem(SecretFile.ReadOrCreate(keyFile, () => key.ExportPkcs8PrivateKeyPem()));
        return key;
    }

    public void Dispose() => _key.Dispose();
}
