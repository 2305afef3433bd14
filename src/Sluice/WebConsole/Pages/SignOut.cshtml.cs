using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.Mvc;
using Sluice.Identity;

namespace Sluice.WebConsole.Pages;

/// <summary>Ends the session on the server and clears its cookie. Anyone may post it (an expired session just leaves).</summary>
[AllowAnonymous]
public sealed class SignOutModel : ConsolePage
{
    public override string Title => "Sign out";

    public IActionResult OnGet() => Viewer is null ? Redirect("/signin") : Page();

    public async Task<IActionResult> OnPostAsync([FromServices] AccountService accounts)
    {
        if (Guid.TryParse(User.FindFirst(Caller.SessionClaim)?.Value, out var sessionId))
        {
            await accounts.LogoutAsync(sessionId, HttpContext.RequestAborted);
        }

        SessionCookie.Clear(HttpContext);
        return Redirect("/signin");
    }
}
