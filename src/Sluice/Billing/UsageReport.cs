using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using Sluice.Hosting;
using Sluice.Storage;

namespace Sluice.Billing;

public sealed record UsageRow(string Group, long Requests, long Errors, long PromptTokens, long CompletionTokens, long CachedTokens, long CostMicros);

public sealed record UsageReportResponse(Guid OrganizationId, DateTimeOffset From, DateTimeOffset To, string GroupBy, string Currency, IReadOnlyList<UsageRow> Rows, UsageRow Totals);

/// <summary>An organization's usage and spend over a date range, grouped by day, model or key (metadata only).</summary>
public sealed class UsageReport(SluiceDbContext db, IOptions<BillingOptions> options, TimeProvider time)
{
    private static readonly TimeSpan MaxRange = TimeSpan.FromDays(366);

    public async Task<UsageReportResponse> ReportAsync(Guid orgId, DateTimeOffset? from, DateTimeOffset? to, string? groupBy, CancellationToken ct)
    {
        var end = to ?? time.GetUtcNow();
        var start = from ?? end.AddDays(-30);
        var group = groupBy ?? "day";
        var errors = new FieldErrors();
        if (group is not ("day" or "model" or "key"))
        {
            errors.Add("groupBy", "must be day, model or key");
        }

        if (start >= end || end - start > MaxRange)
        {
            errors.Add("from", "must be before 'to', at most 366 days apart");
        }

        errors.ThrowIfAny();
        var events = await db.UsageEvents.AsNoTracking()
            .Where(e => e.OrganizationId == orgId && e.StartedAt >= start && e.StartedAt < end)
            .Select(e => new { e.StartedAt, e.Model, e.KeyId, e.Status, e.PromptTokens, e.CompletionTokens, e.CachedTokens, e.CostMicros })
            .ToListAsync(ct);
        var rows = events
            .GroupBy(e => group switch
            {
                "model" => e.Model ?? "(unknown model)",
                "key" => e.KeyId?.ToString() ?? "(no key)",
                _ => e.StartedAt.UtcDateTime.ToString("yyyy-MM-dd", System.Globalization.CultureInfo.InvariantCulture),
            })
            .OrderBy(g => g.Key, StringComparer.Ordinal)
            .Select(g => new UsageRow(g.Key, g.Count(), g.Count(e => e.Status >= 400), g.Sum(e => e.PromptTokens), g.Sum(e => e.CompletionTokens), g.Sum(e => e.CachedTokens), g.Sum(e => e.CostMicros)))
            .ToList();
        var totals = new UsageRow("total", rows.Sum(r => r.Requests), rows.Sum(r => r.Errors), rows.Sum(r => r.PromptTokens), rows.Sum(r => r.CompletionTokens), rows.Sum(r => r.CachedTokens), rows.Sum(r => r.CostMicros));
        return new UsageReportResponse(orgId, start, end, group, options.Value.Currency, rows, totals);
    }
}
