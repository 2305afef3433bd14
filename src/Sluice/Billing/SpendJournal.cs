using System.Buffers;
using System.IO.MemoryMappedFiles;
using System.Text.Json;
using System.Text.Json.Serialization;
using System.Threading.Channels;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using Sluice.Gateway;
using Sluice.Hosting;
using Sluice.Storage;

namespace Sluice.Billing;

/// <summary>
/// This replica's local record of what it served but has not yet written to the database (docs/billing.md, "Crashes").
/// Every settled hold appends a line with each of its leases' running charged total (<c>C lease total …</c>) and every
/// usage event appends its metadata as JSON (<c>U {…}</c>; the event row holds no content, and neither does the line).
/// Segments are files mapped shared into memory, so a line is in the kernel's page cache (and survives SIGKILL) as soon as
/// it is copied, with no system call on the request's path; each settle round syncs the open segment to disk, moves to a
/// prepared next segment once the open one is half full, and deletes segments whose charges and events are all in the
/// database.
/// <para>
/// The journal lives in <c>{Server:DataDir}/spend-journal/{id}/</c>, locked (flock) while its process lives. A replica
/// replays every unlocked journal it finds there (its dead predecessor's): it inserts the usage events the database lacks
/// (by id), settles on each of the dead replica's open leases what it charged beyond what the lease says was settled,
/// returns the rest to the wallet and closes the lease. Until then the sweeper keeps those leases held (up to
/// <see cref="BillingOptions.UnreplayedLeaseDeadline"/>), so what a dead replica may have served is never spendable again.
/// </para>
/// </summary>
public sealed partial class SpendJournal : IDisposable
{
    private const string LockFile = "lock";
    private const string ReplicaFile = "replica";
    private const string Staging = ".new-";

    private readonly IServiceScopeFactory _scopes;
    private readonly ILogger<SpendJournal> _logger;
    private readonly Lock _gate = new();
    private readonly Queue<(Segment Segment, long LastSequence, long EventsThrough)> _closed = new();
    private readonly string? _root;
    private readonly string? _directory;
    private readonly FileStream? _lock;
    private Segment? _segment;
    private Segment? _next;
    private int _segmentNumber;
    private long _sequence;
    private long _events;
    private long _eventsWritten;
    private long _settledThrough;
    private bool _failed;
    private bool _disposed;

    public SpendJournal(IOptions<ServerOptions> server, IServiceScopeFactory scopes, ILogger<SpendJournal> logger)
    {
        _scopes = scopes;
        _logger = logger;
        // The random part first, so the 64-character cut never removes it: a restarted container keeps its host name
        // and process id, and two replicas sharing an id would replay (and close) each other's live leases.
        var replica = $"{Guid.NewGuid():N}/{Environment.MachineName}/{Environment.ProcessId}";
        Replica = replica.Length > 64 ? replica[..64] : replica;
        try
        {
            _root = Path.Combine(Path.GetFullPath(server.Value.DataDir), "spend-journal");
            var id = Guid.NewGuid().ToString("N");
            var staging = Path.Combine(_root, Staging + id);
            Directory.CreateDirectory(staging);
            _lock = new FileStream(Path.Combine(staging, LockFile), FileMode.CreateNew, FileAccess.ReadWrite, FileShare.None);
            File.WriteAllText(Path.Combine(staging, ReplicaFile), Replica);
            _directory = Path.Combine(_root, id);
            Directory.Move(staging, _directory); // only a complete journal (locked, named) is visible to replayers
            OpenSegment();
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            JournalUnavailable(logger, ex.GetType().Name);
            _lock?.Dispose();
            _lock = null;
            _directory = null;
        }
    }

    /// <summary>This process's replica id, as written on its wallet leases.</summary>
    public string Replica { get; }

    /// <summary>This process's journal directory (null when journaling is off).</summary>
    internal string? JournalDirectory => _directory;

    /// <summary>Lines appended so far (the position a settle round starts from).</summary>
    internal long Sequence
    {
        get
        {
            lock (_gate)
            {
                return _sequence;
            }
        }
    }

    /// <summary>Appends what a settled hold charged: each lease's running total. One write(), no fsync.</summary>
    internal void AppendCharge(ReadOnlySpan<(Guid Lease, long Charged)> parts)
    {
        if (_directory is null || parts.IsEmpty)
        {
            return;
        }

        Span<byte> line = stackalloc byte[2 + (parts.Length * 56)];
        line[0] = (byte)'C';
        var length = 1;
        foreach (var (lease, charged) in parts)
        {
            line[length++] = (byte)' ';
            lease.TryFormat(line[length..], out var written, "N");
            length += written;
            line[length++] = (byte)' ';
            charged.TryFormat(line[length..], out written, default, System.Globalization.CultureInfo.InvariantCulture);
            length += written;
        }

        line[length++] = (byte)'\n';
        lock (_gate)
        {
            Write(line[..length]);
        }
    }

    /// <summary>
    /// Queues a usage event and, if it was queued, journals it, in one order for both (so "the first n events written"
    /// means the first n journaled). Returns false when the queue is full (the event is dropped, as before).
    /// </summary>
    internal bool TryEnqueue(UsageEvent usage, ChannelWriter<UsageEvent> queue)
    {
        if (_directory is null)
        {
            return queue.TryWrite(usage);
        }

        var buffer = new ArrayBufferWriter<byte>(512);
        buffer.Write("U "u8);
        using (var json = new Utf8JsonWriter(buffer))
        {
            JsonSerializer.Serialize(json, usage, SpendJournalJson.Default.UsageEvent);
        }

        buffer.Write("\n"u8);
        lock (_gate)
        {
            if (!queue.TryWrite(usage))
            {
                return false;
            }

            if (Write(buffer.WrittenSpan))
            {
                _events++;
            }
        }

        return true;
    }

    /// <summary>Counts usage events the writer stored (in queue order).</summary>
    internal void EventsWritten(int count) => Interlocked.Add(ref _eventsWritten, count);

    /// <summary>Every charge journaled up to <paramref name="sequence"/> is in the database.</summary>
    internal void SettledThrough(long sequence)
    {
        lock (_gate)
        {
            _settledThrough = Math.Max(_settledThrough, sequence);
        }
    }

    /// <summary>
    /// Once a settle round: syncs the open segment's pages to disk, moves to the next segment once the open one is half
    /// full, prepares the next one (so the request path never creates a file), syncs closed segments and deletes those
    /// the database has caught up with.
    /// </summary>
    internal void Roll()
    {
        List<Segment> closing;
        Segment? current;
        int nextNumber;
        lock (_gate)
        {
            if (_directory is null || _disposed)
            {
                return;
            }

            if (_segment is { } open && open.Used > Segment.Capacity / 2 && _next is not null)
            {
                Close();
                _segment = _next;
                _next = null;
            }

            current = _segment;
            nextNumber = _next is null ? ++_segmentNumber : 0;
            closing = _closed.Select(c => c.Segment).Where(c => !c.Synced).ToList();
        }

        try
        {
            current?.FlushPages(); // msync: a lost machine loses at most this round's lines
            if (nextNumber > 0)
            {
                var next = new Segment(Path.Combine(_directory, $"{nextNumber:D8}.log"));
                lock (_gate)
                {
                    if (_disposed || _next is not null)
                    {
                        next.Dispose();
                    }
                    else
                    {
                        _next = next;
                    }
                }
            }
        }
        catch (IOException ex)
        {
            JournalWriteFailed(_logger, ex.GetType().Name);
        }

        foreach (var segment in closing)
        {
            try
            {
                segment.Sync(); // msync and fsync: a lost machine loses at most the open segment's lines
            }
            catch (IOException ex)
            {
                JournalWriteFailed(_logger, ex.GetType().Name);
                continue; // still mapped: synced again next round, and never deleted unsynced
            }

            segment.Dispose(); // unmapped; the file stays until the database has caught up with it
        }

        var written = Interlocked.Read(ref _eventsWritten);
        lock (_gate)
        {
            while (_closed.TryPeek(out var closed) && closed.Segment.Synced && closed.LastSequence <= _settledThrough && closed.EventsThrough <= written)
            {
                closed.Segment.Dispose();
                TryDelete(closed.Segment.Path);
                _closed.Dequeue();
            }
        }
    }

    /// <summary>
    /// Replays the journals of dead replicas in this data directory: restores their missing usage events, settles what
    /// they charged and closes their leases. Returns how many journals were replayed.
    /// </summary>
    internal async Task<int> ReplayPredecessorsAsync(SpendGuard guard, CancellationToken ct)
    {
        if (_root is null || !Directory.Exists(_root))
        {
            return 0;
        }

        var replayed = 0;
        foreach (var directory in Directory.GetDirectories(_root))
        {
            if (directory == _directory)
            {
                continue;
            }

            if (Path.GetFileName(directory).StartsWith(Staging, StringComparison.Ordinal)
                && Directory.GetLastWriteTimeUtc(directory) > DateTime.UtcNow - TimeSpan.FromMinutes(1))
            {
                continue; // a replica starting now, before it could lock its journal: left to it
            }

            FileStream held;
            try
            {
                held = new FileStream(Path.Combine(directory, LockFile), FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
            }
            catch (IOException)
            {
                continue; // its replica is alive (or another replica is replaying it)
            }
            catch (UnauthorizedAccessException)
            {
                continue;
            }

            using (held)
            {
                if (!Path.GetFileName(directory).StartsWith(Staging, StringComparison.Ordinal) && File.Exists(Path.Combine(directory, ReplicaFile)))
                {
                    await ReplayAsync(directory, guard, ct);
                    replayed++;
                }

                foreach (var file in Directory.EnumerateFiles(directory, "*.log"))
                {
                    File.Delete(file);
                }

                TryDelete(Path.Combine(directory, ReplicaFile));
                TryDelete(Path.Combine(directory, LockFile));
            }

            try
            {
                Directory.Delete(directory, recursive: true);
            }
            catch (IOException)
            {
                // removed concurrently
            }
        }

        return replayed;
    }

    private async Task ReplayAsync(string directory, SpendGuard guard, CancellationToken ct)
    {
        var replica = (await File.ReadAllTextAsync(Path.Combine(directory, ReplicaFile), ct)).Trim();
        if (replica == Replica)
        {
            return; // never this replica's own leases, whatever the directory says
        }

        var charged = new Dictionary<Guid, long>();
        var events = new Dictionary<Guid, UsageEvent>();
        foreach (var segment in Directory.GetFiles(directory, "*.log").Order(StringComparer.Ordinal))
        {
            Parse(await File.ReadAllBytesAsync(segment, ct), charged, events);
        }

        var restored = await InsertMissingAsync(events.Values.ToList(), ct);
        List<Guid> open;
        await using (var scope = _scopes.CreateAsyncScope())
        {
            var db = scope.ServiceProvider.GetRequiredService<SluiceDbContext>();
            open = await db.WalletLeases.AsNoTracking().Where(l => l.Replica == replica && !l.Released).Select(l => l.Id).ToListAsync(ct);
        }

        long settled = 0;
        foreach (var lease in open)
        {
            settled += await guard.CloseDeadLeaseAsync(lease, charged.GetValueOrDefault(lease), expiredBefore: null, ct) ?? 0;
        }

        Replayed(_logger, replica, open.Count, settled, restored);
    }

    /// <summary>
    /// Reads complete lines only: the zeros after the last line of a segment, and a line the kill (or a lost machine)
    /// cut short, are ignored.
    /// </summary>
    internal static void Parse(ReadOnlySpan<byte> bytes, Dictionary<Guid, long> charged, Dictionary<Guid, UsageEvent> events)
    {
        while (bytes.IndexOf((byte)'\n') is var end && end >= 0)
        {
            var line = bytes[..end];
            bytes = bytes[(end + 1)..];
            if (line.Length < 2 || line[1] != (byte)' ' || line.Contains((byte)0))
            {
                continue;
            }

            if (line[0] == (byte)'C')
            {
                ParseCharge(line[2..], charged);
            }
            else if (line[0] == (byte)'U')
            {
                try
                {
                    if (JsonSerializer.Deserialize(line[2..], SpendJournalJson.Default.UsageEvent) is { } usage)
                    {
                        events[usage.Id] = usage;
                    }
                }
                catch (JsonException)
                {
                    // a damaged line: skipped
                }
            }
        }
    }

    private static void ParseCharge(ReadOnlySpan<byte> line, Dictionary<Guid, long> charged)
    {
        var parts = new List<(Guid, long)>(4);
        while (!line.IsEmpty)
        {
            var space = line.IndexOf((byte)' ');
            if (space != 32 || !Guid.TryParseExact(System.Text.Encoding.ASCII.GetString(line[..32]), "N", out var lease))
            {
                return;
            }

            line = line[33..];
            var next = line.IndexOf((byte)' ');
            var number = next < 0 ? line : line[..next];
            if (!System.Buffers.Text.Utf8Parser.TryParse(number, out long total, out var consumed) || consumed != number.Length)
            {
                return;
            }

            parts.Add((lease, total));
            line = next < 0 ? [] : line[(next + 1)..];
        }

        foreach (var (lease, total) in parts)
        {
            charged[lease] = Math.Max(charged.GetValueOrDefault(lease), total);
        }
    }

    private async Task<int> InsertMissingAsync(List<UsageEvent> events, CancellationToken ct)
    {
        var restored = 0;
        foreach (var chunk in events.Chunk(500))
        {
            await using var scope = _scopes.CreateAsyncScope();
            var db = scope.ServiceProvider.GetRequiredService<SluiceDbContext>();
            var ids = chunk.Select(e => e.Id).ToList();
            var present = (await db.UsageEvents.AsNoTracking().Where(e => ids.Contains(e.Id)).Select(e => e.Id).ToListAsync(ct)).ToHashSet();
            var missing = chunk.Where(e => !present.Contains(e.Id)).ToList();
            await BulkInsert.InsertAsync(db, missing, ct);
            restored += missing.Count;
        }

        return restored;
    }

    /// <summary>Under the gate.</summary>
    private void OpenSegment()
    {
        _segmentNumber++;
        _segment = new Segment(Path.Combine(_directory!, $"{_segmentNumber:D8}.log"));
    }

    /// <summary>Under the gate: the open segment joins the closed ones (synced and deleted by <see cref="Roll"/>).</summary>
    private void Close()
    {
        _closed.Enqueue((_segment!, _sequence, _events));
        _segment = null;
    }

    /// <summary>Under the gate. A failing disk turns the journal off (logged once); the sweeper's deadline still applies.</summary>
    private bool Write(ReadOnlySpan<byte> line)
    {
        if (_failed || _segment is null || line.Length > Segment.Capacity / 4)
        {
            return false;
        }

        try
        {
            if (!_segment.TryWrite(line))
            {
                // Full within one settle round: the next segment, prepared by the settler, or (rarer) a new one.
                Close();
                if (_next is not null)
                {
                    _segment = _next;
                    _next = null;
                }
                else
                {
                    OpenSegment();
                }

                _segment!.TryWrite(line);
            }

            _sequence++;
            return true;
        }
        catch (IOException ex)
        {
            Failed(ex);
            return false;
        }
    }

    private void Failed(Exception ex)
    {
        if (!_failed)
        {
            _failed = true;
            JournalWriteFailed(_logger, ex.GetType().Name);

            // From here on lines are missing: a journal replayed as if complete would return spend it never recorded.
            // Without its replica file no successor replays it, and this replica's leases wait for the sweeper's deadline.
            if (_directory is not null)
            {
                TryDelete(Path.Combine(_directory, ReplicaFile));
            }
        }
    }

    private static void TryDelete(string path)
    {
        try
        {
            File.Delete(path);
        }
        catch (IOException)
        {
        }
    }

    /// <summary>
    /// On a clean stop (after the settler's last round and the usage writer's drain), a journal whose charges and events
    /// are all in the database is deleted; otherwise it stays for the next replica on this data directory to replay.
    /// </summary>
    public void Dispose()
    {
        lock (_gate)
        {
            if (_disposed)
            {
                return;
            }

            _disposed = true;
            if (_segment is not null)
            {
                Close();
            }

            _next?.Dispose();
            foreach (var (segment, _, _) in _closed)
            {
                try
                {
                    segment.Sync();
                }
                catch (IOException)
                {
                }

                segment.Dispose();
            }

            var complete = !_failed && _settledThrough >= _sequence && Interlocked.Read(ref _eventsWritten) >= _events;
            if (complete && _directory is not null)
            {
                try
                {
                    Directory.Delete(_directory, recursive: true);
                }
                catch (IOException)
                {
                }
            }

            _lock?.Dispose();
        }
    }

    [LoggerMessage(1101, LogLevel.Warning, "The spend journal cannot be opened ({ExceptionType}); a kill of this replica leaves its leases held until Billing:UnreplayedLeaseDeadline")]
    private static partial void JournalUnavailable(ILogger logger, string exceptionType);

    [LoggerMessage(1102, LogLevel.Error, "Writing the spend journal failed ({ExceptionType}); journaling is off until restart")]
    private static partial void JournalWriteFailed(ILogger logger, string exceptionType);

    [LoggerMessage(1103, LogLevel.Information, "Replayed the spend journal of replica {Replica}: {Leases} leases closed, {SettledMicros} micro-units settled, {Events} usage events restored")]
    private static partial void Replayed(ILogger logger, string replica, int leases, long settledMicros, int events);
}

/// <summary>
/// One journal file, mapped shared into memory: an append is a copy into the page cache (which outlives the process),
/// with no system call; <see cref="Sync"/> writes it to the disk.
/// </summary>
internal sealed class Segment : IDisposable
{
    public const long Capacity = 2 * 1024 * 1024;

    private readonly MemoryMappedFile _map;
    private readonly MemoryMappedViewAccessor _view;
    private long _position;

    public Segment(string path)
    {
        Path = path;
        // Allocated and mapped up front (on the settler's thread, once a round): the disk blocks by writing zeros, the
        // pages by touching each through the mapping, so an append on the request's path is a plain copy, not a fault.
        using (var file = new FileStream(path, FileMode.CreateNew, FileAccess.ReadWrite, FileShare.Read, bufferSize: 0))
        {
            var zeros = new byte[256 * 1024];
            for (long written = 0; written < Capacity; written += zeros.Length)
            {
                file.Write(zeros);
            }
        }

        _map = MemoryMappedFile.CreateFromFile(path, FileMode.Open, null, Capacity, MemoryMappedFileAccess.ReadWrite);
        _view = _map.CreateViewAccessor(0, Capacity, MemoryMappedFileAccess.ReadWrite);
        for (long page = 0; page < Capacity; page += 4096)
        {
            _view.Write(page, (byte)0);
        }
    }

    public string Path { get; }

    public long Lines { get; private set; }

    public long Used => Interlocked.Read(ref _position);

    public bool Synced { get; private set; }

    public bool TryWrite(ReadOnlySpan<byte> line)
    {
        if (_position + line.Length > Capacity)
        {
            return false;
        }

        _view.SafeMemoryMappedViewHandle.WriteSpan((ulong)(_view.PointerOffset + _position), line);
        _position += line.Length;
        Lines++;
        return true;
    }

    /// <summary>Writes the dirty pages to the file (msync); the segment stays open.</summary>
    public void FlushPages() => _view.Flush();

    public void Sync()
    {
        if (!Synced)
        {
            _view.Flush();
            using (var file = new FileStream(Path, FileMode.Open, FileAccess.ReadWrite, FileShare.ReadWrite))
            {
                file.Flush(flushToDisk: true);
            }

            Synced = true;
        }
    }

    public void Dispose()
    {
        _view.Dispose();
        _map.Dispose();
    }
}

[JsonSerializable(typeof(UsageEvent))]
internal sealed partial class SpendJournalJson : JsonSerializerContext;
