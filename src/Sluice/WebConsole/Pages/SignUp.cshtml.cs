using Microsoft.AspNetCore.Mvc;
using Microsoft.Extensions.Options;
using Sluice.Identity;

namespace Sluice.WebConsole.Pages;

/// <summary>Creating an account (with the age attestation the terms require), then signing straight in.</summary>
public sealed class SignUpModel(IOptions<IdentityOptions> identity) : VisitorPage
{
    public override string Title => "Create your account";

    public int MinimumAge => identity.Value.MinimumAge;

    public int MinimumPasswordLength => identity.Value.MinimumPasswordLength;

    [BindProperty]
    public string? Name { get; set; }

    [BindProperty]
    public string? Email { get; set; }

    [BindProperty]
    public string? Password { get; set; }

    [BindProperty]
    public bool AgeAttestation { get; set; }

    [BindProperty(SupportsGet = true)]
    public string ReturnUrl { get; set; } = "/";

    public void OnGet() => ReturnUrl = ConsolePaths.SafeReturnUrl(ReturnUrl);

    public async Task<IActionResult> OnPostAsync([FromServices] AccountService accounts)
    {
        ReturnUrl = ConsolePaths.SafeReturnUrl(ReturnUrl);
        (User User, Session Session, string Token)? signedIn = null;
        var created = await TryAsync(async () =>
        {
            await accounts.SignUpAsync(new SignUpRequest(Email, Name, Password, AgeAttestation, null), HttpContext.RequestAborted);
            signedIn = await accounts.LoginAsync(new LoginRequest(Email, Password),
                HttpContext.Connection.RemoteIpAddress?.ToString(), Request.Headers.UserAgent.ToString(), HttpContext.RequestAborted);
        });
        if (!created)
        {
            return Page();
        }

        SessionCookie.Issue(HttpContext, signedIn!.Value.Token, signedIn.Value.Session.ExpiresAt);
        return LocalRedirect(ReturnUrl == "/" ? "/orgs/new" : ReturnUrl);
    }
}
