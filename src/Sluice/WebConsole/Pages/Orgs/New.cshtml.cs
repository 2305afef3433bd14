using Microsoft.AspNetCore.Mvc;
using Sluice.Identity;

namespace Sluice.WebConsole.Pages.Orgs;

public sealed class NewOrganizationModel : ConsolePage
{
    public override string Title => "New organization";

    [BindProperty]
    public string? Name { get; set; }

    [BindProperty]
    public string? BillingEmail { get; set; }

    public void OnGet()
    {
    }

    public async Task<IActionResult> OnPostAsync([FromServices] OrganizationService organizations)
    {
        OrganizationResponse? created = null;
        if (!await TryAsync(async () => created = await organizations.CreateAsync(
                new CreateOrganizationRequest(Name, string.IsNullOrWhiteSpace(BillingEmail) ? null : BillingEmail), UserId, HttpContext.RequestAborted)))
        {
            return Page();
        }

        return Redirect($"/orgs/{created!.Id}");
    }
}
