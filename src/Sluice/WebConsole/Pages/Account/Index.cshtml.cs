using Microsoft.AspNetCore.Mvc;
using Sluice.Identity;

namespace Sluice.WebConsole.Pages.Account;

/// <summary>The signed-in person's profile and password.</summary>
public sealed class AccountModel : ConsolePage
{
    public override string Title => "Account";

    public MeResponse? Me { get; private set; }

    [BindProperty]
    public string? Name { get; set; }

    [BindProperty]
    public string? CurrentPassword { get; set; }

    [BindProperty]
    public string? NewPassword { get; set; }

    [BindProperty(SupportsGet = true)]
    public string? Done { get; set; }

    public async Task OnGetAsync([FromServices] AccountService accounts)
    {
        Me = await accounts.MeAsync(UserId, HttpContext.RequestAborted);
        Name = Me.Name;
        Notice = Done switch
        {
            "profile" => "Profile saved.",
            "password" => "Password changed. Your other sessions were signed out.",
            _ => null,
        };
    }

    public async Task<IActionResult> OnPostProfileAsync([FromServices] AccountService accounts)
    {
        if (!await TryAsync(() => accounts.UpdateProfileAsync(UserId, new UpdateProfileRequest(Name), HttpContext.RequestAborted)))
        {
            Me = await accounts.MeAsync(UserId, HttpContext.RequestAborted);
            return Page();
        }

        return Redirect("/account?done=profile");
    }

    public async Task<IActionResult> OnPostPasswordAsync([FromServices] AccountService accounts)
    {
        var sessionId = Guid.Parse(User.FindFirst(Caller.SessionClaim)!.Value);
        var changed = await TryAsync(() => accounts.ChangePasswordAsync(UserId, sessionId, new ChangePasswordRequest(CurrentPassword, NewPassword), HttpContext.RequestAborted));
        CurrentPassword = null;
        NewPassword = null;
        if (!changed)
        {
            Me = await accounts.MeAsync(UserId, HttpContext.RequestAborted);
            var profile = Me.Name;
            ModelState.Remove(nameof(Name));
            Name = profile;
            return Page();
        }

        return Redirect("/account?done=password");
    }
}
