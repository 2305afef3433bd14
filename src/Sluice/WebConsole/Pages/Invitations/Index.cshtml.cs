using Microsoft.AspNetCore.Mvc;
using Sluice.Identity;

namespace Sluice.WebConsole.Pages.Invitations;

/// <summary>
/// The invitations addressed to the signed-in person, and the form that accepts one by its link or token. A visitor who
/// follows a link is sent to sign in (or sign up) and comes back here with the token filled in.
/// </summary>
public sealed class InvitationsModel : ConsolePage
{
    public override string Title => "Invitations";

    public IReadOnlyList<InvitationForUser> Pending { get; private set; } = [];

    [BindProperty(SupportsGet = true)]
    public string? Token { get; set; }

    public async Task OnGetAsync([FromServices] OrganizationService organizations) =>
        Pending = await organizations.InvitationsForAsync(UserId, HttpContext.RequestAborted);

    public async Task<IActionResult> OnPostAsync([FromServices] OrganizationService organizations)
    {
        AcceptedInvitationResponse? accepted = null;
        if (!await TryAsync(async () => accepted = await organizations.AcceptAsync(new AcceptInvitationRequest(TokenOf(Token)), UserId, HttpContext.RequestAborted)))
        {
            Pending = await organizations.InvitationsForAsync(UserId, HttpContext.RequestAborted);
            return Page();
        }

        return Redirect($"/orgs/{accepted!.OrganizationId}");
    }

    /// <summary>The token from what was pasted: the token itself, or the whole link (<c>…/invitations?token=…</c>).</summary>
    public static string? TokenOf(string? pasted)
    {
        var text = pasted?.Trim();
        if (string.IsNullOrEmpty(text) || !text.Contains("token=", StringComparison.Ordinal))
        {
            return text;
        }

        var query = text[(text.IndexOf('?', StringComparison.Ordinal) + 1)..];
        var values = Microsoft.AspNetCore.WebUtilities.QueryHelpers.ParseQuery("?" + query);
        return values.TryGetValue("token", out var token) ? token.ToString() : text;
    }
}
