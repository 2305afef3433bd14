using Microsoft.AspNetCore.Mvc;
using Sluice.Identity;

namespace Sluice.WebConsole.Pages.Orgs;

/// <summary>The organization's members and their roles, invitations by email, and the invitations still pending.</summary>
[OrgPermission(OrgAccess.MembersRead)]
public sealed class MembersModel : OrgPage
{
    public override string Title => "Members";

    public IReadOnlyList<MemberResponse> Members { get; private set; } = [];

    public IReadOnlyList<InvitationResponse> Pending { get; private set; } = [];

    /// <summary>The invitation just made: its link is shown once, in this response only.</summary>
    public CreatedInvitationResponse? Created { get; private set; }

    public string? CreatedLink => Created is null ? null : $"{Request.Scheme}://{Request.Host}/invitations?token={Uri.EscapeDataString(Created.Token)}";

    [BindProperty]
    public string? Email { get; set; }

    [BindProperty]
    public string? Role { get; set; } = "member";

    [BindProperty(SupportsGet = true)]
    public string? Done { get; set; }

    /// <summary>The roles the viewer may hand out: only owners make owners.</summary>
    public IReadOnlyList<string> AssignableRoles => Organization.Role == OrgRole.Owner
        ? ["owner", "admin", "member", "billing", "viewer"]
        : ["admin", "member", "billing", "viewer"];

    /// <summary>Whether the viewer may change or remove this member (owners are managed only by owners).</summary>
    public bool CanManage(MemberResponse member) =>
        Can(OrgAccess.MembersWrite) && (member.Role != "owner" || Organization.Role == OrgRole.Owner);

    public async Task OnGetAsync([FromServices] OrganizationService organizations)
    {
        Notice = Done switch
        {
            "role" => "Role changed.",
            "removed" => "Member removed.",
            "revoked" => "Invitation revoked.",
            _ => null,
        };
        await LoadAsync(organizations);
    }

    public async Task<IActionResult> OnPostInviteAsync([FromServices] OrganizationService organizations)
    {
        if (!Can(OrgAccess.MembersWrite))
        {
            return Denied();
        }

        CreatedInvitationResponse? created = null;
        if (await TryAsync(async () => created = await organizations.InviteAsync(OrgId, new CreateInvitationRequest(Email, Role), UserId, Organization.Role, HttpContext.RequestAborted)))
        {
            Created = created;
            Notice = $"Invitation created for {created!.Email}. Send them the link below: it is shown only now.";
            Email = null;
            Role = "member";
            ModelState.Clear();
        }

        await LoadAsync(organizations);
        return Page();
    }

    public async Task<IActionResult> OnPostRoleAsync([FromServices] OrganizationService organizations, Guid userId, string? newRole)
    {
        if (!Can(OrgAccess.MembersWrite))
        {
            return Denied();
        }

        if (!await TryAboveAsync(() => organizations.ChangeRoleAsync(OrgId, userId, new ChangeRoleRequest(newRole), Organization.Role, HttpContext.RequestAborted)))
        {
            await LoadAsync(organizations);
            return Page();
        }

        return Redirect(OrgPath("/members?done=role"));
    }

    public async Task<IActionResult> OnPostRemoveAsync([FromServices] OrganizationService organizations, Guid userId)
    {
        if (!Can(OrgAccess.MembersWrite))
        {
            return Denied();
        }

        if (!await TryAboveAsync(() => organizations.RemoveMemberAsync(OrgId, userId, Organization.Role, HttpContext.RequestAborted)))
        {
            await LoadAsync(organizations);
            return Page();
        }

        return userId == UserId ? Redirect("/") : Redirect(OrgPath("/members?done=removed"));
    }

    public async Task<IActionResult> OnPostRevokeAsync([FromServices] OrganizationService organizations, Guid invitationId)
    {
        if (!Can(OrgAccess.MembersWrite))
        {
            return Denied();
        }

        await organizations.RevokeInvitationAsync(OrgId, invitationId, HttpContext.RequestAborted);
        return Redirect(OrgPath("/members?done=revoked"));
    }

    /// <summary>A refusal of a row's action (change role, remove) is said above the page, not beside the invitation form's fields.</summary>
    private async Task<bool> TryAboveAsync(Func<Task> action)
    {
        if (await TryAsync(action))
        {
            return true;
        }

        var messages = ModelState.Where(e => e.Key.Length > 0).SelectMany(e => e.Value!.Errors.Select(x => x.ErrorMessage)).ToList();
        foreach (var key in ModelState.Keys.Where(k => k.Length > 0).ToList())
        {
            ModelState.Remove(key);
        }

        foreach (var message in messages)
        {
            ModelState.AddModelError(string.Empty, message);
        }

        return false;
    }

    private async Task LoadAsync(OrganizationService organizations)
    {
        Members = await organizations.MembersAsync(OrgId, HttpContext.RequestAborted);
        Pending = await organizations.PendingInvitationsAsync(OrgId, HttpContext.RequestAborted);
    }
}
