using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using Sluice.Audit;
using Sluice.Crypto;
using Sluice.Hosting;
using Sluice.Storage;

namespace Sluice.Identity;

/// <summary>The most a key's creator may grant, and why, for the refusal's message (e.g. "your role (member)").</summary>
public sealed record ScopeCeiling(KeyScopes Allowed, string Because);

/// <summary>Creating, listing, revoking and rotating an organization's API keys. Secrets are shown once and stored as bcrypt.</summary>

public sealed class ApiKeyService(
    SluiceDbContext db,
    AuditLog audit,
    ApiKeyVerifier verifier,
    KnownKeyPrefixes prefixes,
    IOptions<IdentityOptions> options,
    TimeProvider time,
    ILogger<ApiKeyService> logger)
{
    private const int MaxModels = 100;

    /// <summary>
    /// Creates a key. <paramref name="ceiling"/> is the most the creator may grant (their role's scopes, and a calling
    /// key's own scopes); asking for more is refused with 403 naming the scope. The CLI (the server's console) has no ceiling.
    /// </summary>
    public async Task<CreatedKeyResponse> CreateAsync(
        Guid orgId, CreateKeyRequest request, Guid? createdBy, CancellationToken cancellationToken, ScopeCeiling? ceiling = null)
    {
        var now = time.GetUtcNow();
        var errors = new FieldErrors();
        var name = request.Name?.Trim();
        if (string.IsNullOrEmpty(name) || name.Length > 100)
        {
            errors.Add("name", "is required and must be at most 100 characters");
        }

        var scopes = KeyScopes.Inference | KeyScopes.Batch;
        if (request.Scopes is not null
            && (!KeyScopeNames.TryParse(request.Scopes, out scopes, out var unknown) || scopes == KeyScopes.None))
        {
            errors.Add("scopes", unknown is null
                ? "must name at least one scope"
                : $"'{Truncate(unknown)}' is not a scope; use {string.Join(", ", KeyScopeNames.All)}");
        }

        if (ceiling is not null && request.Scopes is not null && (scopes & ~ceiling.Allowed) is var excess && excess != KeyScopes.None)
        {
            var names = KeyScopeNames.Format(excess);
            var message = $"{string.Join(", ", names.Select(n => $"'{n}'"))} is more than {ceiling.Because} may grant; ask an owner or admin for such a key";
            throw new ApiProblemException(StatusCodes.Status403Forbidden, "Not allowed.", $"scopes: {message}",
                new Dictionary<string, string[]> { ["scopes"] = [message] });
        }

        string? models = null;
        if (request.Models is not null)
        {
            if (request.Models.Count == 0 || request.Models.Count > MaxModels
                || request.Models.Any(m => string.IsNullOrWhiteSpace(m) || m.Length > 200 || m.Any(char.IsWhiteSpace)))
            {
                errors.Add("models", $"must list 1 to {MaxModels} model ids without spaces, or be omitted to allow every model");
            }
            else
            {
                models = string.Join(' ', request.Models.Distinct(StringComparer.Ordinal));
            }
        }

        if (request.ExpiresAt is { } expires && expires <= now)
        {
            errors.Add("expiresAt", "must be in the future");
        }

        CheckPositive(request.SpendLimits?.DailyMicros, "spendLimits.dailyMicros", errors);
        CheckPositive(request.SpendLimits?.MonthlyMicros, "spendLimits.monthlyMicros", errors);
        CheckPositive(request.SpendLimits?.TotalMicros, "spendLimits.totalMicros", errors);
        CheckPositive(request.RequestsPerMinute, "requestsPerMinute", errors);
        CheckPositive(request.TokensPerMinute, "tokensPerMinute", errors);
        errors.ThrowIfAny();

        var secret = ApiKeyFormat.Generate();
        var key = new ApiKey
        {
            Id = Guid.CreateVersion7(now),
            OrganizationId = orgId,
            CreatedByUserId = createdBy,
            Name = name!,
            Prefix = ApiKeyFormat.LookupPrefix(secret),
            SecretHash = Bcrypt.Hash(secret, options.Value.ApiKeyHashCost),
            Scopes = scopes,
            AllowedModels = models,
            ExpiresAt = request.ExpiresAt?.ToUniversalTime(),
            SpendLimitDailyMicros = request.SpendLimits?.DailyMicros,
            SpendLimitMonthlyMicros = request.SpendLimits?.MonthlyMicros,
            SpendLimitTotalMicros = request.SpendLimits?.TotalMicros,
            RequestsPerMinute = request.RequestsPerMinute,
            TokensPerMinute = request.TokensPerMinute,
            CreatedAt = now,
            UpdatedAt = now,
        };
        db.ApiKeys.Add(key);
        audit.Record("key.create", $"key:{key.Id}", orgId);
        await db.SaveChangesAsync(cancellationToken);
        prefixes.Add(key.Prefix);
        IdentityLog.KeyChanged(logger, key.Id, "created", orgId);
        return new CreatedKeyResponse(secret, KeyResponse.From(key, now));
    }

    public async Task<IReadOnlyList<KeyResponse>> ListAsync(Guid orgId, CancellationToken cancellationToken)
    {
        var now = time.GetUtcNow();
        var keys = await db.ApiKeys.AsNoTracking().Where(k => k.OrganizationId == orgId).ToListAsync(cancellationToken);
        return keys.OrderBy(k => k.CreatedAt).Select(k => KeyResponse.From(k, now)).ToList();
    }

    public async Task<KeyResponse> GetAsync(Guid orgId, Guid keyId, CancellationToken cancellationToken) =>
        KeyResponse.From(await FindAsync(orgId, keyId, cancellationToken), time.GetUtcNow());

    /// <summary>Revokes at once here and, through the change watcher, within two seconds on every replica.</summary>
    public async Task<KeyResponse> RevokeAsync(Guid orgId, Guid keyId, Caller caller, OrgRole? callerRole, CancellationToken cancellationToken)
    {
        var key = await FindAsync(orgId, keyId, cancellationToken);
        EnsureMayChange(key, caller, callerRole);
        var now = time.GetUtcNow();
        if (key.RevokedAt is null)
        {
            key.RevokedAt = now;
            key.PreviousSecretHash = null;
            key.PreviousPrefix = null;
            key.PreviousValidUntil = null;
            key.UpdatedAt = now;
            audit.Record("key.revoke", $"key:{key.Id}", orgId);
            await db.SaveChangesAsync(cancellationToken);
            IdentityLog.KeyChanged(logger, key.Id, "revoked", orgId);
        }

        verifier.Evict(key.Id);
        return KeyResponse.From(key, now);
    }

    /// <summary>Issues a new secret under the same key id; the old secret keeps working for the grace period.</summary>
    public async Task<CreatedKeyResponse> RotateAsync(
        Guid orgId, Guid keyId, RotateKeyRequest request, Caller caller, OrgRole? callerRole, CancellationToken cancellationToken)
    {
        var grace = options.Value.KeyRotationGracePeriod;
        if (request.GracePeriodSeconds is { } seconds)
        {
            if (seconds < 0 || seconds > TimeSpan.FromDays(30).TotalSeconds)
            {
                throw ApiProblem.Invalid("gracePeriodSeconds", "must be between 0 and 2592000 (30 days)");
            }

            grace = TimeSpan.FromSeconds(seconds);
        }

        var key = await FindAsync(orgId, keyId, cancellationToken);
        EnsureMayChange(key, caller, callerRole);
        var now = time.GetUtcNow();
        if (key.RevokedAt is not null)
        {
            throw ApiProblem.Conflict("keyId", "a revoked key cannot be rotated; create a new key");
        }

        if (key.ExpiresAt is { } expires && expires <= now)
        {
            throw ApiProblem.Conflict("keyId", "an expired key cannot be rotated; create a new key");
        }

        var secret = ApiKeyFormat.Generate();
        key.PreviousPrefix = grace > TimeSpan.Zero ? key.Prefix : null;
        key.PreviousSecretHash = grace > TimeSpan.Zero ? key.SecretHash : null;
        key.PreviousValidUntil = grace > TimeSpan.Zero ? now + grace : null;
        key.Prefix = ApiKeyFormat.LookupPrefix(secret);
        key.SecretHash = Bcrypt.Hash(secret, options.Value.ApiKeyHashCost);
        key.UpdatedAt = now;
        audit.Record("key.rotate", $"key:{key.Id}", orgId);
        await db.SaveChangesAsync(cancellationToken);
        prefixes.Add(key.Prefix);
        verifier.Evict(key.Id);
        IdentityLog.KeyChanged(logger, key.Id, "rotated", orgId);
        return new CreatedKeyResponse(secret, KeyResponse.From(key, now));
    }

    /// <summary>
    /// Members may change only the keys they created; owners and admins may change any. A key acts with its creator's
    /// current role (<paramref name="callerRole"/>); a key reassigned to the organization, with its scopes alone.
    /// </summary>
    private static void EnsureMayChange(ApiKey key, Caller caller, OrgRole? callerRole)
    {
        if ((caller.IsKey && caller.UserId is null) || callerRole is OrgRole.Owner or OrgRole.Admin
            || (callerRole is not null && caller.UserId is { } user && key.CreatedByUserId == user))
        {
            return;
        }

        throw ApiProblem.Forbidden("Members can revoke or rotate only the keys they created; ask an admin.");
    }

    /// <summary>
    /// Hands a key over to the organization: it no longer depends on its creator's membership, so it keeps working when
    /// they leave, and is bounded by its scopes alone. Audited as <c>key.reassign</c>.
    /// </summary>
    public async Task<KeyResponse> ReassignToOrganizationAsync(Guid orgId, Guid keyId, CancellationToken cancellationToken)
    {
        var key = await FindAsync(orgId, keyId, cancellationToken);
        var now = time.GetUtcNow();
        if (key.RevokedAt is not null)
        {
            throw ApiProblem.Conflict("keyId", "a revoked key cannot be reassigned; create a new key");
        }

        if (key.CreatedByUserId is { } previous)
        {
            key.CreatedByUserId = null;
            key.UpdatedAt = now;
            audit.Record("key.reassign", $"key:{key.Id} from user:{previous} to org", orgId);
            await db.SaveChangesAsync(cancellationToken);
            verifier.Evict(key.Id);
            IdentityLog.KeyChanged(logger, key.Id, "reassigned", orgId);
        }

        return KeyResponse.From(key, now);
    }

    /// <summary>
    /// Marks the keys <paramref name="userId"/> created in <paramref name="orgId"/> (every org when null) as changed, in
    /// the caller's unit of work: once the caller has saved (and ended the membership or closed the account) and
    /// evicted the returned ids on this replica, they stop here at once and on every other replica when its change
    /// watcher next polls, because a key whose creator is no member does not verify.
    /// </summary>
    public static async Task<IReadOnlyList<Guid>> MarkKeysOfChangedAsync(
        SluiceDbContext db, Guid userId, Guid? orgId, DateTimeOffset now, CancellationToken cancellationToken)
    {
        var keys = await db.ApiKeys.Where(k => k.CreatedByUserId == userId && k.RevokedAt == null && (orgId == null || k.OrganizationId == orgId))
            .ToListAsync(cancellationToken);
        foreach (var key in keys)
        {
            key.UpdatedAt = now;
        }

        return keys.Select(k => k.Id).ToList();
    }

    private async Task<ApiKey> FindAsync(Guid orgId, Guid keyId, CancellationToken cancellationToken) =>
        await db.ApiKeys.SingleOrDefaultAsync(k => k.Id == keyId && k.OrganizationId == orgId, cancellationToken)
        ?? throw ApiProblem.NotFound("API key");

    private static void CheckPositive(long? value, string field, FieldErrors errors)
    {
        if (value is <= 0)
        {
            errors.Add(field, "must be a positive number, or omitted for no limit");
        }
    }

    private static string Truncate(string value) => value.Length > 40 ? value[..40] + "…" : value;
}
