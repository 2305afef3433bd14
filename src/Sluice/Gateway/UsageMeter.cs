using System.Threading.Channels;
using Microsoft.Extensions.Options;
using Sluice.Storage;

namespace Sluice.Gateway;

/// <summary>
/// Takes one usage event per request off the hot path: a bounded in-memory queue that the request never waits on,
/// drained by <see cref="UsageWriter"/> in batches. If the queue is ever full the event is dropped and counted
/// (exposed at <c>/api/v1/admin/usage-pipeline</c> and in the log) rather than slowing requests.
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

    public long Dropped => Interlocked.Read(ref _dropped);

    public long Written => Interlocked.Read(ref _written);

    public int Queued => _queue.Reader.CanCount ? _queue.Reader.Count : -1;

    internal ChannelReader<UsageEvent> Reader => _queue.Reader;

    public void Record(UsageEvent usage)
    {
        if (!(journal?.TryEnqueue(usage, _queue.Writer) ?? _queue.Writer.TryWrite(usage))) // journaled for crash replay
        {
            GatewayLog.UsageDropped(logger, Interlocked.Increment(ref _dropped));
        }
    }

    internal void CountWritten(int count)
    {
        Interlocked.Add(ref _written, count);
        journal?.EventsWritten(count);
    }
}

/// <summary>
/// Writes queued usage events in batches. On shutdown it drains the queue once the server has finished its in-flight
/// requests (<see cref="StoppedAsync"/> runs after every service stopped), so no acknowledged request goes unmetered.
/// </summary>
internal sealed class UsageWriter(UsageMeter meter, IServiceScopeFactory scopes, IOptions<GatewayOptions> options, ILogger<UsageWriter> logger)
    : BackgroundService, IHostedLifecycleService
{
    public Task StoppedAsync(CancellationToken cancellationToken) => DrainAsync([], CancellationToken.None);

    public Task StartingAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StartedAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StoppingAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    private const int BatchSize = 500;

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var batch = new List<UsageEvent>(BatchSize);
        try
        {
            while (await meter.Reader.WaitToReadAsync(stoppingToken))
            {
                await Task.Delay(options.Value.UsageFlushInterval, stoppingToken);
                await DrainAsync(batch, CancellationToken.None);
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }

        await DrainAsync(batch, CancellationToken.None);
    }

    private async Task DrainAsync(List<UsageEvent> batch, CancellationToken cancellationToken)
    {
        while (true)
        {
            while (batch.Count < BatchSize && meter.Reader.TryRead(out var usage))
            {
                batch.Add(usage);
            }

            if (batch.Count == 0)
            {
                return;
            }

            for (var attempt = 1; ; attempt++)
            {
                try
                {
                    await using var scope = scopes.CreateAsyncScope();
                    var db = scope.ServiceProvider.GetRequiredService<SluiceDbContext>();
                    await BulkInsert.InsertAsync(db, batch, cancellationToken);
                    meter.CountWritten(batch.Count);
                    batch.Clear();
                    break;
                }
                catch (Exception ex) when (ex is not OperationCanceledException && attempt < 5)
                {
                    GatewayLog.UsageWriteFailed(logger, batch.Count, ex.GetType().Name);
                    await Task.Delay(TimeSpan.FromMilliseconds(200 * attempt), cancellationToken);
                }
            }
        }
    }
}
