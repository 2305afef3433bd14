using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;

namespace Sluice.Files;

/// <summary>
/// The on-disk form of every stored file and batch journal. A 256-byte header holds the magic, the plaintext chunk size
/// and two key slots, each able to hold the object's 256-bit data key wrapped by a key-encryption key (two, so a KEK
/// rotation writes the new wrapping beside the old and a crash at any moment leaves one readable). The body is either
/// a chunked AES-256-GCM stream (a file: each chunk's nonce is its index and a last-chunk flag, so chunks cannot be
/// reordered, dropped or truncated unnoticed) or a log of sealed records (a journal, appended to as work completes).
/// The object and organization ids are bound into every wrapping and every chunk as associated data.
/// Shredding overwrites both key slots and forces that to disk before the file is removed: once the data key is gone,
/// no copy of the ciphertext (backup, snapshot, disk remnant) can be read again.
/// </summary>
public static class EncryptedFile
{
    public const int HeaderSize = 256;
    public const int ChunkSize = 64 * 1024;
    private const int TagSize = 16;
    private const int NonceSize = 12;
    private const int SlotsOffset = 16;
    private static readonly byte[] Magic = "SLUICE\0F"u8.ToArray();

    /// <summary>What an encrypted object is bound to: its kind, id and organization.</summary>
    public readonly record struct Binding(string Kind, Guid ObjectId, Guid OrganizationId)
    {
        public byte[] KeyContext() => Encoding.UTF8.GetBytes($"sluice:{Kind}:dek:{ObjectId:N}:{OrganizationId:N}");

        public byte[] DataContext() => Encoding.UTF8.GetBytes($"sluice:{Kind}:data:{ObjectId:N}:{OrganizationId:N}");
    }

    /// <summary>Creates the file with a fresh data key wrapped under the ring's current key; returns the open stream and key.</summary>
    public static (FileStream Stream, byte[] DataKey) Create(string path, FileKeyRing ring, Binding binding)
    {
        var dataKey = RandomNumberGenerator.GetBytes(32);
        var header = new byte[HeaderSize];
        Magic.CopyTo(header, 0);
        BinaryPrimitives.WriteInt32BigEndian(header.AsSpan(8), ChunkSize);
        ring.Wrap(dataKey, binding.KeyContext(), header.AsSpan(SlotsOffset, FileKeyRing.SlotSize));
        RandomNumberGenerator.Fill(header.AsSpan(SlotsOffset + FileKeyRing.SlotSize, FileKeyRing.SlotSize));
        var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.ReadWrite, Share = FileShare.Read };
        if (!OperatingSystem.IsWindows())
        {
            options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        }

        var stream = new FileStream(path, options);
        stream.Write(header);
        return (stream, dataKey);
    }

    /// <summary>Reads the data key from an open file's header; throws when neither slot unwraps (shredded or foreign key).</summary>
    public static byte[] ReadDataKey(FileStream stream, FileKeyRing ring, Binding binding, out bool underCurrent, out int validSlot)
    {
        var header = new byte[HeaderSize];
        stream.Position = 0;
        stream.ReadExactly(header);
        if (!header.AsSpan(0, 8).SequenceEqual(Magic))
        {
            throw new CryptographicException("not an encrypted Sluice file");
        }

        var dataKey = new byte[32];
        var context = binding.KeyContext();
        for (var slot = 0; slot < 2; slot++)
        {
            if (ring.TryUnwrap(header.AsSpan(SlotsOffset + (slot * FileKeyRing.SlotSize), FileKeyRing.SlotSize), context, dataKey, out underCurrent))
            {
                validSlot = slot;
                return dataKey;
            }
        }

        throw new CryptographicException("the file's data key cannot be unwrapped (shredded, or its key-encryption key is not in the ring)");
    }

    /// <summary>
    /// Rewraps the data key under the ring's current KEK: the new wrapping goes to the free slot and reaches the disk
    /// before the old slot is overwritten. Returns false when it was already under the current key.
    /// </summary>
    public static bool Rewrap(string path, FileKeyRing ring, Binding binding)
    {
        using var stream = new FileStream(path, FileMode.Open, FileAccess.ReadWrite, FileShare.Read);
        var dataKey = ReadDataKey(stream, ring, binding, out var underCurrent, out var oldSlot);
        try
        {
            if (underCurrent)
            {
                return false;
            }

            var slot = new byte[FileKeyRing.SlotSize];
            ring.Wrap(dataKey, binding.KeyContext(), slot);
            stream.Position = SlotsOffset + ((1 - oldSlot) * FileKeyRing.SlotSize);
            stream.Write(slot);
            stream.Flush(flushToDisk: true);
            RandomNumberGenerator.Fill(slot);
            stream.Position = SlotsOffset + (oldSlot * FileKeyRing.SlotSize);
            stream.Write(slot);
            stream.Flush(flushToDisk: true);
            return true;
        }
        finally
        {
            CryptographicOperations.ZeroMemory(dataKey);
        }
    }

    /// <summary>Destroys the data key (both slots overwritten and synced), then deletes the ciphertext. Idempotent.</summary>
    public static void Shred(string path)
    {
        try
        {
            using (var stream = new FileStream(path, FileMode.Open, FileAccess.ReadWrite, FileShare.ReadWrite | FileShare.Delete))
            {
                if (stream.Length >= HeaderSize)
                {
                    stream.Position = 0;
                    stream.Write(RandomNumberGenerator.GetBytes(HeaderSize));
                    stream.Flush(flushToDisk: true);
                }
            }

            File.Delete(path);
        }
        catch (FileNotFoundException)
        {
        }
        catch (DirectoryNotFoundException)
        {
        }
    }

    /// <summary>Encrypts <paramref name="source"/> into a new file chunk by chunk; plaintext never reaches the disk.</summary>
    public static async Task<long> WriteAsync(
        string path, FileKeyRing ring, Binding binding, Stream source, long maxBytes, Action<ReadOnlyMemory<byte>>? observe, CancellationToken cancellationToken)
    {
        var (stream, dataKey) = Create(path, ring, binding);
        var plain = new byte[ChunkSize];
        var sealedChunk = new byte[ChunkSize + TagSize];
        try
        {
            await using (stream)
            {
                using var aes = new AesGcm(dataKey, TagSize);
                var context = binding.DataContext();
                long total = 0;
                long index = 0;
                var filled = 0;
                while (true)
                {
                    var read = await source.ReadAsync(plain.AsMemory(filled), cancellationToken);
                    if (read > 0)
                    {
                        observe?.Invoke(plain.AsMemory(filled, read));
                        filled += read;
                        total += read;
                        if (total > maxBytes)
                        {
                            throw new FileTooLargeException(maxBytes);
                        }

                        if (filled < ChunkSize)
                        {
                            continue;
                        }

                        // A full chunk is sealed only once more data is known to follow, so the last chunk carries the flag.
                        var extra = new byte[1];
                        var more = await source.ReadAsync(extra, cancellationToken);
                        SealChunk(aes, context, index++, final: more == 0, plain, ChunkSize, sealedChunk);
                        await stream.WriteAsync(sealedChunk.AsMemory(0, ChunkSize + TagSize), cancellationToken);
                        if (more == 0)
                        {
                            break;
                        }

                        observe?.Invoke(extra);
                        plain[0] = extra[0];
                        filled = 1;
                        total += 1;
                        if (total > maxBytes)
                        {
                            throw new FileTooLargeException(maxBytes); // a limit that is a whole number of chunks, plus one byte
                        }

                        continue;
                    }

                    SealChunk(aes, context, index, final: true, plain, filled, sealedChunk);
                    await stream.WriteAsync(sealedChunk.AsMemory(0, filled + TagSize), cancellationToken);
                    break;
                }

                await stream.FlushAsync(cancellationToken);
                stream.Flush(flushToDisk: true);
                return total;
            }
        }
        catch
        {
            Shred(path);
            throw;
        }
        finally
        {
            CryptographicOperations.ZeroMemory(plain);
            CryptographicOperations.ZeroMemory(dataKey);
        }
    }

    /// <summary>A forward-only stream of the decrypted bytes; each chunk is authenticated before any of it is returned.</summary>
    public static Stream OpenRead(string path, FileKeyRing ring, Binding binding)
    {
        var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete, 4096, FileOptions.SequentialScan);
        try
        {
            var dataKey = ReadDataKey(stream, ring, binding, out _, out _);
            return new DecryptingStream(stream, dataKey, binding.DataContext());
        }
        catch
        {
            stream.Dispose();
            throw;
        }
    }

    private static void SealChunk(AesGcm aes, byte[] context, long index, bool final, byte[] plain, int length, byte[] output)
    {
        Span<byte> nonce = stackalloc byte[NonceSize];
        BinaryPrimitives.WriteInt64BigEndian(nonce, index);
        nonce[11] = final ? (byte)1 : (byte)0;
        aes.Encrypt(nonce, plain.AsSpan(0, length), output.AsSpan(0, length), output.AsSpan(length, TagSize), context);
    }

    private sealed class DecryptingStream(FileStream file, byte[] dataKey, byte[] context) : Stream
    {
        private readonly AesGcm _aes = new(dataKey, TagSize);
        private readonly byte[] _sealed = new byte[ChunkSize + TagSize];
        private readonly byte[] _plain = new byte[ChunkSize];
        private long _index;
        private int _offset;
        private int _length;
        private bool _finished;

        public override bool CanRead => true;

        public override bool CanSeek => false;

        public override bool CanWrite => false;

        public override long Length => throw new NotSupportedException();

        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

        public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

        public override int Read(Span<byte> buffer)
        {
            if (_offset == _length)
            {
                if (_finished)
                {
                    return 0;
                }

                NextChunk();
            }

            var take = Math.Min(buffer.Length, _length - _offset);
            _plain.AsSpan(_offset, take).CopyTo(buffer);
            _offset += take;
            return take;
        }

        public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) =>
            ValueTask.FromResult(Read(buffer.Span));

        public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
            Task.FromResult(Read(buffer.AsSpan(offset, count)));

        private void NextChunk()
        {
            var read = file.ReadAtLeast(_sealed, _sealed.Length, throwOnEndOfStream: false);
            if (read < TagSize)
            {
                throw new CryptographicException("the encrypted file is truncated");
            }

            var final = file.Position == file.Length;
            Span<byte> nonce = stackalloc byte[NonceSize];
            BinaryPrimitives.WriteInt64BigEndian(nonce, _index++);
            nonce[11] = final ? (byte)1 : (byte)0;
            _aes.Decrypt(nonce, _sealed.AsSpan(0, read - TagSize), _sealed.AsSpan(read - TagSize, TagSize), _plain.AsSpan(0, read - TagSize), context);
            _offset = 0;
            _length = read - TagSize;
            _finished = final;
        }

        public override void Flush()
        {
        }

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        protected override void Dispose(bool disposing)
        {
            if (disposing)
            {
                _aes.Dispose();
                CryptographicOperations.ZeroMemory(_plain);
                CryptographicOperations.ZeroMemory(dataKey);
                file.Dispose();
            }

            base.Dispose(disposing);
        }
    }
}

/// <summary>An upload larger than the limit; the partial ciphertext is shredded.</summary>
public sealed class FileTooLargeException(long limit) : Exception($"The file is larger than the limit of {limit} bytes.")
{
    public long Limit { get; } = limit;
}
