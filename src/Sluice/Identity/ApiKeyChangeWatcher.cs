using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using Sluice.Storage;

namespace Sluice.Identity;

/// <summary>
/// Polls for API keys changed by any replica (revoked, rotated, edited) and evicts their cached verifications, so a
/// change made elsewhere takes effect here within <see cref="IdentityOptions.KeyChangePollInterval"/> plus a query.
/// Each poll looks back over a window measured on this replica's clock, so clock skew between replicas up to
/// that window loses nothing; re-seeing an unchanged key evicts nothing. New keys' prefixes join <see cref="KnownKeyPrefixes"/>.
/// </summary>
internal sealed class ApiKeyChangeWatcher(
    IServiceScopeFactory scopes,
    ApiKeyVerifier verifier,
    KnownKeyPrefixes prefixes,
    TimeProvider time,
    IOptions<IdentityOptions> options,
    ILogger<ApiKeyChangeWatcher> logger, Hosting.BackgroundHealth? health = null) : Hosting.SupervisedService(health)
{
    private static readonly TimeSpan LookBack = TimeSpan.FromSeconds(30);

    protected override async Task RunAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(options.Value.KeyChangePollInterval, time);
        var since = time.GetUtcNow() - LookBack;
        try
        {
            while (await timer.WaitForNextTickAsync(stoppingToken))
            {
                var polledAt = time.GetUtcNow();
                try
                {
                    await EvictChangedSinceAsync(since, stoppingToken);
                    since = polledAt - LookBack;
                }
                catch (Exception ex) when (ex is not OperationCanceledException)
                {
                    IdentityLog.KeyChangePollFailed(logger, ex.GetType().Name);
                }
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            // Stopping, including a start that failed after this service began.
        }
    }

    internal async Task EvictChangedSinceAsync(DateTimeOffset since, CancellationToken cancellationToken)
    {
        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<SluiceDbContext>();
        var changed = await db.ApiKeys.AsNoTracking()
            .Where(k => k.UpdatedAt > since)
            .Select(k => new { k.Id, k.UpdatedAt, k.Prefix, k.PreviousPrefix })
            .ToListAsync(cancellationToken);
        foreach (var key in changed)
        {
            prefixes.Add(key.Prefix); // created or rotated by another replica or the CLI
            prefixes.Add(key.PreviousPrefix);
            verifier.Evict(key.Id, key.UpdatedAt);
        }
    }
}
