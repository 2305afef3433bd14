using Microsoft.Extensions.Options;
using Sluice.Hosting;

namespace Sluice.Audit;

/// <summary>Signs a checkpoint every <see cref="AuditOptions.CheckpointInterval"/> when the log has grown. Safe on several replicas.</summary>
internal sealed class CheckpointScheduler(IServiceScopeFactory scopes, IOptions<AuditOptions> options, TimeProvider time, ILogger<CheckpointScheduler> logger, BackgroundHealth? health = null)
    : SupervisedService(health)
{
    protected override Task RunAsync(CancellationToken stoppingToken) =>
        PeriodicWork.RunAsync(options.Value.CheckpointInterval, time, logger, "Audit checkpoint", async ct =>
        {
            await using var scope = scopes.CreateAsyncScope();
            await scope.ServiceProvider.GetRequiredService<AuditService>().CheckpointAsync(ct);
        }, stoppingToken, Health);
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
