using System.Globalization;
using Microsoft.EntityFrameworkCore;
using Sluice.Gateway;
using Sluice.Hosting;
using Sluice.Storage;

namespace Sluice.Billing;

/// <summary>Which requests a usage view covers: whole UTC days from <see cref="From"/> to <see cref="To"/> (both included) and optional filters.</summary>
public sealed record UsageFilter(DateOnly From, DateOnly To, string? Model, Guid? KeyId, string? Status)
{
    public const int MaxDays = 366;

    public DateTimeOffset Start => new(From.ToDateTime(TimeOnly.MinValue), TimeSpan.Zero);

    /// <summary>The end of the last day (exclusive).</summary>
    public DateTimeOffset End => new(To.AddDays(1).ToDateTime(TimeOnly.MinValue), TimeSpan.Zero);

    public int Days => To.DayNumber - From.DayNumber + 1;

    /// <summary>
    /// Reads filters as typed (dates as <c>yyyy-MM-dd</c>; status <c>ok</c> or <c>errors</c>; a key id); blank means the
    /// default (the last 30 days, everything). Refuses what it cannot read with field errors named after the fields.
    /// </summary>
    public static UsageFilter Parse(string? from, string? to, string? model, string? key, string? status, DateTimeOffset now)
    {
        var errors = new FieldErrors();
        var today = DateOnly.FromDateTime(now.UtcDateTime);
        var end = today;
        if (!string.IsNullOrWhiteSpace(to))
        {
            if (DateOnly.TryParseExact(to.Trim(), "yyyy-MM-dd", CultureInfo.InvariantCulture, DateTimeStyles.None, out var typed) && Plausible(typed))
            {
                end = typed;
            }
            else
            {
                errors.Add("to", "must be a date like 2026-11-28");
            }
        }

        var start = end.AddDays(-29);
        if (!string.IsNullOrWhiteSpace(from) && !(DateOnly.TryParseExact(from.Trim(), "yyyy-MM-dd", CultureInfo.InvariantCulture, DateTimeStyles.None, out start) && Plausible(start)))
        {
            errors.Add("from", "must be a date like 2026-11-01");
        }
        else if (start > end)
        {
            errors.Add("from", "must be on or before the end date");
        }
        else if (end.DayNumber - start.DayNumber + 1 > MaxDays)
        {
            errors.Add("from", $"the range may cover at most {MaxDays} days");
        }

        Guid? keyId = null;
        if (!string.IsNullOrWhiteSpace(key))
        {
            if (Guid.TryParse(key.Trim(), out var id))
            {
                keyId = id;
            }
            else
            {
                errors.Add("key", "is not a key of this organization");
            }
        }

        var trimmedModel = string.IsNullOrWhiteSpace(model) ? null : model.Trim();
        if (trimmedModel is { Length: > 200 })
        {
            errors.Add("model", "is at most 200 characters");
        }

        var statusClass = string.IsNullOrWhiteSpace(status) ? null : status.Trim().ToLowerInvariant();
        if (statusClass is not (null or "ok" or "errors"))
        {
            errors.Add("status", "must be ok or errors");
        }

        errors.ThrowIfAny();
        return new UsageFilter(start, end, trimmedModel, keyId, statusClass);

        // Far enough from DateOnly's limits that a range's arithmetic never overflows.
        static bool Plausible(DateOnly day) => day.Year is >= 1970 and <= 9000;
    }
}

/// <summary>Requests, tokens and cost of one day, model and key.</summary>
public sealed record UsageCell(DateOnly Day, string Model, Guid? KeyId, long Requests, long Errors, long PromptTokens, long CompletionTokens, long CostMicros);

/// <summary>A group's figures (a day, a model, a key or everything).</summary>
public sealed record UsageTotals(string Group, long Requests, long Errors, long PromptTokens, long CompletionTokens, long CostMicros)
{
    public static UsageTotals Of(string group, IEnumerable<UsageCell> cells)
    {
        long requests = 0, errors = 0, prompt = 0, completion = 0, cost = 0;
        foreach (var cell in cells)
        {
            requests += cell.Requests;
            errors += cell.Errors;
            prompt += cell.PromptTokens;
            completion += cell.CompletionTokens;
            cost += cell.CostMicros;
        }

        return new UsageTotals(group, requests, errors, prompt, completion, cost);
    }
}

/// <summary>Usage over a filter: one cell per day × model × key, and the same figures by day (every day, empty ones too), model and key.</summary>
public sealed record UsageBreakdown(UsageFilter Filter, IReadOnlyList<UsageCell> Cells, IReadOnlyList<UsageTotals> ByDay, IReadOnlyList<UsageTotals> ByModel,
    IReadOnlyList<UsageTotals> ByKey, UsageTotals Totals);

/// <summary>One request's metadata (never content).</summary>
public sealed record RequestLogEntry(Guid Id, DateTimeOffset StartedAt, string RequestId, string Endpoint, string? Model, Guid? KeyId, int Status, string? ErrorType,
    bool Stream, long PromptTokens, long CompletionTokens, long LatencyMicros, long CostMicros);

/// <summary>A page of the request log, newest first; <see cref="NextBefore"/> is the cursor of the next (older) page.</summary>
public sealed record RequestLogPage(IReadOnlyList<RequestLogEntry> Entries, DateTimeOffset? NextBefore);

/// <summary>An organization's last days at a glance.</summary>
public sealed record UsageOverview(long RequestsLast7Days, long ErrorsLast7Days, double? P50Millis, double? P95Millis, long SpendTodayMicros,
    long SpendLast7DaysMicros, IReadOnlyList<UsageTotals> Last7Days, bool AnyRequestEver, bool AnyActiveKey, int ActiveHolds)
{
    public double? ErrorRate => RequestsLast7Days == 0 ? null : (double)ErrorsLast7Days / RequestsLast7Days;
}

/// <summary>
/// What the console shows of an organization's usage (metadata only): an overview of the last 7 days, a breakdown by day,
/// model and key, and the request log. Aggregation happens in the database, one grouped query per day on the
/// <c>(organization_id, started_at)</c> index, so no range loads its events into memory.
/// </summary>
public sealed class UsageInsights(SluiceDbContext db, TimeProvider time)
{
    public const int LogPageSize = 50;

    public async Task<UsageBreakdown> BreakdownAsync(Guid orgId, UsageFilter filter, CancellationToken ct)
    {
        var cells = new List<UsageCell>();
        for (var day = filter.From; day <= filter.To; day = day.AddDays(1))
        {
            var start = new DateTimeOffset(day.ToDateTime(TimeOnly.MinValue), TimeSpan.Zero);
            var rows = await Filtered(orgId, filter, start, start.AddDays(1))
                .GroupBy(e => new { e.Model, e.KeyId })
                .Select(g => new
                {
                    g.Key.Model,
                    g.Key.KeyId,
                    Requests = g.LongCount(),
                    Errors = g.Sum(e => e.Status >= 400 ? 1L : 0L),
                    Prompt = g.Sum(e => e.PromptTokens),
                    Completion = g.Sum(e => e.CompletionTokens),
                    Cost = g.Sum(e => e.CostMicros),
                })
                .ToListAsync(ct);
            cells.AddRange(rows.Select(r => new UsageCell(day, r.Model ?? "(unknown model)", r.KeyId, r.Requests, r.Errors, r.Prompt, r.Completion, r.Cost))
                .OrderBy(c => c.Model, StringComparer.Ordinal).ThenBy(c => c.KeyId));
        }

        var byDay = Enumerable.Range(0, filter.Days).Select(i => filter.From.AddDays(i))
            .Select(d => UsageTotals.Of(d.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture), cells.Where(c => c.Day == d))).ToList();
        var byModel = cells.GroupBy(c => c.Model).Select(g => UsageTotals.Of(g.Key, g)).OrderByDescending(t => t.Requests).ThenBy(t => t.Group, StringComparer.Ordinal).ToList();
        var byKey = cells.GroupBy(c => c.KeyId?.ToString() ?? "").Select(g => UsageTotals.Of(g.Key, g)).OrderByDescending(t => t.Requests).ThenBy(t => t.Group, StringComparer.Ordinal).ToList();
        return new UsageBreakdown(filter, cells, byDay, byModel, byKey, UsageTotals.Of("total", cells));
    }

    /// <summary>Requests matching the filter, newest first, <see cref="LogPageSize"/> a page, older than <paramref name="before"/>.</summary>
    public async Task<RequestLogPage> LogAsync(Guid orgId, UsageFilter filter, DateTimeOffset? before, CancellationToken ct)
    {
        var end = before is { } cursor && cursor < filter.End ? cursor : filter.End;
        var rows = await Filtered(orgId, filter, filter.Start, end)
            .OrderByDescending(e => e.StartedAt).ThenByDescending(e => e.Id)
            .Take(LogPageSize + 1)
            .Select(e => new RequestLogEntry(e.Id, e.StartedAt, e.RequestId, e.Endpoint, e.Model, e.KeyId, e.Status, e.ErrorType, e.Stream,
                e.PromptTokens, e.CompletionTokens, e.LatencyMicros, e.CostMicros))
            .ToListAsync(ct);
        var page = rows.Take(LogPageSize).ToList();
        return new RequestLogPage(page, rows.Count > LogPageSize ? page[^1].StartedAt : null);
    }

    /// <summary>The last 7 UTC days (today included): requests, errors, latency percentiles and spend, and whether the org has started.</summary>
    public async Task<UsageOverview> OverviewAsync(Guid orgId, CancellationToken ct)
    {
        var now = time.GetUtcNow();
        var today = DateOnly.FromDateTime(now.UtcDateTime);
        var week = await BreakdownAsync(orgId, new UsageFilter(today.AddDays(-6), today, null, null, null), ct);
        var start = week.Filter.Start;
        var end = week.Filter.End;
        var p50 = await PercentileAsync(orgId, start, end, week.Totals.Requests, 0.50, ct);
        var p95 = await PercentileAsync(orgId, start, end, week.Totals.Requests, 0.95, ct);
        var anyRequest = week.Totals.Requests > 0 || await db.UsageEvents.AnyAsync(e => e.OrganizationId == orgId, ct);
        var anyKey = await db.ApiKeys.AnyAsync(k => k.OrganizationId == orgId && k.RevokedAt == null && (k.ExpiresAt == null || k.ExpiresAt > now), ct);
        var holds = await db.WalletLeases.CountAsync(l => l.OrganizationId == orgId && l.KeyId == null && !l.Released && l.ExpiresAt > now, ct);
        return new UsageOverview(week.Totals.Requests, week.Totals.Errors, p50, p95, week.ByDay[^1].CostMicros, week.Totals.CostMicros, week.ByDay,
            anyRequest, anyKey, holds);
    }

    /// <summary>The nearest-rank percentile of latency in milliseconds (the smallest value with at least p of requests at or below it).</summary>
    private async Task<double?> PercentileAsync(Guid orgId, DateTimeOffset start, DateTimeOffset end, long count, double p, CancellationToken ct)
    {
        if (count == 0)
        {
            return null;
        }

        var rank = (int)Math.Max(0, Math.Ceiling(p * count) - 1);
        var micros = await db.UsageEvents.AsNoTracking()
            .Where(e => e.OrganizationId == orgId && e.StartedAt >= start && e.StartedAt < end)
            .OrderBy(e => e.LatencyMicros).Skip(rank).Select(e => e.LatencyMicros).FirstOrDefaultAsync(ct);
        return micros / 1000.0;
    }

    private IQueryable<UsageEvent> Filtered(Guid orgId, UsageFilter filter, DateTimeOffset start, DateTimeOffset end)
    {
        var query = db.UsageEvents.AsNoTracking().Where(e => e.OrganizationId == orgId && e.StartedAt >= start && e.StartedAt < end);
        if (filter.Model is { } model)
        {
            query = query.Where(e => e.Model == model);
        }

        if (filter.KeyId is { } keyId)
        {
            query = query.Where(e => e.KeyId == keyId);
        }

        return filter.Status switch
        {
            "ok" => query.Where(e => e.Status < 400),
            "errors" => query.Where(e => e.Status >= 400),
            _ => query,
        };
    }
}
