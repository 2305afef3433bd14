using System.Globalization;
using Microsoft.EntityFrameworkCore;
using Sluice.Audit;
using Sluice.Hosting;
using Sluice.Storage;

namespace Sluice.Deployments.Billing;

public sealed record SetGpuPriceRequest(string? GpuType, decimal? PerGpuHourMicros, DateTimeOffset? EffectiveFrom);

public sealed record GpuPriceResponse(Guid Id, string GpuType, long PerGpuHourMicros, DateTimeOffset EffectiveFrom, bool Current);

/// <summary>Prices per GPU-hour by GPU type, versioned by effective time like route prices (never in the past).</summary>
public sealed class GpuPrices(SluiceDbContext db, AuditLog audit, TimeProvider time)
{
    public const int MaxGpuTypeLength = 100;

    /// <summary>Ten thousand currency units per GPU-hour: anything above is a typo.</summary>
    public const long MaxPerGpuHourMicros = 10_000_000_000;

    public async Task<GpuPriceResponse> SetAsync(SetGpuPriceRequest request, CancellationToken ct)
    {
        var errors = new FieldErrors();
        var gpuType = request.GpuType?.Trim();
        if (string.IsNullOrEmpty(gpuType) || gpuType.Length > MaxGpuTypeLength || gpuType.Any(char.IsControl))
        {
            errors.Add("gpuType", $"is required: the GPU model as nvidia-smi names it (\"NVIDIA L4\"), at most {MaxGpuTypeLength} characters");
        }

        if (request.PerGpuHourMicros is not { } perHour)
        {
            errors.Add("perGpuHourMicros", "is required (micro-units per GPU per hour)");
        }
        else if (perHour < 0 || perHour != decimal.Truncate(perHour) || perHour > MaxPerGpuHourMicros)
        {
            errors.Add("perGpuHourMicros", $"must be a whole number of micro-units from 0 to {MaxPerGpuHourMicros.ToString(CultureInfo.InvariantCulture)}");
        }

        var now = time.GetUtcNow();
        if (request.EffectiveFrom is { } from && from < now.AddMinutes(-1))
        {
            errors.Add("effectiveFrom", "cannot be in the past: GPU time already charged does not change price");
        }

        errors.ThrowIfAny();
        var price = new GpuPrice
        {
            Id = Guid.CreateVersion7(now),
            GpuType = gpuType!,
            PerGpuHourMicros = (long)request.PerGpuHourMicros!.Value,
            EffectiveFrom = (request.EffectiveFrom is { } f && f > now ? f : now).ToUniversalTime(),
            CreatedAt = now,
        };
        db.Set<GpuPrice>().Add(price);
        audit.Record("gpu_price.set", $"gpu_price:{price.Id} {price.PerGpuHourMicros.ToString(CultureInfo.InvariantCulture)}/h from {price.EffectiveFrom.UtcDateTime:yyyy-MM-ddTHH:mm:ssZ} {price.GpuType}");
        await db.SaveChangesAsync(ct);
        return (await ListAsync(price.GpuType, ct)).Single(p => p.Id == price.Id);
    }

    /// <summary>Every price version, by GPU type then newest first, marking the one in force now for each type.</summary>
    public async Task<IReadOnlyList<GpuPriceResponse>> ListAsync(string? gpuType, CancellationToken ct)
    {
        var now = time.GetUtcNow();
        var prices = await db.Set<GpuPrice>().AsNoTracking().Where(p => gpuType == null || p.GpuType == gpuType).ToListAsync(ct);
        var current = prices.Where(p => p.EffectiveFrom <= now).GroupBy(p => p.GpuType, StringComparer.Ordinal)
            .Select(g => g.OrderByDescending(p => p.EffectiveFrom).ThenByDescending(p => p.CreatedAt).First().Id).ToHashSet();
        return prices.OrderBy(p => p.GpuType, StringComparer.Ordinal).ThenByDescending(p => p.EffectiveFrom).ThenByDescending(p => p.CreatedAt)
            .Select(p => new GpuPriceResponse(p.Id, p.GpuType, p.PerGpuHourMicros, p.EffectiveFrom, current.Contains(p.Id)))
            .ToList();
    }

    /// <summary>The price per GPU-hour in force at <paramref name="at"/> for each GPU type that has one.</summary>
    public static Dictionary<string, long> InForce(IEnumerable<GpuPrice> prices, DateTimeOffset at) =>
        prices.Where(p => p.EffectiveFrom <= at).GroupBy(p => p.GpuType, StringComparer.Ordinal)
            .ToDictionary(g => g.Key, g => g.OrderByDescending(p => p.EffectiveFrom).ThenByDescending(p => p.CreatedAt).First().PerGpuHourMicros, StringComparer.Ordinal);
}
