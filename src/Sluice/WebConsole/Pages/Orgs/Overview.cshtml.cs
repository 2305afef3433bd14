using Microsoft.Extensions.Options;
using Sluice.Billing;
using Sluice.Identity;

namespace Sluice.WebConsole.Pages.Orgs;

/// <summary>
/// The organization's front page: the last 7 days' requests, error rate and latency for everyone in it; the wallet,
/// spend and holds only for roles that may read billing (as <c>/api/v1/orgs/{id}/wallet</c> and <c>/usage</c> require).
/// </summary>
[OrgPermission(OrgAccess.OrgRead)]
public sealed class OverviewModel(UsageInsights insights, WalletService wallets, IOptions<BillingOptions> billing) : OrgPage
{
    public override string Title => "Overview";

    public UsageOverview Usage { get; private set; } = null!;

    /// <summary>The wallet, or null for roles without billing access.</summary>
    public WalletResponse? Wallet { get; private set; }

    public string Currency => billing.Value.Currency;

    public bool SeesMoney => Can(OrgAccess.BillingRead);

    public string Money(long micros) => ConsoleFormat.Money(micros, Currency);

    public async Task OnGetAsync()
    {
        var ct = HttpContext.RequestAborted;
        Usage = await insights.OverviewAsync(OrgId, ct);
        if (SeesMoney)
        {
            Wallet = await wallets.WalletAsync(OrgId, null, 1, ct);
        }
    }

    public UsageChart RequestsChart => new("Requests per day, last 7 days",
        [.. Usage.Last7Days.Select(d => new ChartBar(d.Group[5..], d.Requests, $"{d.Group}: {ConsoleFormat.Count(d.Requests)} requests"))]);

    public UsageChart SpendChart => new("Spend per day, last 7 days",
        [.. Usage.Last7Days.Select(d => new ChartBar(d.Group[5..], d.CostMicros, $"{d.Group}: {Money(d.CostMicros)}"))], Alt: true);
}
