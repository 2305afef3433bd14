using Microsoft.EntityFrameworkCore;
using Sluice.Storage;

namespace Sluice.Identity;

/// <summary>
/// The lookup prefixes of the keys that exist (current and in-grace previous ones), so a key whose prefix matches none is
/// refused without a database read. Checksums are CRC-32, so anyone can mint well-formed keys with random prefixes; each
/// used to cost an indexed query. Loaded once, then kept current by this replica's own key changes and by
/// <see cref="ApiKeyChangeWatcher"/> for other replicas' and the CLI's. A prefix not (yet) known still gets a database read
/// while <see cref="UnknownReadsPerSecond"/> allows, which covers a key created elsewhere in the watcher's last poll.
/// Prefixes are not secret (they identify a key in listings), and never removed: a revoked key's prefix only costs a
/// read that finds nothing.
/// </summary>
public sealed class KnownKeyPrefixes(IServiceScopeFactory scopes, TimeProvider time)
{
    /// <summary>Database reads per second for prefixes this replica does not know (burst: twice as many).</summary>
    public const int UnknownReadsPerSecond = 20;

    private readonly Lock _lock = new();
    private HashSet<string>? _prefixes;
    private Task? _loading;
    private double _tokens = UnknownReadsPerSecond * 2;
    private long _refilledAt = time.GetTimestamp();

    /// <summary>Whether a key with this prefix deserves a database read: it is known, or the unknown-prefix budget allows one.</summary>
    public async ValueTask<bool> MayExistAsync(string prefix)
    {
        var prefixes = Volatile.Read(ref _prefixes) ?? await LoadAsync();
        lock (_lock)
        {
            if (prefixes.Contains(prefix))
            {
                return true;
            }

            var now = time.GetTimestamp();
            _tokens = Math.Min(UnknownReadsPerSecond * 2, _tokens + (time.GetElapsedTime(_refilledAt, now).TotalSeconds * UnknownReadsPerSecond));
            _refilledAt = now;
            if (_tokens < 1)
            {
                return false;
            }

            _tokens--;
            return true;
        }
    }

    public void Add(string? prefix)
    {
        if (prefix is null)
        {
            return;
        }

        lock (_lock)
        {
            _prefixes?.Add(prefix);
        }
    }

    private async Task<HashSet<string>> LoadAsync()
    {
        Task loading;
        lock (_lock)
        {
            loading = _loading ??= LoadAllAsync();
        }

        try
        {
            await loading;
        }
        catch
        {
            lock (_lock)
            {
                if (_loading == loading)
                {
                    _loading = null; // the next key tries again (the database may be back)
                }
            }

            throw;
        }

        return Volatile.Read(ref _prefixes)!;
    }

    private async Task LoadAllAsync()
    {
        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<SluiceDbContext>();
        var rows = await db.ApiKeys.AsNoTracking().Where(k => k.RevokedAt == null)
            .Select(k => new { k.Prefix, k.PreviousPrefix }).ToListAsync();
        var prefixes = new HashSet<string>(rows.Count * 2, StringComparer.Ordinal);
        foreach (var row in rows)
        {
            prefixes.Add(row.Prefix);
            if (row.PreviousPrefix is { } previous)
            {
                prefixes.Add(previous);
            }
        }

        lock (_lock)
        {
            // Keys added while loading went into no set yet; the watcher's look-back window re-reports them.
            _prefixes = prefixes;
        }
    }
}
