using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.Mvc;

namespace Sluice.WebConsole.Pages;

/// <summary>The console's front door: a visitor signs in; a person goes to their first organization, or creates one.</summary>
[AllowAnonymous]
public sealed class IndexModel : ConsolePage
{
    public override string Title => "Sluice";

    public IActionResult OnGet() => Viewer switch
    {
        null => Redirect("/signin"),
        { Organizations: [var first, ..] } => Redirect($"/orgs/{first.Id}"),
        _ => Redirect("/orgs/new"),
    };
}
