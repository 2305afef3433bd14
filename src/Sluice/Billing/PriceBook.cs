using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using Sluice.Audit;
using Sluice.Gateway;
using Sluice.Hosting;
using Sluice.Storage;

namespace Sluice.Billing;

public sealed record SetPriceRequest(decimal? InputPerMillionMicros, decimal? OutputPerMillionMicros, decimal? CachedInputPerMillionMicros, decimal? RequestFeeMicros, DateTimeOffset? EffectiveFrom);

/// <summary>A route's prices in force, as the hot path holds them in memory.</summary>
public sealed record RoutePricing(long InputPerMillionMicros, long OutputPerMillionMicros, long CachedInputPerMillionMicros, long RequestFeeMicros)
{
    /// <summary>The cost of <paramref name="usage"/> in micro-units, rounded up; <paramref name="discountPercent"/> off the token part.</summary>
    public long Cost(TokenUsage usage, int discountPercent = 0)
    {
        var cached = Math.Min(usage.Cached, usage.Prompt);
        var tokens = ((decimal)(usage.Prompt - cached) * InputPerMillionMicros)
            + ((decimal)cached * CachedInputPerMillionMicros)
            + ((decimal)usage.Completion * OutputPerMillionMicros);
        var tokenCost = tokens / 1_000_000m * (100 - discountPercent) / 100;
        return (long)decimal.Ceiling(tokenCost) + RequestFeeMicros;
    }
}

public sealed record PriceResponse(Guid Id, Guid RouteId, long InputPerMillionMicros, long OutputPerMillionMicros, long CachedInputPerMillionMicros, long RequestFeeMicros, DateTimeOffset EffectiveFrom, bool Current);

/// <summary>Prices per route, versioned by effective time; and what a request costs under them.</summary>
public sealed class PriceBook(SluiceDbContext db, AuditLog audit, IOptions<BillingOptions> options, TimeProvider time)
{
    public async Task<PriceResponse> SetAsync(Guid routeId, SetPriceRequest request, CancellationToken ct)
    {
        var errors = new FieldErrors();
        var input = Micros(request.InputPerMillionMicros, "inputPerMillionMicros", required: true, errors);
        var output = Micros(request.OutputPerMillionMicros, "outputPerMillionMicros", required: true, errors);
        var cached = Micros(request.CachedInputPerMillionMicros, "cachedInputPerMillionMicros", required: false, errors) ?? input;
        var fee = Micros(request.RequestFeeMicros, "requestFeeMicros", required: false, errors) ?? 0;
        var now = time.GetUtcNow();
        if (request.EffectiveFrom is { } from && from < now.AddMinutes(-1))
        {
            errors.Add("effectiveFrom", "cannot be in the past: prices already charged do not change");
        }

        errors.ThrowIfAny();
        if (!await db.ModelRoutes.AnyAsync(r => r.Id == routeId, ct))
        {
            throw ApiProblem.NotFound("route");
        }

        var price = new RoutePrice
        {
            Id = Guid.CreateVersion7(now),
            RouteId = routeId,
            InputPerMillionMicros = input!.Value,
            OutputPerMillionMicros = output!.Value,
            CachedInputPerMillionMicros = cached!.Value,
            RequestFeeMicros = fee,
            EffectiveFrom = (request.EffectiveFrom ?? now).ToUniversalTime(),
            CreatedAt = now,
        };
        db.RoutePrices.Add(price);
        audit.Record("price.set", $"route:{routeId} price:{price.Id} from {price.EffectiveFrom.UtcDateTime:yyyy-MM-ddTHH:mm:ssZ}");
        await db.SaveChangesAsync(ct);
        return (await ListAsync(routeId, ct)).Single(p => p.Id == price.Id);
    }

    /// <summary>Every price version, newest first, marking the one in force now for each route.</summary>
    public async Task<IReadOnlyList<PriceResponse>> ListAsync(Guid? routeId, CancellationToken ct)
    {
        var now = time.GetUtcNow();
        var prices = await db.RoutePrices.AsNoTracking().Where(p => routeId == null || p.RouteId == routeId).ToListAsync(ct);
        var current = prices.Where(p => p.EffectiveFrom <= now).GroupBy(p => p.RouteId)
            .Select(g => g.OrderByDescending(p => p.EffectiveFrom).ThenByDescending(p => p.CreatedAt).First().Id).ToHashSet();
        return prices.OrderBy(p => p.RouteId).ThenByDescending(p => p.EffectiveFrom)
            .Select(p => new PriceResponse(p.Id, p.RouteId, p.InputPerMillionMicros, p.OutputPerMillionMicros, p.CachedInputPerMillionMicros, p.RequestFeeMicros, p.EffectiveFrom, current.Contains(p.Id)))
            .ToList();
    }

    /// <summary>
    /// What <paramref name="usage"/> costs at <paramref name="price"/>, in micro-units, rounded up to the next micro-unit;
    /// batch traffic gets <see cref="BillingOptions.BatchDiscountPercent"/> off the token part.
    /// </summary>
    public long Cost(PriceResponse price, TokenUsage usage, bool batch) =>
        new RoutePricing(price.InputPerMillionMicros, price.OutputPerMillionMicros, price.CachedInputPerMillionMicros, price.RequestFeeMicros)
            .Cost(usage, batch ? options.Value.BatchDiscountPercent : 0);

    private static long? Micros(decimal? value, string field, bool required, FieldErrors errors)
    {
        if (value is null)
        {
            if (required)
            {
                errors.Add(field, "is required (micro-units per million tokens)");
            }

            return null;
        }

        if (value < 0 || value != decimal.Truncate(value.Value) || value > 1_000_000_000_000m)
        {
            errors.Add(field, "must be a whole, non-negative number of micro-units");
            return null;
        }

        return (long)value;
    }
}
