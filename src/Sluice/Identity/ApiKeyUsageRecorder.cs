using System.Collections.Concurrent;
using Microsoft.EntityFrameworkCore;
using Sluice.Storage;

namespace Sluice.Identity;

/// <summary>
/// Records keys' last-used time off the request path: requests mark a key as used in memory, and a background
/// flush writes the marks every few seconds, one statement for all of them. <c>updated_at</c> is left alone, so a
/// busy key never looks "changed" to the other replicas' caches.
/// </summary>
public sealed class ApiKeyUsageRecorder(IServiceScopeFactory scopes, TimeProvider time, ILogger<ApiKeyUsageRecorder> logger, Hosting.BackgroundHealth? health = null) : Hosting.SupervisedService(health)
{
    private static readonly TimeSpan FlushInterval = TimeSpan.FromSeconds(5);
    private readonly ConcurrentDictionary<Guid, byte> _used = new();

    public void Touch(Guid keyId) => _used.TryAdd(keyId, 0);

    public async Task FlushAsync(CancellationToken cancellationToken)
    {
        if (_used.IsEmpty)
        {
            return;
        }

        var ids = _used.Keys.ToList();
        foreach (var id in ids)
        {
            _used.TryRemove(id, out _);
        }

        var now = time.GetUtcNow();
        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<SluiceDbContext>();
        await db.ApiKeys.Where(k => ids.Contains(k.Id)).ExecuteUpdateAsync(set => set.SetProperty(k => k.LastUsedAt, now), cancellationToken);
    }

    protected override async Task RunAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(FlushInterval, time);
        try
        {
            while (await timer.WaitForNextTickAsync(stoppingToken))
            {
                await FlushSafelyAsync(stoppingToken);
            }
        }
        catch (OperationCanceledException)
        {
        }

        await FlushSafelyAsync(CancellationToken.None);
    }

    private async Task FlushSafelyAsync(CancellationToken cancellationToken)
    {
        try
        {
            await FlushAsync(cancellationToken);
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            IdentityLog.KeyUsageFlushFailed(logger, ex.GetType().Name);
        }
    }
}
