using Microsoft.Extensions.Options;

namespace Sluice.Audit;

/// <summary>Signs a checkpoint every <see cref="AuditOptions.CheckpointInterval"/> when the log has grown. Safe on several replicas.</summary>
internal sealed class CheckpointScheduler(IServiceScopeFactory scopes, IOptions<AuditOptions> options, TimeProvider time, ILogger<CheckpointScheduler> logger)
    : BackgroundService
{
    protected override Task ExecuteAsync(CancellationToken stoppingToken) =>
        AuditBackground.RunPeriodicallyAsync(options.Value.CheckpointInterval, time, logger, "checkpoint", async ct =>
        {
            await using var scope = scopes.CreateAsyncScope();
            await scope.ServiceProvider.GetRequiredService<AuditService>().CheckpointAsync(ct);
        }, stoppingToken);
}

/// <summary>Prunes entries past <see cref="AuditOptions.Retention"/> every <see cref="AuditOptions.PruneInterval"/>, below a signed checkpoint.</summary>
internal sealed class AuditPruner(IServiceScopeFactory scopes, IOptions<AuditOptions> options, TimeProvider time, ILogger<AuditPruner> logger)
    : BackgroundService
{
    protected override Task ExecuteAsync(CancellationToken stoppingToken) =>
        AuditBackground.RunPeriodicallyAsync(options.Value.PruneInterval, time, logger, "prune", async ct =>
        {
            await using var scope = scopes.CreateAsyncScope();
            await scope.ServiceProvider.GetRequiredService<AuditService>().PruneAsync(ct);
        }, stoppingToken);
}

internal static partial class AuditBackground
{
    public static async Task RunPeriodicallyAsync(
        TimeSpan interval, TimeProvider time, ILogger logger, string work, Func<CancellationToken, Task> run, CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(interval, time);
        try
        {
            while (await timer.WaitForNextTickAsync(stoppingToken))
            {
                try
                {
                    await run(stoppingToken);
                }
                catch (Exception ex) when (ex is not OperationCanceledException)
                {
                    WorkFailed(logger, work, ex.GetType().Name);
                }
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
    }

    [LoggerMessage(200, LogLevel.Warning, "Audit {Work} failed ({ExceptionType}); will retry")]
    private static partial void WorkFailed(ILogger logger, string work, string exceptionType);
}
