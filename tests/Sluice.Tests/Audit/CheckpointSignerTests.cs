using Sluice.Audit;

namespace Sluice.Tests.Audit;

public sealed class CheckpointSignerTests : IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("sluice-test-").FullName;

    [Fact]
    public void A_checkpoint_is_a_C2SP_signed_note_over_origin_size_and_root()
    {
        using var signer = new CheckpointSigner(Path.Combine(_directory, "keys", "k.pem"), "example.test/log");
        var root = System.Security.Cryptography.SHA256.HashData("root"u8);

        var note = signer.Sign(42, root);

        var lines = note.Split('\n');
        Assert.Equal(["example.test/log", "42", Convert.ToBase64String(root), ""], lines[..4]);
        Assert.StartsWith("\u2014 example.test/log ", lines[4], StringComparison.Ordinal);
        Assert.Equal("", lines[5]);
        var blob = Convert.FromBase64String(lines[4].Split(' ')[2]);
        Assert.Equal(System.Security.Cryptography.SHA256.HashData(signer.PublicKeySpki)[..4], blob[..4]);
        Assert.True(CheckpointSigner.TryVerify(note, "example.test/log", signer.PublicKeySpki, out var size, out var parsedRoot, out _));
        Assert.Equal(42, size);
        Assert.Equal(root, parsedRoot);
        Assert.False(CheckpointSigner.TryVerify(note.Replace("\n42\n", "\n43\n", StringComparison.Ordinal), "example.test/log", signer.PublicKeySpki, out _, out _, out _));
        Assert.False(CheckpointSigner.TryVerify(note, "other.test/log", signer.PublicKeySpki, out _, out _, out _));
        Assert.False(CheckpointSigner.TryVerify("garbage", "example.test/log", signer.PublicKeySpki, out _, out _, out _));
    }

    [Fact]
    [System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
    public void The_key_file_is_created_once_readable_only_by_its_owner_and_reused()
    {
        var file = Path.Combine(_directory, "keys", "audit.pem");
        byte[] first;
        using (var signer = new CheckpointSigner(file, "example.test/log"))
        {
            first = signer.PublicKeySpki;
        }

        using var again = new CheckpointSigner(file, "example.test/log");

        Assert.Equal(first, again.PublicKeySpki);
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(file));
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute, File.GetUnixFileMode(Path.GetDirectoryName(file)!));
        Assert.Contains("PRIVATE KEY", File.ReadAllText(file), StringComparison.Ordinal);
    }

    public void Dispose() => Directory.Delete(_directory, recursive: true);
}
