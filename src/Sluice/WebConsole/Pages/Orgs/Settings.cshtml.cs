using Microsoft.AspNetCore.Mvc;
using Sluice.Identity;

namespace Sluice.WebConsole.Pages.Orgs;

/// <summary>The organization's name, billing email and data policy; changed through the same service (and audited the same way) as PATCH /api/v1/orgs/{id}.</summary>
[OrgPermission(OrgAccess.OrgWrite)]
public sealed class SettingsModel : OrgPage
{
    public override string Title => "Settings";

    [BindProperty]
    public string? Name { get; set; }

    [BindProperty]
    public string? BillingEmail { get; set; }

    [BindProperty]
    public bool RequireZeroRetention { get; set; }

    [BindProperty]
    public bool RequireNoTraining { get; set; }

    [BindProperty]
    public bool UsageCostInResponses { get; set; }

    [BindProperty(SupportsGet = true)]
    public string? Done { get; set; }

    public async Task OnGetAsync([FromServices] OrganizationService organizations)
    {
        var organization = await organizations.GetAsync(OrgId, HttpContext.RequestAborted);
        Name = organization.Name;
        BillingEmail = organization.BillingEmail;
        RequireZeroRetention = organization.RequireZeroRetention;
        RequireNoTraining = organization.RequireNoTraining;
        UsageCostInResponses = organization.UsageCostInResponses;
        Notice = Done == "saved" ? "Settings saved." : null;
    }

    public async Task<IActionResult> OnPostAsync([FromServices] OrganizationService organizations)
    {
        if (!Can(OrgAccess.OrgWrite))
        {
            return Denied();
        }

        // An empty name is sent as such, so the service says it is required; an empty billing email removes it.
        var request = new UpdateOrganizationRequest(Name ?? string.Empty, BillingEmail?.Trim() ?? string.Empty, RequireZeroRetention, RequireNoTraining, UsageCostInResponses);
        if (!await TryAsync(() => organizations.UpdateAsync(OrgId, request, HttpContext.RequestAborted)))
        {
            return Page();
        }

        return Redirect(OrgPath("/settings?done=saved"));
    }
}
