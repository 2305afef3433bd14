using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Threading.Channels;
using Sluice.Files;

namespace Sluice.Batches;

/// <summary>
/// The results of a batch in progress, one sealed record per finished line, appended to an encrypted file
/// (<see cref="EncryptedFile"/> header, then records of length, random nonce, AES-256-GCM ciphertext and tag). A
/// record reaches the disk (group-committed, fsync) before its line is charged, so a runner that resumes after a crash
/// or restart never runs or bills a finished line again. A torn last record (a crash mid-write) is cut off on open.
/// </summary>
public sealed class BatchJournal : IAsyncDisposable
{
    private const int NonceSize = 12;
    private const int TagSize = 16;
    private const int FixedSize = 4 + 1 + 4 + 8 + 8 + 8;
    private readonly FileStream _stream;
    private readonly AesGcm _aes;
    private readonly byte[] _context;
    private readonly Channel<(byte[] Frame, TaskCompletionSource Done)> _appends = Channel.CreateUnbounded<(byte[], TaskCompletionSource)>(new UnboundedChannelOptions { SingleReader = true });
    private readonly Task _writer;

    /// <summary>One finished line: its 0-based index in the input, outcome, tokens and its output line (JSONL, no newline).</summary>
    public sealed record Entry(int Line, bool Success, int Status, long PromptTokens, long CompletionTokens, long CachedTokens, byte[] OutputLine);

    private BatchJournal(FileStream stream, byte[] dataKey, byte[] context)
    {
        _stream = stream;
        _aes = new AesGcm(dataKey, TagSize);
        CryptographicOperations.ZeroMemory(dataKey);
        _context = context;
        _writer = Task.Run(WriteLoopAsync);
    }

    public static EncryptedFile.Binding Binding(Guid batchId, Guid orgId) => new("batch-journal", batchId, orgId);

    /// <summary>Opens (or creates) the journal for appending; <paramref name="finished"/> gets every line already done.</summary>
    public static BatchJournal Open(string path, FileKeyRing ring, EncryptedFile.Binding binding, List<Entry> finished)
    {
        if (!File.Exists(path))
        {
            var (created, key) = EncryptedFile.Create(path, ring, binding);
            created.Flush(flushToDisk: true);
            return new BatchJournal(created, key, binding.DataContext());
        }

        var stream = new FileStream(path, FileMode.Open, FileAccess.ReadWrite, FileShare.Read);
        try
        {
            var dataKey = EncryptedFile.ReadDataKey(stream, ring, binding, out _, out _);
            var context = binding.DataContext();
            using (var aes = new AesGcm(dataKey, TagSize))
            {
                var endOf = new long[1];
                finished.AddRange(Records(stream, aes, context, endOf));
                var end = endOf[0];
                if (end < stream.Length)
                {
                    stream.SetLength(end); // a record torn by a crash; its line was never charged and runs again
                }

                stream.Position = end;
            }

            return new BatchJournal(stream, dataKey, context);
        }
        catch
        {
            stream.Dispose();
            throw;
        }
    }

    /// <summary>Every record of a closed journal, in order, read as it is enumerated; none when there is no journal.</summary>
    public static IEnumerable<Entry> Read(string path, FileKeyRing ring, EncryptedFile.Binding binding)
    {
        if (!File.Exists(path))
        {
            yield break;
        }

        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
        var dataKey = EncryptedFile.ReadDataKey(stream, ring, binding, out _, out _);
        using var aes = new AesGcm(dataKey, TagSize);
        CryptographicOperations.ZeroMemory(dataKey);
        foreach (var entry in Records(stream, aes, binding.DataContext(), new long[1]))
        {
            yield return entry;
        }
    }

    /// <summary>Seals and queues a record; completes once it is on disk.</summary>
    public Task AppendAsync(Entry entry)
    {
        var plain = new byte[FixedSize + entry.OutputLine.Length];
        BinaryPrimitives.WriteInt32BigEndian(plain, entry.Line);
        plain[4] = entry.Success ? (byte)1 : (byte)0;
        BinaryPrimitives.WriteInt32BigEndian(plain.AsSpan(5), entry.Status);
        BinaryPrimitives.WriteInt64BigEndian(plain.AsSpan(9), entry.PromptTokens);
        BinaryPrimitives.WriteInt64BigEndian(plain.AsSpan(17), entry.CompletionTokens);
        BinaryPrimitives.WriteInt64BigEndian(plain.AsSpan(25), entry.CachedTokens);
        entry.OutputLine.CopyTo(plain, FixedSize);
        var frame = new byte[4 + NonceSize + plain.Length + TagSize];
        BinaryPrimitives.WriteInt32BigEndian(frame, plain.Length);
        var nonce = frame.AsSpan(4, NonceSize);
        RandomNumberGenerator.Fill(nonce);
        lock (_aes)
        {
            // One AesGcm instance is not safe for concurrent use, and lines finish concurrently.
            _aes.Encrypt(nonce, plain, frame.AsSpan(4 + NonceSize, plain.Length), frame.AsSpan(4 + NonceSize + plain.Length, TagSize), _context);
        }

        CryptographicOperations.ZeroMemory(plain);
        var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        if (!_appends.Writer.TryWrite((frame, done)))
        {
            done.SetException(new ObjectDisposedException(nameof(BatchJournal)));
        }

        return done.Task;
    }

    private async Task WriteLoopAsync()
    {
        var pending = new List<TaskCompletionSource>();
        while (await _appends.Reader.WaitToReadAsync())
        {
            pending.Clear();
            try
            {
                while (pending.Count < 1024 && _appends.Reader.TryRead(out var append))
                {
                    pending.Add(append.Done);
                    await _stream.WriteAsync(append.Frame);
                }

                await _stream.FlushAsync();
                _stream.Flush(flushToDisk: true);
                pending.ForEach(p => p.TrySetResult());
            }
            catch (Exception ex)
            {
                pending.ForEach(p => p.TrySetException(ex));
            }
        }
    }

    /// <summary>The records from the header on; <paramref name="end"/>[0] gets the offset after the last whole record.</summary>
    private static IEnumerable<Entry> Records(FileStream stream, AesGcm aes, byte[] context, long[] end)
    {
        stream.Position = EncryptedFile.HeaderSize;
        var lengthBytes = new byte[4];
        while (true)
        {
            end[0] = stream.Position;
            if (stream.ReadAtLeast(lengthBytes, 4, throwOnEndOfStream: false) < 4)
            {
                yield break;
            }

            var length = BinaryPrimitives.ReadInt32BigEndian(lengthBytes);
            var rest = NonceSize + (long)length + TagSize;
            if (length < FixedSize || stream.Length - stream.Position < rest)
            {
                yield break;
            }

            var frame = new byte[rest];
            stream.ReadExactly(frame);
            var plain = new byte[length];
            if (!TryOpen(aes, frame, plain, context, last: stream.Position == stream.Length))
            {
                yield break;
            }

            end[0] = stream.Position;
            yield return new Entry(
                BinaryPrimitives.ReadInt32BigEndian(plain),
                plain[4] == 1,
                BinaryPrimitives.ReadInt32BigEndian(plain.AsSpan(5)),
                BinaryPrimitives.ReadInt64BigEndian(plain.AsSpan(9)),
                BinaryPrimitives.ReadInt64BigEndian(plain.AsSpan(17)),
                BinaryPrimitives.ReadInt64BigEndian(plain.AsSpan(25)),
                plain[FixedSize..]);
        }
    }

    private static bool TryOpen(AesGcm aes, byte[] frame, byte[] plain, byte[] context, bool last)
    {
        var length = plain.Length;
        try
        {
            aes.Decrypt(frame.AsSpan(0, NonceSize), frame.AsSpan(NonceSize, length), frame.AsSpan(NonceSize + length, TagSize), plain, context);
            return true;
        }
        catch (AuthenticationTagMismatchException) when (last)
        {
            return false; // torn by a crash mid-write; a damaged record anywhere else is tampering and throws
        }
    }

    public async ValueTask DisposeAsync()
    {
        _appends.Writer.TryComplete();
        await _writer;
        _aes.Dispose();
        await _stream.DisposeAsync();
    }
}
