using Sluice.Identity;

namespace Sluice.WebConsole.Pages.Orgs;

/// <summary>The organization's front page.</summary>
[OrgPermission(OrgAccess.OrgRead)]
public sealed class OverviewModel : OrgPage
{
    public override string Title => "Overview";

    public void OnGet()
    {
    }
}
