using System.Security.Cryptography;
using Sluice.Files;

namespace Sluice.Tests.Files;

/// <summary>The encrypted container: round trips, tampering, truncation, binding, rewrapping and shredding.</summary>
public sealed class EncryptedFileTests : IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("sluice-enc-").FullName;

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    private static readonly EncryptedFile.Binding Binding = new("file", Guid.NewGuid(), Guid.NewGuid());

    private async Task<(string Path, byte[] Plain, FileKeyRing Ring)> WriteAsync(int size)
    {
        var ring = FileKeyRing.FromFile(Path.Combine(_directory, "ring.kek"));
        var plain = RandomNumberGenerator.GetBytes(size);
        var path = Path.Combine(_directory, Guid.NewGuid().ToString("N"));
        Assert.Equal(size, await EncryptedFile.WriteAsync(path, ring, Binding, new MemoryStream(plain), long.MaxValue, null, CancellationToken.None));
        return (path, plain, ring);
    }

    private static byte[] Read(string path, FileKeyRing ring, EncryptedFile.Binding? binding = null)
    {
        using var stream = EncryptedFile.OpenRead(path, ring, binding ?? Binding);
        using var copy = new MemoryStream();
        stream.CopyTo(copy);
        return copy.ToArray();
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(EncryptedFile.ChunkSize)]
    [InlineData(EncryptedFile.ChunkSize + 1)]
    [InlineData((3 * EncryptedFile.ChunkSize) + 17)]
    public async Task Bytes_round_trip_and_never_appear_in_the_file(int size)
    {
        var (path, plain, ring) = await WriteAsync(size);
        Assert.Equal(plain, Read(path, ring));
        if (size >= 32)
        {
            Assert.Equal(-1, File.ReadAllBytes(path).AsSpan().IndexOf(plain.AsSpan(0, 32)));
        }
    }

    [Fact]
    public async Task A_changed_byte_a_dropped_chunk_or_another_binding_is_refused()
    {
        var (path, _, ring) = await WriteAsync((2 * EncryptedFile.ChunkSize) + 5);
        var bytes = File.ReadAllBytes(path);

        var flipped = (byte[])bytes.Clone();
        flipped[EncryptedFile.HeaderSize + 10] ^= 1;
        File.WriteAllBytes(path, flipped);
        Assert.ThrowsAny<CryptographicException>(() => Read(path, ring));

        File.WriteAllBytes(path, bytes[..(EncryptedFile.HeaderSize + EncryptedFile.ChunkSize + 16)]); // the last chunks cut off
        Assert.ThrowsAny<CryptographicException>(() => Read(path, ring));

        File.WriteAllBytes(path, bytes);
        Assert.ThrowsAny<CryptographicException>(() => Read(path, ring, Binding with { OrganizationId = Guid.NewGuid() }));
    }

    [Fact]
    public async Task Rewrapping_under_a_new_key_then_retiring_the_old_keeps_files_readable_and_old_copies_unreadable()
    {
        var (path, plain, ring) = await WriteAsync(1000);
        var backup = path + ".backup";
        File.Copy(path, backup);

        ring.AddKey();
        Assert.True(EncryptedFile.Rewrap(path, ring, Binding));
        Assert.False(EncryptedFile.Rewrap(path, ring, Binding));
        ring.RetireOldKeys();

        Assert.Equal(plain, Read(path, ring));
        Assert.ThrowsAny<CryptographicException>(() => Read(backup, ring));
    }

    [Fact]
    public async Task Shredding_destroys_the_key_before_the_file_goes()
    {
        var (path, _, ring) = await WriteAsync(1000);
        using (var held = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete))
        {
            EncryptedFile.Shred(path);
            Assert.False(File.Exists(path));
            var header = new byte[EncryptedFile.HeaderSize];
            held.ReadExactly(header);
            Assert.False(header.AsSpan(0, 8).SequenceEqual("SLUICE\0F"u8)); // what a reader still holding it sees is noise
        }

        EncryptedFile.Shred(path); // idempotent
    }
}
