using Microsoft.EntityFrameworkCore;
using Sluice.Hosting;
using Sluice.Storage;

namespace Sluice.WebConsole;

/// <summary>Deletes used form nonces whose tokens have expired (a token past its expiry is refused anyway). Safe on every replica.</summary>
internal sealed class ConsoleFormNonceSweeper(IServiceScopeFactory scopes, TimeProvider time, ILogger<ConsoleFormNonceSweeper> logger, BackgroundHealth? health = null)
    : SupervisedService(health)
{
    protected override Task RunAsync(CancellationToken stoppingToken) =>
        PeriodicWork.RunAsync(TimeSpan.FromMinutes(10), time, logger, "Sweeping console form nonces", async ct =>
        {
            await using var scope = scopes.CreateAsyncScope();
            var db = scope.ServiceProvider.GetRequiredService<SluiceDbContext>();
            // A margin for clocks that differ between replicas: a nonce outlives its token on every one of them.
            var before = time.GetUtcNow() - TimeSpan.FromMinutes(5);
            await db.ConsoleFormNonces.Where(n => n.ExpiresAt < before).ExecuteDeleteAsync(ct);
        }, stoppingToken, Health);
}
