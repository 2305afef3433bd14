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
/// Verifies presented API keys. bcrypt runs once per key per <see cref="IdentityOptions.KeyCacheTtl"/>: successes are
/// cached in memory under HMAC-SHA256(pepper, key), never under the key itself, with a pepper drawn at random per
/// process (the cache never leaves it). Revocation, rotation and edits evict at once on this replica
/// (<see cref="Evict"/>) and within <see cref="IdentityOptions.KeyChangePollInterval"/> elsewhere (<see cref="ApiKeyChangeWatcher"/>).
/// </summary>
public sealed class ApiKeyVerifier(IServiceScopeFactory scopes, TimeProvider time, IOptions<IdentityOptions> options)
{
    private const int MaxNegativeEntries = 10_000;
    private static readonly TimeSpan NegativeTtl = TimeSpan.FromSeconds(10);
    private static readonly TimeSpan StaleRecheck = TimeSpan.FromSeconds(5);

    private readonly byte[] _pepper = RandomNumberGenerator.GetBytes(32);
    private readonly ConcurrentDictionary<CacheKey, CachedKey> _verified = new();
    private readonly ConcurrentDictionary<CacheKey, long> _rejected = new();
    private readonly ConcurrentDictionary<CacheKey, Lazy<Task<VerifiedKey?>>> _inFlight = new();

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
        List<ApiKey> candidates;
        try
        {
            await using var scope = scopes.CreateAsyncScope();
            var db = scope.ServiceProvider.GetRequiredService<SluiceDbContext>();
            candidates = await db.ApiKeys.AsNoTracking()
                .Where(k => (k.Prefix == prefix || k.PreviousPrefix == prefix) && k.RevokedAt == null)
                .ToListAsync();
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

        foreach (var key in candidates.Where(k => k.ExpiresAt is not { } expires || expires > now))
        {
            if (key.Prefix == prefix && Bcrypt.Verify(presented, key.SecretHash))
            {
                return Remember(cacheKey, key, key.ExpiresAt, now);
            }

            if (key.PreviousPrefix == prefix && key.PreviousValidUntil is { } graceEnds && graceEnds > now
                && key.PreviousSecretHash is { } previous && Bcrypt.Verify(presented, previous))
            {
                var validUntil = key.ExpiresAt is { } expires && expires < graceEnds ? expires : graceEnds;
                return Remember(cacheKey, key, validUntil, now);
            }
        }

        if (_rejected.Count >= MaxNegativeEntries)
        {
            _rejected.Clear();
        }

        _rejected[cacheKey] = (now + NegativeTtl).UtcTicks;
        return null;
    }

    private VerifiedKey Remember(CacheKey cacheKey, ApiKey key, DateTimeOffset? validUntil, DateTimeOffset now)
    {
        var verified = Describe(key, validUntil);
        _verified[cacheKey] = new CachedKey(verified, now + options.Value.KeyCacheTtl);
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
}
