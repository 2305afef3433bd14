using Microsoft.AspNetCore.Mvc;
using Sluice.Identity;

namespace Sluice.WebConsole.Pages;

public sealed class SignInModel : VisitorPage
{
    public override string Title => "Sign in";

    [BindProperty]
    public string? Email { get; set; }

    [BindProperty]
    public string? Password { get; set; }

    [BindProperty(SupportsGet = true)]
    public string ReturnUrl { get; set; } = "/";

    public void OnGet() => ReturnUrl = ConsolePaths.SafeReturnUrl(ReturnUrl);

    public async Task<IActionResult> OnPostAsync([FromServices] AccountService accounts)
    {
        ReturnUrl = ConsolePaths.SafeReturnUrl(ReturnUrl);
        (User User, Session Session, string Token)? signedIn = null;
        if (!await TryAsync(async () => signedIn = await accounts.LoginAsync(new LoginRequest(Email, Password),
                HttpContext.Connection.RemoteIpAddress?.ToString(), Request.Headers.UserAgent.ToString(), HttpContext.RequestAborted)))
        {
            return Page();
        }

        SessionCookie.Issue(HttpContext, signedIn!.Value.Token, signedIn.Value.Session.ExpiresAt);
        return LocalRedirect(ReturnUrl);
    }
}
