using Microsoft.AspNetCore.Mvc;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using Sluice.Billing;
using Sluice.Hosting;
using Sluice.Identity;

namespace Sluice.WebConsole.Pages.Admin;

/// <summary>
/// Every organization on the platform: when it was created, how many members it has, its balance and its rate limits.
/// An operator sets the limits (<see cref="OrganizationService.SetLimitsAsync"/>) and grants credit with a reason
/// (<see cref="WalletService.CreditAsync"/>, audited); one organization's forms open with <c>?org=id</c>.
/// </summary>
public sealed class OrgsModel(OrganizationService organizations, WalletService wallets, IOptions<BillingOptions> billing) : OperatorPage
{
    public override string Title => "Organizations";

    public string Currency => billing.Value.Currency;

    public IReadOnlyList<OrgRow> Rows { get; private set; } = [];

    /// <summary>The organization whose forms are open (<c>?org=id</c>), or null.</summary>
    public OrgRow? Selected { get; private set; }

    [BindProperty]
    public int? RequestsPerMinute { get; set; }

    [BindProperty]
    public int? TokensPerMinute { get; set; }

    [BindProperty]
    public decimal? Amount { get; set; }

    [BindProperty]
    public string? Reason { get; set; }

    [BindProperty]
    public bool Promotional { get; set; }

    /// <summary>Makes a credit form post at most one credit, even if it reached the server twice.</summary>
    [BindProperty]
    public string? CreditKey { get; set; }

    public async Task OnGetAsync(Guid? org, string? done)
    {
        Notice = done switch
        {
            "limits" => "Limits saved.",
            "credit" => "Credit granted.",
            _ => null,
        };
        await LoadAsync(org);
        RequestsPerMinute = Selected?.Organization.RequestsPerMinute;
        TokensPerMinute = Selected?.Organization.TokensPerMinute;
        CreditKey = Guid.NewGuid().ToString("N");
    }

    public async Task<IActionResult> OnPostLimitsAsync(Guid orgId)
    {
        if (!await TryAsync(() => organizations.SetLimitsAsync(orgId, new OrganizationLimitsRequest(RequestsPerMinute, TokensPerMinute), HttpContext.RequestAborted)))
        {
            await LoadAsync(orgId);
            return Page();
        }

        return Redirect($"/admin/orgs?org={orgId}&done=limits");
    }

    public async Task<IActionResult> OnPostCreditAsync(Guid orgId)
    {
        if (!await TryAsync(() => wallets.CreditAsync(orgId,
                new CreditRequest(Amount * 1_000_000m, Currency, Reason, $"console-credit:{CreditKey}", Promotional), HttpContext.RequestAborted)))
        {
            AdminForms.Remap(ModelState, ("amountMicros", nameof(Amount)), ("currency", nameof(Amount)));
            await LoadAsync(orgId);
            return Page();
        }

        return Redirect($"/admin/orgs?org={orgId}&done=credit");
    }

    private async Task LoadAsync(Guid? selected)
    {
        var all = await organizations.ListAllAsync(HttpContext.RequestAborted);
        var members = await Db.Memberships.AsNoTracking().GroupBy(m => m.OrganizationId)
            .Select(g => new { g.Key, Count = g.Count() }).ToDictionaryAsync(g => g.Key, g => g.Count, HttpContext.RequestAborted);
        var rows = new List<OrgRow>(all.Count);
        foreach (var organization in all)
        {
            var wallet = await wallets.WalletAsync(organization.Id, null, 1, HttpContext.RequestAborted);
            rows.Add(new OrgRow(organization, members.GetValueOrDefault(organization.Id), wallet.BalanceMicros, wallet.HeldMicros));
        }

        Rows = rows;
        Selected = selected is { } id ? rows.FirstOrDefault(r => r.Organization.Id == id) : null;
        if (selected is not null && Selected is null)
        {
            throw ApiProblem.NotFound("organization");
        }
    }
}

/// <summary>One organization as operators see it in the list.</summary>
public sealed record OrgRow(OrganizationResponse Organization, int Members, long BalanceMicros, long HeldMicros);
