using System.Text.RegularExpressions;
using System.Threading.Channels;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Options;
using Sluice.Compute.Protocol;

namespace Sluice.Compute.Telemetry;

/// <summary>One heartbeat's telemetry as rows: the machine's aggregates and one row per GPU.</summary>
internal sealed record TelemetryRows(MachineTelemetrySample Machine, IReadOnlyList<GpuTelemetrySample> Gpus);

/// <summary>
/// The heartbeat endpoint's <see cref="ITelemetrySink"/>: <see cref="Record"/> never blocks and never throws. It turns a
/// sample into rows (figures only, each checked against a plausible range; anything else is stored as null) and queues
/// them in a bounded buffer (<see cref="TelemetryOptions.QueueCapacity"/>) that <see cref="TelemetryWriter"/> drains in
/// batches. When the buffer is full the sample is dropped and counted (<c>/readyz</c>, <c>/api/v1/admin/telemetry-pipeline</c>).
/// </summary>
public sealed partial class TelemetryBuffer(IOptions<TelemetryOptions> options, ILogger<TelemetryBuffer> logger) : ITelemetrySink
{
    private readonly TelemetryOptions _settings = options.Value;

    private readonly Channel<TelemetryRows> _queue = Channel.CreateBounded<TelemetryRows>(new BoundedChannelOptions(options.Value.QueueCapacity)
    {
        FullMode = BoundedChannelFullMode.Wait, // TryWrite fails instead of waiting; the sample is counted as dropped
        SingleReader = true,
    });

    private long _received;
    private long _written;
    private long _dropped;
    private long _rejected;
    private int _inHand;
    private int _dropping;
    private long _failingSinceTicks;

    public int Capacity => _settings.QueueCapacity;

    public long Received => Interlocked.Read(ref _received);

    public long Written => Interlocked.Read(ref _written);

    public long Dropped => Interlocked.Read(ref _dropped);

    /// <summary>Samples refused: not from a well-formed machine id, or refused by the database as invalid.</summary>
    public long Rejected => Interlocked.Read(ref _rejected);

    public int Queued => (_queue.Reader.CanCount ? _queue.Reader.Count : 0) + Volatile.Read(ref _inHand);

    /// <summary>True from a dropped sample until the buffer is back under half full.</summary>
    public bool Dropping => Volatile.Read(ref _dropping) == 1;

    public DateTimeOffset? FailingSince => Interlocked.Read(ref _failingSinceTicks) is var ticks and not 0 ? new DateTimeOffset(ticks, TimeSpan.Zero) : null;

    internal ChannelReader<TelemetryRows> Reader => _queue.Reader;

    public void Record(string machineId, TelemetrySample sample, DateTimeOffset receivedAt)
    {
        Interlocked.Increment(ref _received);
        TelemetryRows rows;
        try
        {
            if (!IsMachineId(machineId))
            {
                Interlocked.Increment(ref _rejected);
                TelemetryLog.BadMachineId(logger, machineId?.Length ?? 0);
                return;
            }

            rows = ToRows(machineId, sample, receivedAt, _settings.MaxClockSkew);
        }
        catch (Exception ex) when (ex is ArgumentException or NullReferenceException or OverflowException)
        {
            Interlocked.Increment(ref _rejected); // a malformed sample (a null list): never the heartbeat's problem
            return;
        }

        if (!_queue.Writer.TryWrite(rows))
        {
            var dropped = Interlocked.Increment(ref _dropped);
            if (Interlocked.Exchange(ref _dropping, 1) == 0)
            {
                TelemetryLog.Dropping(logger, Capacity, dropped); // once per episode
            }
        }
    }

    /// <summary>Letters, digits, '-', '_' and '.', 1 to 64 of them: anything else is not an id Sluice issued.</summary>
    public static bool IsMachineId(string? machineId) => machineId is { Length: > 0 and <= TelemetryTables.MachineIdLength } && MachineIdPattern().IsMatch(machineId);

    internal static TelemetryRows ToRows(string machineId, TelemetrySample sample, DateTimeOffset receivedAt, TimeSpan maxSkew)
    {
        var at = (sample.At - receivedAt).Duration() <= maxSkew ? sample.At : receivedAt;
        at = Microseconds(at);
        var gpus = new List<GpuTelemetrySample>();
        foreach (var gpu in sample.Gpus ?? [])
        {
            if (gpu is null || gpu.Index is < 0 or > 255 || gpus.Count >= 64 || gpus.Exists(g => g.GpuIndex == gpu.Index))
            {
                continue; // at most 64 GPUs, each index once
            }

            gpus.Add(new GpuTelemetrySample
            {
                MachineId = machineId,
                At = at,
                GpuIndex = gpu.Index,
                GpuUuid = gpu.Uuid is { } uuid && GpuUuidPattern().IsMatch(uuid) ? uuid : null,
                MemoryUsedMib = Count(gpu.MemoryUsedMib, 1L << 40),
                MemoryTotalMib = Count(gpu.MemoryTotalMib, 1L << 40),
                UtilizationPercent = Figure(gpu.UtilizationPercent, 0, 100),
                TemperatureC = Figure(gpu.TemperatureC, -60, 200),
                PowerDrawW = Figure(gpu.PowerDrawW, 0, 10_000),
                XidErrors = Count(gpu.XidErrors, 1L << 50),
                EccErrors = Count(gpu.EccErrors, 1L << 50),
            });
        }

        var machine = new MachineTelemetrySample
        {
            MachineId = machineId,
            At = at,
            CpuPercent = Figure(sample.CpuPercent, 0, 100),
            Load1 = Figure(sample.Load1, 0, 1_000_000),
            MemoryUsedBytes = Count(sample.MemoryUsedBytes, 1L << 60),
            MemoryTotalBytes = Count(sample.MemoryTotalBytes, 1L << 60),
            DiskUsedBytes = Count(sample.DiskUsedBytes, 1L << 60),
            DiskTotalBytes = Count(sample.DiskTotalBytes, 1L << 60),
            GpuCount = gpus.Count,
        };
        return new TelemetryRows(machine, gpus);
    }

    /// <summary>Both databases keep microseconds; a key compared after a round trip must be the stored one.</summary>
    internal static DateTimeOffset Microseconds(DateTimeOffset at)
    {
        var ticks = at.UtcTicks;
        return new DateTimeOffset(ticks - (ticks % TimeSpan.TicksPerMicrosecond), TimeSpan.Zero);
    }

    private static double? Figure(double? value, double min, double max) =>
        value is { } v && double.IsFinite(v) && v >= min && v <= max ? v : null;

    private static long? Count(long? value, long max) => value is { } v && v >= 0 && v <= max ? v : null;

    internal void HoldingBatch(int count) => Volatile.Write(ref _inHand, count);

    internal void CountWritten(int count)
    {
        Interlocked.Add(ref _written, count);
        Interlocked.Exchange(ref _failingSinceTicks, 0);
        if (_queue.Reader.CanCount && _queue.Reader.Count < Capacity / 2)
        {
            Interlocked.Exchange(ref _dropping, 0);
        }
    }

    internal void CountRejected(int count) => Interlocked.Add(ref _rejected, count);

    internal void Failing(DateTimeOffset since) => Interlocked.CompareExchange(ref _failingSinceTicks, since.UtcTicks, 0);

    [GeneratedRegex("^[A-Za-z0-9_.-]+$")]
    private static partial Regex MachineIdPattern();

    // nvidia-smi's form: GPU-xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx (MIG- for MIG instances). Nothing else is kept.
    [GeneratedRegex("^(GPU|MIG)-[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")]
    private static partial Regex GpuUuidPattern();
}

/// <summary>What the telemetry pipeline has done since this replica started.</summary>
public sealed record TelemetryPipelineResponse(int Queued, int Capacity, long Received, long Written, long Dropped, long Rejected, DateTimeOffset? FailingSince);

/// <summary><c>/readyz</c>: degraded (still ready) while telemetry writes fail or samples have been dropped.</summary>
internal sealed class TelemetryHealthCheck(TelemetryBuffer buffer) : IHealthCheck
{
    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        var detail = $"{buffer.Queued} waiting of {buffer.Capacity}, {buffer.Written} written, {buffer.Dropped} dropped, {buffer.Rejected} rejected";
        return Task.FromResult(buffer.FailingSince is { } since
            ? HealthCheckResult.Degraded($"writes failing since {since:O}; {detail}")
            : buffer.Dropping ? HealthCheckResult.Degraded($"samples being dropped (buffer full); {detail}") : HealthCheckResult.Healthy(detail));
    }
}
