using System.Collections.Concurrent;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using Sluice.Crypto;
using Sluice.Storage;

namespace Sluice.Identity;

/// <summary>What a verified API key may do, as read from its row.</summary>
public sealed record VerifiedKey(
    Guid KeyId,
    Guid OrganizationId,
    Guid? CreatedByUserId,
    KeyScopes Scopes,
    string? AllowedModels,
    int? RequestsPerMinute,
    int? TokensPerMinute,
    long? SpendLimitDailyMicros,
    long? SpendLimitMonthlyMicros,
    long? SpendLimitTotalMicros,
    DateTimeOffset Version,
    DateTimeOffset? ValidUntil);

/// <summary>
/// Verifies presented API keys. Successes are cached in memory under HMAC-SHA256(pepper, key), never under the key
/// itself, with a pepper drawn at random per process (the cache never leaves it), for
/// <see cref="IdentityOptions.KeyCacheTtl"/>; after that the row is read again, and bcrypt runs again only if the
/// row's hash changed (the fingerprint remembers which hash it matched). Revocation, rotation, edits and the creator
/// leaving the organization evict at once on this replica (<see cref="Evict"/>) and within
/// <see cref="IdentityOptions.KeyChangePollInterval"/> elsewhere (<see cref="ApiKeyChangeWatcher"/>).
/// <para>
/// bcrypt is what a forged key costs, so its work is bounded: at most <see cref="IdentityOptions.KeyHashConcurrency"/>
/// run at once with a short queue (a key that finds the queue full is refused, not queued without end), and a key
/// prefix whose secrets failed <see cref="IdentityOptions.KeyFailuresPerPrefix"/> times in
/// <see cref="IdentityOptions.KeyFailureWindow"/> refuses secrets it has not verified before without bcrypt until the
/// window ends. Valid keys already verified on this replica never wait for any of it.
/// </para>
/// </summary>
public sealed class ApiKeyVerifier(IServiceScopeFactory scopes, TimeProvider time, IOptions<IdentityOptions> options, KnownKeyPrefixes prefixes) : IDisposable
{
    private const int MaxNegativeEntries = 10_000;
    private const int MaxKnownEntries = 100_000;
    private const int MaxPrefixBudgets = 100_000;
    private const int MaxHashQueue = 64;
    private static readonly TimeSpan NegativeTtl = TimeSpan.FromSeconds(10);
    private static readonly TimeSpan StaleRecheck = TimeSpan.FromSeconds(5);

    private readonly byte[] _pepper = RandomNumberGenerator.GetBytes(32);
    private readonly ConcurrentDictionary<CacheKey, CachedKey> _verified = new();
    private readonly ConcurrentDictionary<CacheKey, long> _rejected = new();
    private readonly ConcurrentDictionary<CacheKey, Lazy<Task<VerifiedKey?>>> _inFlight = new();

    // Fingerprint of a secret that bcrypt accepted → the stored hash it matched: a later read of an unchanged row
    // accepts the same secret without bcrypt. Holds what the positive cache holds (HMAC under the process pepper).
    private readonly ConcurrentDictionary<CacheKey, string> _known = new();
    private readonly ConcurrentDictionary<string, PrefixBudget> _prefixFailures = new(StringComparer.Ordinal);
    // Made on first use: reading the options while the verifier is constructed would validate them before the host
    // collects every invalid setting into one report.
    private readonly Lazy<SemaphoreSlim> _hashSlots = new(() => new SemaphoreSlim(HashConcurrency(options.Value), HashConcurrency(options.Value)));
    private int _hashWaiting;

    /// <summary>How many presented keys were refused without bcrypt because their prefix or the bcrypt queue was exhausted.</summary>
    public long RefusedWithoutHash => Interlocked.Read(ref _refusedWithoutHash);

    private long _refusedWithoutHash;

    public int CachedCount => _verified.Count;

    /// <summary>The key's grants, or null for a malformed, unknown, revoked or expired key.</summary>
    public ValueTask<VerifiedKey?> VerifyAsync(string presented, CancellationToken cancellationToken = default)
    {
        if (!ApiKeyFormat.IsWellFormed(presented))
        {
            return ValueTask.FromResult<VerifiedKey?>(null);
        }

        var cacheKey = Hmac(presented);
        var now = time.GetUtcNow();
        CachedKey? stale = null;
        if (_verified.TryGetValue(cacheKey, out var cached))
        {
            var valid = cached.Key.ValidUntil is not { } until || until > now;
            if (cached.CachedUntil > now && valid)
            {
                return ValueTask.FromResult<VerifiedKey?>(cached.Key);
            }

            if (valid)
            {
                stale = cached; // re-read now; served only if the database cannot be reached
            }
            else
            {
                _verified.TryRemove(KeyValuePair.Create(cacheKey, cached));
            }
        }

        if (_rejected.TryGetValue(cacheKey, out var rejectedUntil) && rejectedUntil > now.UtcTicks)
        {
            return ValueTask.FromResult<VerifiedKey?>(null);
        }

        return new ValueTask<VerifiedKey?>(VerifySlowAsync(presented, cacheKey, stale, cancellationToken));
    }

    /// <summary>Drops cached verifications of <paramref name="keyId"/> unless they were read at <paramref name="currentVersion"/>.</summary>
    public void Evict(Guid keyId, DateTimeOffset? currentVersion = null)
    {
        foreach (var entry in _verified)
        {
            if (entry.Value.Key.KeyId == keyId && entry.Value.Key.Version != currentVersion)
            {
                _verified.TryRemove(entry);
            }
        }
    }

    private async Task<VerifiedKey?> VerifySlowAsync(string presented, CacheKey cacheKey, CachedKey? stale, CancellationToken cancellationToken)
    {
        // Concurrent first uses of one key share a single database read and bcrypt.
        var lazy = _inFlight.GetOrAdd(cacheKey, _ => new Lazy<Task<VerifiedKey?>>(() => LoadAndVerifyAsync(presented, cacheKey, stale)));
        try
        {
            return await lazy.Value.WaitAsync(cancellationToken);
        }
        finally
        {
            _inFlight.TryRemove(KeyValuePair.Create(cacheKey, lazy));
        }
    }

    private async Task<VerifiedKey?> LoadAndVerifyAsync(string presented, CacheKey cacheKey, CachedKey? stale)
    {
        var now = time.GetUtcNow();
        var prefix = ApiKeyFormat.LookupPrefix(presented);
        if (PrefixExhausted(prefix, now) && !_known.ContainsKey(cacheKey))
        {
            // A prefix under attack: secrets never verified here are refused without bcrypt, or even a database read,
            // until its window ends. Not remembered as wrong: the prefix's own genuine secret may be among these.
            Interlocked.Increment(ref _refusedWithoutHash);
            return null;
        }

        List<ApiKey> candidates;
        Dictionary<Guid, OrgRole> creatorRoles = [];
        try
        {
            if (stale is null && !await prefixes.MayExistAsync(prefix))
            {
                // No key has this prefix, and unknown prefixes are arriving faster than a new key from another replica
                // would explain: a minted key, refused without a database read. Not remembered as wrong.
                Interlocked.Increment(ref _refusedWithoutHash);
                return null;
            }

            await using var scope = scopes.CreateAsyncScope();
            var db = scope.ServiceProvider.GetRequiredService<SluiceDbContext>();

            // A key verifies only while its creator is a member of its organization with an open account, unless an
            // admin reassigned it to the organization (no creator).
            candidates = await db.ApiKeys.AsNoTracking()
                .Where(k => (k.Prefix == prefix || k.PreviousPrefix == prefix) && k.RevokedAt == null)
                .Where(k => k.CreatedByUserId == null || db.Memberships.Any(m => m.OrganizationId == k.OrganizationId && m.UserId == k.CreatedByUserId
                    && db.Users.Any(u => u.Id == m.UserId && u.ClosedAt == null)))
                .ToListAsync();

            // A key never carries more than its creator's current role allows (on /v1 as on /api): its scopes are
            // masked by that role below. Role changes mark the creator's keys changed, so every replica re-reads them.
            foreach (var candidate in candidates)
            {
                if (candidate.CreatedByUserId is { } creator && !creatorRoles.ContainsKey(creator))
                {
                    creatorRoles[creator] = await db.Memberships.Where(m => m.OrganizationId == candidate.OrganizationId && m.UserId == creator)
                        .Select(m => m.Role).SingleAsync();
                }
            }
        }
        catch (Exception ex) when (stale is not null && DatabaseFailures.IsUnavailable(ex))
        {
            // The database is unavailable: keep serving a key this replica verified before, re-checking it every
            // StaleRecheck, so an outage does not refuse keys that were valid when it began. A key revoked elsewhere just
            // before the outage is refused within StaleRecheck of the database's return (plus the change watcher's poll).
            _verified[cacheKey] = stale with { CachedUntil = now + StaleRecheck };
            return stale.Key;
        }

        _verified.TryRemove(cacheKey, out _); // re-cached below if it still verifies
        if (candidates.Count > 0)
        {
            prefixes.Add(prefix); // created on another replica since this one loaded the prefixes
        }

        var live = candidates.Where(k => k.ExpiresAt is not { } expires || expires > now).ToList();
        if (live.Count == 0)
        {
            return Reject(cacheKey, now);
        }

        // A secret bcrypt accepted before, against a hash the row still holds, needs no bcrypt now.
        if (_known.TryGetValue(cacheKey, out var knownHash))
        {
            foreach (var key in live)
            {
                if (key.Prefix == prefix && key.SecretHash == knownHash)
                {
                    return Remember(cacheKey, key, creatorRoles, key.ExpiresAt, now, knownHash);
                }

                if (key.PreviousPrefix == prefix && key.PreviousSecretHash == knownHash && key.PreviousValidUntil is { } graceEnds && graceEnds > now)
                {
                    return Remember(cacheKey, key, creatorRoles, Earlier(key.ExpiresAt, graceEnds), now, knownHash);
                }
            }
        }

        if (PrefixExhausted(prefix, now))
        {
            Interlocked.Increment(ref _refusedWithoutHash);
            return null;
        }

        if (Interlocked.Increment(ref _hashWaiting) > MaxHashQueue)
        {
            // Refused for want of capacity, not found wrong: remembered neither way.
            Interlocked.Decrement(ref _hashWaiting);
            Interlocked.Increment(ref _refusedWithoutHash);
            return null;
        }

        await _hashSlots.Value.WaitAsync();
        Interlocked.Decrement(ref _hashWaiting);
        try
        {
            // Checked again with the slot held: what queued while the prefix's budget ran out costs no bcrypt either.
            if (PrefixExhausted(prefix, time.GetUtcNow()))
            {
                Interlocked.Increment(ref _refusedWithoutHash);
                return null;
            }

            foreach (var key in live)
            {
                if (key.Prefix == prefix && Bcrypt.Verify(presented, key.SecretHash))
                {
                    return Remember(cacheKey, key, creatorRoles, key.ExpiresAt, now, key.SecretHash);
                }

                if (key.PreviousPrefix == prefix && key.PreviousValidUntil is { } graceEnds && graceEnds > now
                    && key.PreviousSecretHash is { } previous && Bcrypt.Verify(presented, previous))
                {
                    return Remember(cacheKey, key, creatorRoles, Earlier(key.ExpiresAt, graceEnds), now, previous);
                }
            }
        }
        finally
        {
            _hashSlots.Value.Release();
        }

        CountFailure(prefix, now);
        return Reject(cacheKey, now);
    }

    public void Dispose()
    {
        if (_hashSlots.IsValueCreated)
        {
            _hashSlots.Value.Dispose();
        }
    }

    private static DateTimeOffset Earlier(DateTimeOffset? expires, DateTimeOffset graceEnds) =>
        expires is { } e && e < graceEnds ? e : graceEnds;

    private VerifiedKey? Reject(CacheKey cacheKey, DateTimeOffset now)
    {
        if (_rejected.Count >= MaxNegativeEntries)
        {
            _rejected.Clear();
        }

        _rejected[cacheKey] = (now + NegativeTtl).UtcTicks;
        return null;
    }

    private bool PrefixExhausted(string prefix, DateTimeOffset now) =>
        _prefixFailures.TryGetValue(prefix, out var budget)
        && budget.WindowEnds > now.UtcTicks
        && budget.Failures >= options.Value.KeyFailuresPerPrefix;

    private void CountFailure(string prefix, DateTimeOffset now)
    {
        if (_prefixFailures.Count >= MaxPrefixBudgets)
        {
            _prefixFailures.Clear();
        }

        var windowEnds = (now + options.Value.KeyFailureWindow).UtcTicks;
        _prefixFailures.AddOrUpdate(
            prefix,
            _ => new PrefixBudget(windowEnds, 1),
            (_, budget) => budget.WindowEnds > now.UtcTicks ? budget with { Failures = budget.Failures + 1 } : new PrefixBudget(windowEnds, 1));
    }

    private static int HashConcurrency(IdentityOptions settings) =>
        settings.KeyHashConcurrency > 0 ? settings.KeyHashConcurrency : Math.Max(1, Environment.ProcessorCount / 4);

    private VerifiedKey Remember(CacheKey cacheKey, ApiKey key, Dictionary<Guid, OrgRole> creatorRoles, DateTimeOffset? validUntil, DateTimeOffset now, string matchedHash)
    {
        var verified = Describe(key, validUntil);
        if (key.CreatedByUserId is { } creator && creatorRoles.TryGetValue(creator, out var role))
        {
            verified = verified with { Scopes = key.Scopes & Permissions.ScopesAllowed(role) };
        }

        _verified[cacheKey] = new CachedKey(verified, now + options.Value.KeyCacheTtl);
        if (_known.Count >= MaxKnownEntries)
        {
            _known.Clear();
        }

        _known[cacheKey] = matchedHash;
        _rejected.TryRemove(cacheKey, out _);
        return verified;
    }

    /// <summary>What a stored key grants, as the gateway reads it (also for work a key started earlier, such as a batch).</summary>
    public static VerifiedKey Describe(ApiKey key, DateTimeOffset? validUntil) => new(
        key.Id, key.OrganizationId, key.CreatedByUserId, key.Scopes, key.AllowedModels, key.RequestsPerMinute,
        key.TokensPerMinute, key.SpendLimitDailyMicros, key.SpendLimitMonthlyMicros, key.SpendLimitTotalMicros,
        key.UpdatedAt, validUntil);

    private CacheKey Hmac(string presented)
    {
        Span<byte> ascii = stackalloc byte[ApiKeyFormat.Length];
        Encoding.ASCII.GetBytes(presented, ascii);
        Span<byte> digest = stackalloc byte[32];

        // A reused HMAC context keeps its keyed state; creating one per call costs more than the hash itself.
        var hmac = t_hmac;
        if (hmac is null || !ReferenceEquals(t_hmacOwner, this))
        {
            hmac?.Dispose();
            t_hmac = hmac = IncrementalHash.CreateHMAC(HashAlgorithmName.SHA256, _pepper);
            t_hmacOwner = this;
        }

        hmac.AppendData(ascii);
        hmac.GetHashAndReset(digest);
        CryptographicOperations.ZeroMemory(ascii);
        return MemoryMarshal.Read<CacheKey>(digest);
    }

    [ThreadStatic]
    private static IncrementalHash? t_hmac;

    [ThreadStatic]
    private static ApiKeyVerifier? t_hmacOwner;

    [StructLayout(LayoutKind.Sequential)]
    private readonly record struct CacheKey(ulong A, ulong B, ulong C, ulong D);

    private sealed record CachedKey(VerifiedKey Key, DateTimeOffset CachedUntil);

    private readonly record struct PrefixBudget(long WindowEnds, int Failures);
}
