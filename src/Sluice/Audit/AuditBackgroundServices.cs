using Microsoft.Extensions.Options;
using Sluice.Hosting;

namespace Sluice.Audit;

/// <summary>
/// Keeps the log's tail signed: every <see cref="AuditOptions.CheckpointInterval"/> (a few seconds) it signs a checkpoint
/// when entries exist that none covers, whichever replica wrote them, and once more after every other service has
/// stopped on a clean shutdown. Safe on several replicas: a tree size is signed once (unique), the loser reads the winner's.
/// </summary>
internal sealed class CheckpointScheduler(
    IServiceScopeFactory scopes, IOptions<AuditOptions> options, TimeProvider time, ILogger<CheckpointScheduler> logger, BackgroundHealth? health = null)
    : SupervisedService(health), IHostedLifecycleService
{
    protected override Task RunAsync(CancellationToken stoppingToken) =>
        PeriodicWork.RunAsync(options.Value.CheckpointInterval, time, logger, "Audit checkpoint", SignTailAsync, stoppingToken, Health);

    public Task StartingAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StartedAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StoppingAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    /// <summary>After every hosted service (the web server included) has stopped: nothing writes entries any more.</summary>
    public async Task StoppedAsync(CancellationToken cancellationToken)
    {
        try
        {
            await SignTailAsync(cancellationToken);
        }
        catch (Exception ex)
        {
            AuditLogMessages.ShutdownCheckpointFailed(logger, ex.GetType().Name);
        }
    }

    private async Task SignTailAsync(CancellationToken cancellationToken)
    {
        await using var scope = scopes.CreateAsyncScope();
        if (await scope.ServiceProvider.GetRequiredService<AuditService>().CheckpointIfBehindAsync(cancellationToken) is { } checkpoint)
        {
            AuditLogMessages.CheckpointSigned(logger, checkpoint.TreeSize);
        }
    }
}

/// <summary>Prunes entries past <see cref="AuditOptions.Retention"/> every <see cref="AuditOptions.PruneInterval"/>, below a signed checkpoint.</summary>
internal sealed class AuditPruner(IServiceScopeFactory scopes, IOptions<AuditOptions> options, TimeProvider time, ILogger<AuditPruner> logger, BackgroundHealth? health = null)
    : SupervisedService(health)
{
    protected override Task RunAsync(CancellationToken stoppingToken) =>
        PeriodicWork.RunAsync(options.Value.PruneInterval, time, logger, "Audit pruning", async ct =>
        {
            await using var scope = scopes.CreateAsyncScope();
            await scope.ServiceProvider.GetRequiredService<AuditService>().PruneAsync(ct);
        }, stoppingToken, Health);
}
