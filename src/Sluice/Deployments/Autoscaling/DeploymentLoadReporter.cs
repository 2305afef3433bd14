using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using Sluice.Hosting;
using Sluice.Storage;

namespace Sluice.Deployments.Autoscaling;

/// <summary>
/// Shares what this server replica sees (<see cref="DeploymentLoad"/>) with the replica that decides autoscaling:
/// every <see cref="AutoscalerOptions.ReportInterval"/>, one batched write of a row per deployment with requests in
/// flight or waiting here, or whose figures changed since the last write (so a deployment going quiet is written once
/// more, with zeros). Nothing at all when idle. Rows are keyed by this process's <see cref="ServerId"/>.
/// </summary>
public sealed class DeploymentLoadReporter(
    DeploymentLoad load, IServiceScopeFactory scopes, IOptions<AutoscalerOptions> options, TimeProvider time, ILogger<DeploymentLoadReporter> logger,
    BackgroundHealth? health = null)
    : SupervisedService(health)
{
    private readonly Dictionary<Guid, DeploymentLoadSample> _written = [];
    private readonly SemaphoreSlim _gate = new(1, 1);

    /// <summary>This server replica, as its load reports and the autoscaler's lease name it (random per process).</summary>
    public Guid ServerId { get; } = Guid.NewGuid();

    /// <summary>Writes the rows due now; returns how many.</summary>
    public async Task<int> ReportAsync(CancellationToken cancellationToken)
    {
        await _gate.WaitAsync(cancellationToken);
        try
        {
            var due = new List<DeploymentLoadSample>();
            foreach (var sample in load.Snapshot())
            {
                var clean = sample with { InFlight = Math.Max(0, sample.InFlight), Waiting = Math.Max(0, sample.Waiting) };
                if (clean.InFlight > 0 || clean.Waiting > 0 || !_written.TryGetValue(clean.DeploymentId, out var last) || last != clean)
                {
                    due.Add(clean);
                }
            }

            if (due.Count == 0)
            {
                return 0;
            }

            var now = time.GetUtcNow();
            try
            {
                await WriteAsync(due, now, trustMemory: true, cancellationToken);
            }
            catch (DbUpdateException)
            {
                // A row this server wrote is gone (removed after ReportRetention) or one it never wrote exists: ask the
                // database which rows are there and write again.
                try
                {
                    await WriteAsync(due, now, trustMemory: false, cancellationToken);
                }
                catch (Exception ex) when (ex is not OperationCanceledException)
                {
                    AutoscalingLog.ReportFailed(logger, ex.GetType().Name, due.Count);
                    throw;
                }
            }

            foreach (var sample in due)
            {
                _written[sample.DeploymentId] = sample;
            }

            return due.Count;
        }
        finally
        {
            _gate.Release();
        }
    }

    private async Task WriteAsync(List<DeploymentLoadSample> due, DateTimeOffset now, bool trustMemory, CancellationToken cancellationToken)
    {
        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<SluiceDbContext>();
        HashSet<Guid> stored;
        if (trustMemory)
        {
            stored = _written.Keys.ToHashSet();
        }
        else
        {
            var ids = due.Select(s => s.DeploymentId).ToList();
            stored = (await db.DeploymentLoadReports.Where(r => r.ServerId == ServerId && ids.Contains(r.DeploymentId)).Select(r => r.DeploymentId)
                .ToListAsync(cancellationToken)).ToHashSet();
        }

        foreach (var sample in due)
        {
            var row = new DeploymentLoadReport
            {
                ServerId = ServerId,
                DeploymentId = sample.DeploymentId,
                InFlight = sample.InFlight,
                Waiting = sample.Waiting,
                LastRequestAt = sample.LastRequestAt,
                ReportedAt = now,
            };
            if (stored.Contains(sample.DeploymentId))
            {
                db.DeploymentLoadReports.Update(row);
            }
            else
            {
                db.DeploymentLoadReports.Add(row);
            }
        }

        await db.SaveChangesAsync(cancellationToken);
    }

    protected override Task RunAsync(CancellationToken stoppingToken) =>
        PeriodicWork.RunAsync(options.Value.ReportInterval, time, logger, "Deployment load report", ReportAsync, stoppingToken, Health);
}
