using System.Threading.Channels;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Options;
using Sluice.Hosting;
using Sluice.Storage;

namespace Sluice.Gateway;

/// <summary>
/// Takes one usage event per request off the hot path: a bounded in-memory backlog (<see cref="GatewayOptions.UsageQueueCapacity"/>
/// events) that the request never waits on, drained by <see cref="UsageWriter"/> in batches. Through a database outage
/// of any length the events wait here and are written when it returns; if the backlog is ever full an event is dropped
/// and counted (exposed at <c>/api/v1/admin/usage-pipeline</c> and <c>/readyz</c>, and logged once per episode)
/// rather than slowing requests or growing memory without bound.
/// </summary>
public sealed class UsageMeter(IOptions<GatewayOptions> options, ILogger<UsageMeter> logger, Billing.SpendJournal? journal = null)
{
    private readonly Channel<UsageEvent> _queue = Channel.CreateBounded<UsageEvent>(new BoundedChannelOptions(options.Value.UsageQueueCapacity)
    {
        FullMode = BoundedChannelFullMode.Wait, // TryWrite then fails instead of blocking; the caller counts the drop
        SingleReader = true,
    });

    private long _dropped;
    private long _written;
    private long _rejected;
    private int _dropping;
    private int _inHand;
    private long _failingSinceTicks;

    public int Capacity { get; } = options.Value.UsageQueueCapacity;

    public long Dropped => Interlocked.Read(ref _dropped);

    public long Written => Interlocked.Read(ref _written);

    /// <summary>Events the database refused as invalid (not for being unavailable); logged by exception type.</summary>
    public long Rejected => Interlocked.Read(ref _rejected);

    /// <summary>Events waiting: queued plus the batch the writer holds.</summary>
    public int Queued => (_queue.Reader.CanCount ? _queue.Reader.Count : 0) + Volatile.Read(ref _inHand);

    /// <summary>Since when writes have been failing (the database is unavailable), or null while they succeed.</summary>
    public DateTimeOffset? FailingSince => Interlocked.Read(ref _failingSinceTicks) is var ticks and not 0 ? new DateTimeOffset(ticks, TimeSpan.Zero) : null;

    internal ChannelReader<UsageEvent> Reader => _queue.Reader;

    public void Record(UsageEvent usage)
    {
        if (!(journal?.TryEnqueue(usage, _queue.Writer) ?? _queue.Writer.TryWrite(usage))) // journaled for crash replay
        {
            var dropped = Interlocked.Increment(ref _dropped);
            if (Interlocked.Exchange(ref _dropping, 1) == 0)
            {
                GatewayLog.UsageDropped(logger, Capacity, dropped); // once per episode: a full backlog would log every request
            }
        }
    }

    internal void HoldingBatch(int count) => Volatile.Write(ref _inHand, count);

    internal void CountWritten(int count)
    {
        Interlocked.Add(ref _written, count);
        journal?.EventsWritten(count);
        Interlocked.Exchange(ref _failingSinceTicks, 0);
        if (_queue.Reader.CanCount && _queue.Reader.Count < Capacity / 2)
        {
            Interlocked.Exchange(ref _dropping, 0); // the episode ends once the backlog has room again
        }
    }

    internal void CountRejected(int count)
    {
        Interlocked.Add(ref _rejected, count);
        journal?.EventsWritten(count); // settled either way: replaying a refused event would be refused again
    }

    internal void Failing(DateTimeOffset since) => Interlocked.CompareExchange(ref _failingSinceTicks, since.UtcTicks, 0);
}

/// <summary>
/// Writes queued usage events in batches. A batch that cannot be written (the database is down) is retried with
/// exponential backoff (200 ms doubling to 10 s) for as long as it takes, and the backlog waits behind it. A retried
/// batch skips events already stored (a write whose commit outcome was unknown may have landed), so nothing is
/// counted twice. A batch the database keeps refusing for another reason is written one event at a time and the
/// events it refuses are counted as rejected, so one bad event cannot block metering. On shutdown it drains the queue
/// once the server has finished its in-flight requests (<see cref="StoppedAsync"/> runs after every service stopped),
/// retrying until the host's shutdown timeout.
/// </summary>
internal sealed class UsageWriter(
    UsageMeter meter,
    IServiceScopeFactory scopes,
    IOptions<GatewayOptions> options,
    DatabaseAvailability availability,
    TimeProvider time,
    ILogger<UsageWriter> logger,
    BackgroundHealth? health = null)
    : SupervisedService(health), IHostedLifecycleService
{
    private const int BatchSize = 500;
    private const int TriesBeforeOneByOne = 5;
    private static readonly TimeSpan FirstRetry = TimeSpan.FromMilliseconds(200);
    private static readonly TimeSpan MaxRetry = TimeSpan.FromSeconds(10);

    // Survives a restart of the loop and is what the shutdown drain starts from.
    private readonly List<UsageEvent> _batch = new(BatchSize);
    private bool _mayBeStored; // an earlier attempt at this batch failed: some of it may have been written
    private readonly SemaphoreSlim _draining = new(1, 1);

    /// <summary>How long the shutdown drain keeps retrying while the database is unavailable.</summary>
    private static readonly TimeSpan ShutdownDrainLimit = TimeSpan.FromSeconds(10);

    public async Task StoppedAsync(CancellationToken cancellationToken)
    {
        // Its own limit: the host's token may already be spent on draining requests, and the first try must still run.
        using var limit = new CancellationTokenSource(ShutdownDrainLimit);
        try
        {
            await DrainAsync(limit.Token);
        }
        catch (Exception ex)
        {
            GatewayLog.UsageLostOnShutdown(logger, meter.Queued, ex.GetType().Name);
        }
    }

    public Task StartingAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StartedAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StoppingAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    protected override async Task RunAsync(CancellationToken stoppingToken)
    {
        while (await meter.Reader.WaitToReadAsync(stoppingToken))
        {
            // Pacing on the real clock, as before: tests that move a manual clock must not have to move it for metering.
            await Task.Delay(options.Value.UsageFlushInterval, stoppingToken);
            await DrainAsync(stoppingToken);
        }
    }

    /// <summary>Writes everything queued; returns when the queue is empty or <paramref name="cancellationToken"/> fires.</summary>
    private async Task DrainAsync(CancellationToken cancellationToken)
    {
        await _draining.WaitAsync(cancellationToken);
        try
        {
            while (true)
            {
                while (_batch.Count < BatchSize && meter.Reader.TryRead(out var usage))
                {
                    _batch.Add(usage);
                }

                meter.HoldingBatch(_batch.Count);
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
                if (meter.FailingSince is not null)
                {
                    GatewayLog.UsageWritingAgain(logger, meter.Queued);
                }

                meter.CountWritten(_batch.Count);
                Done();
                return;
            }
            catch (Exception ex) when (ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
            {
                _mayBeStored = true;
                var unavailable = availability.Observe(ex);
                if (meter.FailingSince is null)
                {
                    GatewayLog.UsageWriteFailed(logger, meter.Queued, ex.GetType().Name);
                    meter.Failing(time.GetUtcNow());
                }

                if (!unavailable && attempt >= TriesBeforeOneByOne)
                {
                    await WriteOneByOneAsync(cancellationToken);
                    return;
                }

                var delay = TimeSpan.FromTicks(Math.Min(MaxRetry.Ticks, FirstRetry.Ticks * (1L << Math.Min(attempt - 1, 16))));
                await Task.Delay(delay, cancellationToken);
            }
        }
    }

    /// <summary>The database refuses this batch but is up: store what it accepts, count and log what it refuses.</summary>
    private async Task WriteOneByOneAsync(CancellationToken cancellationToken)
    {
        // Counted once the whole pass is done: a pass cut short by an outage is retried from the start (stored events
        // are skipped then), and counting its refusals twice would let the spend journal drop events not yet stored.
        var written = 0;
        var refused = 0;
        foreach (var usage in _batch)
        {
            try
            {
                await InsertAsync([usage], skipExisting: true, cancellationToken);
                written++;
            }
            catch (Exception ex) when (ex is not OperationCanceledException && !DatabaseFailures.IsUnavailable(ex))
            {
                refused++;
                GatewayLog.UsageRejected(logger, usage.Id, ex.GetType().Name);
            }
        }

        meter.CountRejected(refused);
        meter.CountWritten(written);
        Done();
    }

    private void Done()
    {
        _batch.Clear();
        _mayBeStored = false;
        meter.HoldingBatch(0);
    }

    private async Task InsertAsync(IReadOnlyList<UsageEvent> rows, bool skipExisting, CancellationToken cancellationToken)
    {
        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<SluiceDbContext>();
        await BulkInsert.InsertAsync(db, rows, cancellationToken, skipExisting);
    }
}

/// <summary><c>/readyz</c>: degraded (still ready, requests are served) while usage events wait for the database or are being dropped.</summary>
internal sealed class UsagePipelineHealthCheck(UsageMeter meter) : IHealthCheck
{
    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        var detail = $"{meter.Queued} waiting of {meter.Capacity}, {meter.Written} written, {meter.Dropped} dropped, {meter.Rejected} rejected";
        return Task.FromResult(meter.FailingSince is { } since
            ? HealthCheckResult.Degraded($"writes failing since {since:O}; {detail}")
            : HealthCheckResult.Healthy(detail));
    }
}
