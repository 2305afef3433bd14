using System.Globalization;
using System.Text;
using System.Text.Encodings.Web;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using Sluice.Hosting;
using Sluice.Storage;

namespace Sluice.Billing;

public sealed record StatementLine(DateTimeOffset Time, string Type, string? Reference, long AmountMicros, long BalanceMicros);

public sealed record Statement(
    Guid OrganizationId, string OrganizationName, string Month, string Currency, long OpeningMicros, long ClosingMicros,
    long CreditsMicros, long ChargesMicros, IReadOnlyList<StatementLine> Lines, IReadOnlyList<UsageRow> UsageByModel);

/// <summary>A month of an organization's wallet: opening and closing balance, every movement, and usage by model.</summary>
public sealed class Statements(SluiceDbContext db, UsageReport usage, IOptions<BillingOptions> options)
{
    public async Task<Statement> MonthAsync(Guid orgId, string month, CancellationToken ct)
    {
        if (!DateTime.TryParseExact(month, "yyyy-MM", CultureInfo.InvariantCulture, DateTimeStyles.AdjustToUniversal | DateTimeStyles.AssumeUniversal, out var first))
        {
            throw ApiProblem.Invalid("month", "must be a month as yyyy-MM, e.g. 2026-11");
        }

        var start = new DateTimeOffset(first.Year, first.Month, 1, 0, 0, 0, TimeSpan.Zero);
        var end = start.AddMonths(1);
        var organization = await db.Organizations.AsNoTracking().SingleOrDefaultAsync(o => o.Id == orgId, ct) ?? throw ApiProblem.NotFound("organization");
        var wallet = await db.LedgerAccounts.AsNoTracking()
            .Where(a => a.OrganizationId == orgId && a.Type == AccountTypes.CustomerWallet && a.Currency == options.Value.Currency)
            .Select(a => (Guid?)a.Id).SingleOrDefaultAsync(ct);
        var opening = 0L;
        var lines = new List<StatementLine>();
        if (wallet is { } accountId)
        {
            opening = await db.LedgerEntries.Where(e => e.AccountId == accountId && e.CreatedAt < start).SumAsync(e => e.AmountMicros, ct);
            var entries = await db.LedgerEntries.AsNoTracking()
                .Where(e => e.AccountId == accountId && e.CreatedAt >= start && e.CreatedAt < end)
                .Join(db.LedgerTransactions, e => e.TransactionId, t => t.Id, (e, t) => new { e.CreatedAt, e.Id, t.Type, t.Reference, e.AmountMicros })
                .ToListAsync(ct);
            var running = opening;
            foreach (var entry in entries.OrderBy(e => e.CreatedAt).ThenBy(e => e.Id))
            {
                running += entry.AmountMicros;
                lines.Add(new StatementLine(entry.CreatedAt, entry.Type, entry.Reference, entry.AmountMicros, running));
            }
        }

        var closing = opening + lines.Sum(l => l.AmountMicros);
        var byModel = (await usage.ReportAsync(orgId, start, end, "model", ct)).Rows;
        return new Statement(orgId, organization.Name, month, options.Value.Currency, opening, closing,
            lines.Where(l => l.AmountMicros > 0).Sum(l => l.AmountMicros), -lines.Where(l => l.AmountMicros < 0).Sum(l => l.AmountMicros), lines, byModel);
    }

    /// <summary>The months an organization has statements for, newest first: from its first wallet movement (or this month) to this month.</summary>
    public async Task<IReadOnlyList<string>> MonthsAsync(Guid orgId, DateTimeOffset now, CancellationToken ct)
    {
        Guid? owner = orgId;
        var first = await db.LedgerEntries.AsNoTracking()
            .Join(db.LedgerAccounts.Where(a => a.OrganizationId == owner && a.Type == AccountTypes.CustomerWallet), e => e.AccountId, a => a.Id, (e, a) => e.CreatedAt)
            .OrderBy(t => t).Select(t => (DateTimeOffset?)t).FirstOrDefaultAsync(ct);
        var month = new DateTime(now.UtcDateTime.Year, now.UtcDateTime.Month, 1, 0, 0, 0, DateTimeKind.Utc);
        var earliest = first is { } f ? new DateTime(f.UtcDateTime.Year, f.UtcDateTime.Month, 1, 0, 0, 0, DateTimeKind.Utc) : month;
        var months = new List<string>();
        for (; month >= earliest && months.Count < 120; month = month.AddMonths(-1))
        {
            months.Add(month.ToString("yyyy-MM", CultureInfo.InvariantCulture));
        }

        return months;
    }

    public static string Csv(Statement statement)
    {
        var csv = new StringBuilder("time,type,reference,amount,balance\n");
        foreach (var line in statement.Lines)
        {
            csv.Append(line.Time.UtcDateTime.ToString("yyyy-MM-ddTHH:mm:ssZ", CultureInfo.InvariantCulture)).Append(',')
                .Append(Hosting.Csv.Field(line.Type)).Append(',').Append(Hosting.Csv.Field(line.Reference ?? "")).Append(',')
                .Append(Money(line.AmountMicros)).Append(',').Append(Money(line.BalanceMicros)).Append('\n');
        }

        return csv.ToString();
    }

    public static string Html(Statement statement)
    {
        var html = HtmlEncoder.Default;
        var rows = new StringBuilder();
        foreach (var line in statement.Lines)
        {
            rows.Append("<tr><td>").Append(line.Time.UtcDateTime.ToString("yyyy-MM-dd HH:mm", CultureInfo.InvariantCulture)).Append("</td><td>")
                .Append(html.Encode(line.Type)).Append("</td><td>").Append(html.Encode(line.Reference ?? "")).Append("</td><td class=n>")
                .Append(Money(line.AmountMicros)).Append("</td><td class=n>").Append(Money(line.BalanceMicros)).Append("</td></tr>\n");
        }

        var usage = new StringBuilder();
        foreach (var row in statement.UsageByModel)
        {
            usage.Append("<tr><td>").Append(html.Encode(row.Group)).Append("</td><td class=n>").Append(row.Requests).Append("</td><td class=n>")
                .Append(row.PromptTokens + row.CompletionTokens).Append("</td><td class=n>").Append(Money(row.CostMicros)).Append("</td></tr>\n");
        }

        return $$$"""
            <!doctype html>
            <html lang="en"><head><meta charset="utf-8"><title>Statement {{{statement.Month}}} — {{{html.Encode(statement.OrganizationName)}}}</title>
            <style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;width:100%;margin:1em 0}td,th{border-bottom:1px solid #ccc;padding:.3em;text-align:left}.n{text-align:right}@media print{body{margin:0}}</style></head>
            <body><h1>Statement for {{{statement.Month}}}</h1>
            <p>{{{html.Encode(statement.OrganizationName)}}} · {{{statement.OrganizationId}}} · amounts in {{{statement.Currency}}}</p>
            <p>Opening balance {{{Money(statement.OpeningMicros)}}} · credits {{{Money(statement.CreditsMicros)}}} · charges {{{Money(statement.ChargesMicros)}}} · closing balance {{{Money(statement.ClosingMicros)}}}</p>
            <h2>Wallet movements</h2><table><tr><th>Time (UTC)</th><th>Type</th><th>Reference</th><th class=n>Amount</th><th class=n>Balance</th></tr>
            {{{rows}}}</table>
            <h2>Usage by model</h2><table><tr><th>Model</th><th class=n>Requests</th><th class=n>Tokens</th><th class=n>Cost</th></tr>
            {{{usage}}}</table></body></html>
            """;
    }

    private static string Money(long micros) => (micros / 1_000_000m).ToString("0.000000", CultureInfo.InvariantCulture);
}
