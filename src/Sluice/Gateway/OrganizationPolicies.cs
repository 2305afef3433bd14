using System.Collections.Concurrent;
using Microsoft.EntityFrameworkCore;
using Sluice.Storage;

namespace Sluice.Gateway;

/// <summary>
/// An organization's routing policy and rate limits, as the hot path needs them. Routes whose provider trains on data
/// are open only to organizations that consented to training (C04) and do not require no-training providers.
/// </summary>
public sealed record OrganizationPolicy(Guid Id, bool RequireZeroRetention, bool RequireNoTraining, int? RequestsPerMinute, int? TokensPerMinute, bool TrainingConsent = false,
    bool UsageCostInResponses = true)
{
    public bool AllowsTrainingRoutes => TrainingConsent && !RequireNoTraining;
}

/// <summary>
/// Caches organizations' policies for a couple of seconds, so the hot path reads the database at most once per
/// organization per period; changes made on this replica are seen at once (<see cref="Forget"/>). When the database
/// is unavailable, the last value read is served (however old) so cached tenants keep being served through an outage;
/// an organization never read on this replica then fails with a database-unavailable error (503).
/// </summary>
public sealed class OrganizationPolicies(IServiceScopeFactory scopes, TimeProvider time)
{
    private static readonly TimeSpan Lifetime = TimeSpan.FromSeconds(2);
    private readonly ConcurrentDictionary<Guid, (OrganizationPolicy Policy, DateTimeOffset Until)> _cache = new();

    public async ValueTask<OrganizationPolicy> OrganizationAsync(Guid orgId, CancellationToken cancellationToken)
    {
        var now = time.GetUtcNow();
        if (_cache.TryGetValue(orgId, out var cached) && cached.Until > now)
        {
            return cached.Policy;
        }

        OrganizationPolicy? policy;
        try
        {
            await using var scope = scopes.CreateAsyncScope();
            var db = scope.ServiceProvider.GetRequiredService<SluiceDbContext>();
            policy = await db.Organizations.AsNoTracking().Where(o => o.Id == orgId)
                .Select(o => new OrganizationPolicy(o.Id, o.RequireZeroRetention, o.RequireNoTraining, o.RequestsPerMinute, o.TokensPerMinute, o.TrainingConsent, o.UsageCostInResponses))
                .SingleOrDefaultAsync(cancellationToken);
        }
        catch (Exception ex) when (cached.Policy is not null && DatabaseFailures.IsUnavailable(ex))
        {
            return cached.Policy; // the last value read; refreshed once the database answers again
        }

        if (policy is null)
        {
            _cache.TryRemove(orgId, out _);
            throw new OpenAiException(401, "The API key's organization no longer exists.", "invalid_request_error", "invalid_api_key");
        }

        _cache[orgId] = (policy, now + Lifetime);
        return policy;
    }

    public void Forget(Guid orgId) => _cache.TryRemove(orgId, out _);
}
