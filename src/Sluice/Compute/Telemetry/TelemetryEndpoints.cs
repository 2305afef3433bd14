using System.Globalization;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using Sluice.Hosting;
using Sluice.Identity;
using Sluice.Storage;

namespace Sluice.Compute.Telemetry;

public sealed record MinAvgMax<T>(T? Min, T? Avg, T? Max)
    where T : struct;

public sealed record GpuReading(int Index, string? Uuid, long? MemoryUsedMib, long? MemoryTotalMib, double? UtilizationPercent,
    double? TemperatureC, double? PowerDrawW, long? XidErrors, long? EccErrors);

public sealed record TelemetryReading(DateTimeOffset At, double? CpuPercent, double? Load1, long? MemoryUsedBytes, long? MemoryTotalBytes,
    long? DiskUsedBytes, long? DiskTotalBytes, IReadOnlyList<GpuReading> Gpus);

public sealed record GpuHour(int Index, int Samples, MinAvgMax<long> MemoryUsedMib, long? MemoryTotalMib, MinAvgMax<double> UtilizationPercent,
    MinAvgMax<double> TemperatureC, MinAvgMax<double> PowerDrawW, long? XidErrorsMax, long? EccErrorsMax);

public sealed record TelemetryHour(DateTimeOffset Hour, int Samples, MinAvgMax<double> CpuPercent, MinAvgMax<double> Load1,
    MinAvgMax<long> MemoryUsedBytes, long? MemoryTotalBytes, MinAvgMax<long> DiskUsedBytes, long? DiskTotalBytes, IReadOnlyList<GpuHour> Gpus);

/// <summary>
/// One read of a machine's telemetry. <c>Truncated</c> is true when more rows lie in the range than one answer holds;
/// <c>NextFrom</c> is then where the next read starts.
/// </summary>
public sealed record TelemetryResponse(string MachineId, string Resolution, DateTimeOffset From, DateTimeOffset To, bool Truncated, DateTimeOffset? NextFrom,
    IReadOnlyList<TelemetryReading>? Samples, IReadOnlyList<TelemetryHour>? Hours);

/// <summary>
/// <c>GET /api/v1/machines/{machineId}/telemetry?from=&amp;to=&amp;resolution=raw|hour</c>: metadata only, for operators
/// and for the owners and admins of the organization whose private machine it is.
/// </summary>
internal static class TelemetryEndpoints
{
    public const string Raw = "raw";
    public const string HourResolution = "hour";

    private static readonly TimeSpan DefaultRawSpan = TimeSpan.FromHours(1);
    private static readonly TimeSpan DefaultHourSpan = TimeSpan.FromDays(1);

    /// <summary>The longest range one read may ask for: longer than any retention period allows data to exist.</summary>
    private static readonly TimeSpan MaxSpan = TimeSpan.FromDays(366);

    public static IEndpointRouteBuilder MapTelemetryEndpoints(this IEndpointRouteBuilder endpoints)
    {
        endpoints.MapGet("/api/v1/machines/{machineId}/telemetry", ReadAsync).WithTags("machines").RequireAuthorization(Policies.User);
        endpoints.MapGet("/api/v1/admin/telemetry-pipeline", (TelemetryBuffer buffer) => new TelemetryPipelineResponse(
                buffer.Queued, buffer.Capacity, buffer.Received, buffer.Written, buffer.Dropped, buffer.Rejected, buffer.FailingSince))
            .WithTags("operators").RequireAuthorization(Policies.Operator);
        return endpoints;
    }

    private static async Task<TelemetryResponse> ReadAsync(
        string machineId, string? from, string? to, string? resolution,
        HttpContext http, SluiceDbContext db, MachineAdmin machines, IOptions<TelemetryOptions> options, TimeProvider time, CancellationToken cancellationToken)
    {
        // Operators read any machine's telemetry; an organization's owners and admins their private machines' (anyone
        // else's ids answer 404, as for the machine itself).
        var caller = ComputeCaller.From(http);
        if (!caller.IsOperator)
        {
            if (!Guid.TryParse(machineId, out var id))
            {
                throw ApiProblem.NotFound("machine");
            }

            await machines.GetAsync(caller, id, cancellationToken);
        }

        var errors = new FieldErrors();
        if (!TelemetryBuffer.IsMachineId(machineId))
        {
            errors.Add("machineId", "must be a machine id: 1 to 64 letters, digits, '-', '_' or '.'");
        }

        var kind = string.IsNullOrEmpty(resolution) ? Raw : resolution;
        if (kind is not (Raw or HourResolution))
        {
            errors.Add("resolution", "must be 'raw' or 'hour'");
        }

        var end = ParseTime(to, "to", errors) ?? time.GetUtcNow();
        var start = ParseTime(from, "from", errors) ?? end - (kind == HourResolution ? DefaultHourSpan : DefaultRawSpan);
        if (!errors.Any && start >= end)
        {
            errors.Add("from", "must be before 'to'");
        }

        if (!errors.Any && end - start > MaxSpan)
        {
            errors.Add("to", $"the range may span at most {MaxSpan.TotalDays:0} days; read a longer one in parts");
        }

        errors.ThrowIfAny();
        var max = options.Value.MaxReadRows;
        return kind == Raw
            ? await ReadRawAsync(db, machineId, start, end, max, cancellationToken)
            : await ReadHoursAsync(db, machineId, start, end, max, cancellationToken);
    }

    private static DateTimeOffset? ParseTime(string? value, string field, FieldErrors errors)
    {
        if (string.IsNullOrEmpty(value))
        {
            return null;
        }

        if (DateTimeOffset.TryParse(value, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal | DateTimeStyles.AdjustToUniversal, out var parsed)
            && parsed.Year is >= 2000 and <= 9000)
        {
            return parsed;
        }

        errors.Add(field, "must be an ISO 8601 time, e.g. 2026-11-29T10:00:00Z");
        return null;
    }

    private static async Task<TelemetryResponse> ReadRawAsync(SluiceDbContext db, string machineId, DateTimeOffset from, DateTimeOffset to, int max, CancellationToken cancellationToken)
    {
        var samples = await db.Set<MachineTelemetrySample>().AsNoTracking()
            .Where(s => s.MachineId == machineId && s.At >= from && s.At < to)
            .OrderBy(s => s.At).Take(max + 1).ToListAsync(cancellationToken);
        var truncated = samples.Count > max;
        DateTimeOffset? nextFrom = truncated ? samples[max].At : null;
        if (truncated)
        {
            samples.RemoveAt(max);
        }

        var gpus = new Dictionary<DateTimeOffset, List<GpuReading>>();
        if (samples.Count > 0)
        {
            var last = samples[^1].At;
            foreach (var gpu in await db.Set<GpuTelemetrySample>().AsNoTracking()
                .Where(g => g.MachineId == machineId && g.At >= from && g.At <= last)
                .OrderBy(g => g.At).ThenBy(g => g.GpuIndex).ToListAsync(cancellationToken))
            {
                if (!gpus.TryGetValue(gpu.At, out var list))
                {
                    gpus[gpu.At] = list = [];
                }

                list.Add(new GpuReading(gpu.GpuIndex, gpu.GpuUuid, gpu.MemoryUsedMib, gpu.MemoryTotalMib, gpu.UtilizationPercent,
                    gpu.TemperatureC, gpu.PowerDrawW, gpu.XidErrors, gpu.EccErrors));
            }
        }

        var readings = samples.Select(s => new TelemetryReading(s.At, s.CpuPercent, s.Load1, s.MemoryUsedBytes, s.MemoryTotalBytes,
            s.DiskUsedBytes, s.DiskTotalBytes, gpus.TryGetValue(s.At, out var list) ? list : [])).ToList();
        return new TelemetryResponse(machineId, Raw, from, to, truncated, nextFrom, readings, null);
    }

    private static async Task<TelemetryResponse> ReadHoursAsync(SluiceDbContext db, string machineId, DateTimeOffset from, DateTimeOffset to, int max, CancellationToken cancellationToken)
    {
        var hours = await db.Set<MachineTelemetryHour>().AsNoTracking()
            .Where(h => h.MachineId == machineId && h.Hour >= from && h.Hour < to)
            .OrderBy(h => h.Hour).Take(max + 1).ToListAsync(cancellationToken);
        var truncated = hours.Count > max;
        DateTimeOffset? nextFrom = truncated ? hours[max].Hour : null;
        if (truncated)
        {
            hours.RemoveAt(max);
        }

        var gpus = new Dictionary<DateTimeOffset, List<GpuHour>>();
        if (hours.Count > 0)
        {
            var last = hours[^1].Hour;
            foreach (var g in await db.Set<GpuTelemetryHour>().AsNoTracking()
                .Where(g => g.MachineId == machineId && g.Hour >= from && g.Hour <= last)
                .OrderBy(g => g.Hour).ThenBy(g => g.GpuIndex).ToListAsync(cancellationToken))
            {
                if (!gpus.TryGetValue(g.Hour, out var list))
                {
                    gpus[g.Hour] = list = [];
                }

                list.Add(new GpuHour(g.GpuIndex, g.Samples, new(g.MemoryUsedMibMin, g.MemoryUsedMibAvg, g.MemoryUsedMibMax), g.MemoryTotalMib,
                    new(g.UtilizationPercentMin, g.UtilizationPercentAvg, g.UtilizationPercentMax),
                    new(g.TemperatureCMin, g.TemperatureCAvg, g.TemperatureCMax),
                    new(g.PowerDrawWMin, g.PowerDrawWAvg, g.PowerDrawWMax), g.XidErrorsMax, g.EccErrorsMax));
            }
        }

        var readings = hours.Select(h => new TelemetryHour(h.Hour, h.Samples,
            new(h.CpuPercentMin, h.CpuPercentAvg, h.CpuPercentMax), new(h.Load1Min, h.Load1Avg, h.Load1Max),
            new(h.MemoryUsedBytesMin, h.MemoryUsedBytesAvg, h.MemoryUsedBytesMax), h.MemoryTotalBytes,
            new(h.DiskUsedBytesMin, h.DiskUsedBytesAvg, h.DiskUsedBytesMax), h.DiskTotalBytes,
            gpus.TryGetValue(h.Hour, out var list) ? list : [])).ToList();
        return new TelemetryResponse(machineId, HourResolution, from, to, truncated, nextFrom, null, readings);
    }
}
