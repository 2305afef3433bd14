using Microsoft.Extensions.Options;
using Sluice.Hosting;
using Sluice.Storage;

namespace Sluice.Compute.Telemetry;

/// <summary>
/// Writes queued telemetry every <see cref="TelemetryOptions.FlushInterval"/>, in batches of machine samples with
/// their GPU rows in one transaction (binary COPY on PostgreSQL, a prepared statement on SQLite: <see cref="BulkInsert"/>).
/// A batch that cannot be written is retried with backoff (200 ms doubling to 10 s) for as long as the database is
/// unavailable, while new samples queue behind it (and are dropped, counted, once the buffer is full). A retried batch
/// skips rows already stored, and rows are keyed by (machine, time), so an outage neither loses nor duplicates a sample.
/// A batch the database keeps refusing while it is up is written one sample at a time and the refused ones are counted.
/// </summary>
internal sealed class TelemetryWriter(
    TelemetryBuffer buffer,
    IServiceScopeFactory scopes,
    IOptions<TelemetryOptions> options,
    DatabaseAvailability availability,
    TimeProvider time,
    ILogger<TelemetryWriter> logger,
    BackgroundHealth? health = null)
    : SupervisedService(health), IHostedLifecycleService
{
    private const int TriesBeforeOneByOne = 5;
    private static readonly TimeSpan FirstRetry = TimeSpan.FromMilliseconds(200);
    private static readonly TimeSpan MaxRetry = TimeSpan.FromSeconds(10);
    private static readonly TimeSpan ShutdownDrainLimit = TimeSpan.FromSeconds(5);

    private readonly List<TelemetryRows> _batch = [];
    private bool _mayBeStored;
    private readonly SemaphoreSlim _draining = new(1, 1);

    protected override async Task RunAsync(CancellationToken stoppingToken)
    {
        while (await buffer.Reader.WaitToReadAsync(stoppingToken))
        {
            // Paced on the real clock, like the usage writer: tests on a manual clock need not move it for writes.
            await Task.Delay(options.Value.FlushInterval, stoppingToken);
            await DrainAsync(stoppingToken);
        }
    }

    public async Task StoppedAsync(CancellationToken cancellationToken)
    {
        using var limit = new CancellationTokenSource(ShutdownDrainLimit);
        try
        {
            await DrainAsync(limit.Token);
        }
        catch (Exception ex)
        {
            TelemetryLog.WriteFailed(logger, buffer.Queued, ex.GetType().Name);
        }
    }

    public Task StartingAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StartedAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StoppingAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    /// <summary>Writes everything queued now.</summary>
    internal async Task DrainAsync(CancellationToken cancellationToken)
    {
        await _draining.WaitAsync(cancellationToken);
        try
        {
            while (true)
            {
                while (_batch.Count < options.Value.BatchSize && buffer.Reader.TryRead(out var rows))
                {
                    _batch.Add(rows);
                }

                buffer.HoldingBatch(_batch.Count);
                if (_batch.Count == 0)
                {
                    return;
                }

                await WriteBatchAsync(cancellationToken);
            }
        }
        finally
        {
            _draining.Release();
        }
    }

    private async Task WriteBatchAsync(CancellationToken cancellationToken)
    {
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                await InsertAsync(_batch, _mayBeStored, cancellationToken);
                if (buffer.FailingSince is not null)
                {
                    TelemetryLog.WritingAgain(logger, buffer.Queued);
                }

                buffer.CountWritten(_batch.Count);
                Done();
                return;
            }
            catch (Exception ex) when (ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
            {
                var unavailable = availability.Observe(ex);

                // Whatever failed, the next try skips what is stored: an unknown commit outcome, or a sample the
                // agent sent twice (a retried heartbeat) whose key is already there.
                _mayBeStored = true;
                TelemetryPartitions.Forget();
                if (buffer.FailingSince is null)
                {
                    TelemetryLog.WriteFailed(logger, buffer.Queued, ex.GetType().Name);
                    buffer.Failing(time.GetUtcNow());
                }

                if (!unavailable && attempt >= TriesBeforeOneByOne)
                {
                    await WriteOneByOneAsync(cancellationToken);
                    return;
                }

                if (attempt > 1 || unavailable)
                {
                    var delay = TimeSpan.FromTicks(Math.Min(MaxRetry.Ticks, FirstRetry.Ticks * (1L << Math.Min(attempt - 1, 16))));
                    await Task.Delay(delay, cancellationToken);
                }
            }
        }
    }

    private async Task WriteOneByOneAsync(CancellationToken cancellationToken)
    {
        var written = 0;
        var refused = 0;
        foreach (var rows in _batch)
        {
            try
            {
                await InsertAsync([rows], skipExisting: true, cancellationToken);
                written++;
            }
            catch (Exception ex) when (ex is not OperationCanceledException && !DatabaseFailures.IsUnavailable(ex))
            {
                refused++;
                TelemetryLog.SampleRefused(logger, rows.Machine.MachineId, ex.GetType().Name);
            }
        }

        buffer.CountRejected(refused);
        buffer.CountWritten(written);
        Done();
    }

    private void Done()
    {
        _batch.Clear();
        _mayBeStored = false;
        buffer.HoldingBatch(0);
    }

    private async Task InsertAsync(List<TelemetryRows> batch, bool skipExisting, CancellationToken cancellationToken)
    {
        // One row per (machine, time): a sample the agent sent twice in one batch is written once.
        var machines = new List<MachineTelemetrySample>(batch.Count);
        var gpus = new List<GpuTelemetrySample>();
        var seen = new HashSet<(string, DateTimeOffset)>();
        foreach (var rows in batch)
        {
            if (seen.Add((rows.Machine.MachineId, rows.Machine.At)))
            {
                machines.Add(rows.Machine);
                gpus.AddRange(rows.Gpus);
            }
        }

        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<SluiceDbContext>();
        await TelemetryPartitions.EnsureAsync(db, machines.Select(m => TelemetryPartitions.Day(m.At)), cancellationToken);
        await using var transaction = await db.Database.BeginTransactionAsync(cancellationToken);
        await BulkInsert.InsertAsync(db, machines, cancellationToken, skipExisting);
        await BulkInsert.InsertAsync(db, gpus, cancellationToken, skipExisting);
        await transaction.CommitAsync(cancellationToken);
    }
}
