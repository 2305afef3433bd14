using System.Globalization;
using System.Text;
using Microsoft.AspNetCore.Mvc;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using Sluice.Billing;
using Sluice.Hosting;
using Sluice.Identity;

namespace Sluice.WebConsole.Pages.Orgs;

/// <summary>
/// Usage of one organization: charts and tables by day, model and key, totals, a CSV export (one row per day × model ×
/// key) and the request log (metadata only, 50 a page, newest first). Everyone in the organization may open it; cost
/// is shown only to roles that may read billing (as the <c>/api</c> usage report requires), everyone else sees
/// requests, tokens and latency.
/// </summary>
[OrgPermission(OrgAccess.OrgRead)]
public sealed class UsageModel(UsageInsights insights, IOptions<BillingOptions> billing, TimeProvider time) : OrgPage
{
    public override string Title => "Usage";

    [BindProperty(SupportsGet = true)]
    public string? From { get; set; }

    [BindProperty(SupportsGet = true)]
    public string? To { get; set; }

    [BindProperty(SupportsGet = true)]
    public string? Model { get; set; }

    [BindProperty(SupportsGet = true)]
    public string? Key { get; set; }

    [BindProperty(SupportsGet = true)]
    public string? Status { get; set; }

    [BindProperty(SupportsGet = true)]
    public string? Before { get; set; }

    /// <summary>The filter as read (null when the input was refused: the page then shows the errors and no figures).</summary>
    public UsageFilter? Filter { get; private set; }

    public UsageBreakdown? Breakdown { get; private set; }

    public RequestLogPage? Log { get; private set; }

    /// <summary>The organization's keys (revoked ones too: their past requests are still usage), by id.</summary>
    public IReadOnlyDictionary<Guid, KeyLabel> Keys { get; private set; } = new Dictionary<Guid, KeyLabel>();

    public string Currency => billing.Value.Currency;

    public bool SeesMoney => Can(OrgAccess.BillingRead);

    public string Money(long micros) => ConsoleFormat.Money(micros, Currency);

    public string KeyName(Guid? keyId) => keyId is { } id ? Keys.TryGetValue(id, out var key) ? key.Display : "(deleted key)" : "(no key)";

    public string KeyName(string group) => Guid.TryParse(group, out var id) ? KeyName(id) : KeyName((Guid?)null);

    public async Task<IActionResult> OnGetAsync()
    {
        if (await ReadAsync())
        {
            var ct = HttpContext.RequestAborted;
            Breakdown = await insights.BreakdownAsync(OrgId, Filter!, ct);
            Log = await insights.LogAsync(OrgId, Filter!, BeforeCursor, ct);
        }

        return Page();
    }

    /// <summary>The breakdown as CSV, one row per day × model × key, same filters; numbers plain (micro-units for cost).</summary>
    public async Task<IActionResult> OnGetCsvAsync()
    {
        if (!await ReadAsync())
        {
            return Page();
        }

        var breakdown = await insights.BreakdownAsync(OrgId, Filter!, HttpContext.RequestAborted);
        var csv = new StringBuilder();
        csv.Append("day,model,key_id,key_name,requests,errors,prompt_tokens,completion_tokens");
        csv.Append(SeesMoney ? ",cost_micros,currency\n" : "\n");
        foreach (var cell in breakdown.Cells)
        {
            csv.Append(CultureInfo.InvariantCulture, $"{ConsoleFormat.Day(cell.Day)},{Csv.Field(cell.Model)},{cell.KeyId},{Csv.Field(cell.KeyId is null ? "" : KeyName(cell.KeyId))},");
            csv.Append(CultureInfo.InvariantCulture, $"{cell.Requests},{cell.Errors},{cell.PromptTokens},{cell.CompletionTokens}");
            csv.Append(SeesMoney ? string.Create(CultureInfo.InvariantCulture, $",{cell.CostMicros},{Currency}\n") : "\n");
        }

        var name = $"usage-{ConsoleFormat.Day(Filter!.From)}-to-{ConsoleFormat.Day(Filter.To)}.csv";
        return File(Encoding.UTF8.GetBytes(csv.ToString()), "text/csv; charset=utf-8", name);
    }

    private DateTimeOffset? BeforeCursor { get; set; }

    /// <summary>Reads the filters; false (with errors beside the fields) when they cannot be used.</summary>
    private async Task<bool> ReadAsync()
    {
        var ct = HttpContext.RequestAborted;
        Keys = await Db.ApiKeys.AsNoTracking().Where(k => k.OrganizationId == OrgId)
            .Select(k => new { k.Id, k.Name, k.Prefix, k.RevokedAt }).ToDictionaryAsync(k => k.Id, k => new KeyLabel(k.Name, k.Prefix, k.RevokedAt != null), ct);
        UsageFilter? filter = null;
        if (!await TryAsync(() =>
            {
                filter = UsageFilter.Parse(From, To, Model, Key, Status, time.GetUtcNow());
                return Task.CompletedTask;
            }))
        {
            return false;
        }

        if (filter!.KeyId is { } keyId && !Keys.ContainsKey(keyId))
        {
            ModelState.AddModelError(nameof(Key), "is not a key of this organization");
            return false;
        }

        if (!string.IsNullOrWhiteSpace(Before))
        {
            if (!DateTimeOffset.TryParse(Before, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal | DateTimeStyles.AdjustToUniversal, out var before))
            {
                ModelState.AddModelError(string.Empty, "The page link is malformed; start again from the newest requests.");
                return false;
            }

            BeforeCursor = before;
        }

        Filter = filter;
        From = ConsoleFormat.Day(filter.From);
        To = ConsoleFormat.Day(filter.To);
        return true;
    }

    /// <summary>The query string of this view with other values (null removes one): for the CSV link and the pager.</summary>
    public string Link(string? handler = null, string? before = null)
    {
        var query = new List<string>();
        void Add(string name, string? value)
        {
            if (!string.IsNullOrWhiteSpace(value))
            {
                query.Add($"{name}={Uri.EscapeDataString(value)}");
            }
        }

        Add("handler", handler);
        Add("From", From);
        Add("To", To);
        Add("Model", Model);
        Add("Key", Key);
        Add("Status", Status);
        Add("before", before);
        return OrgPath("/usage") + (query.Count == 0 ? "" : "?" + string.Join('&', query));
    }

    public static string Cursor(DateTimeOffset at) => at.UtcDateTime.ToString("yyyy-MM-ddTHH:mm:ss.ffffffZ", CultureInfo.InvariantCulture);

    public UsageChart DayChart => new("Requests per day",
        [.. Breakdown!.ByDay.Select(d => new ChartBar(d.Group[5..], d.Requests, $"{d.Group}: {ConsoleFormat.Count(d.Requests)} requests, {ConsoleFormat.Count(d.Errors)} errors"))]);

    public UsageChart SpendChart => new("Spend per day",
        [.. Breakdown!.ByDay.Select(d => new ChartBar(d.Group[5..], d.CostMicros, $"{d.Group}: {Money(d.CostMicros)}"))], Alt: true);

    public UsageChart ModelChart => new("Requests by model",
        [.. Breakdown!.ByModel.Select(m => new ChartBar(m.Group, m.Requests, $"{m.Group}: {ConsoleFormat.Count(m.Requests)} requests"))], Horizontal: true);

    public UsageChart KeyChart => new("Requests by key",
        [.. Breakdown!.ByKey.Select(k => new ChartBar(KeyName(k.Group), k.Requests, $"{KeyName(k.Group)}: {ConsoleFormat.Count(k.Requests)} requests"))], Alt: true, Horizontal: true);
}

/// <summary>How a key is named on the usage page: its name and the start of its secret that identifies it.</summary>
public sealed record KeyLabel(string Name, string Prefix, bool Revoked)
{
    public string Display => $"{Name} ({Prefix}…){(Revoked ? " (revoked)" : "")}";
}
