using Microsoft.AspNetCore.Mvc;
using Microsoft.EntityFrameworkCore;
using Sluice.Privacy;

namespace Sluice.WebConsole.Pages.Admin;

/// <summary>
/// Staff access grants (<see cref="StaffAccessService"/>): an operator asks an organization for time-limited access to
/// its files with a justification; the organization's owners and admins approve or deny it in their console. Here an
/// operator sees every grant, asks for a new one, and withdraws their own (audited as a revocation).
/// </summary>
public sealed class StaffAccessModel(StaffAccessService grants) : OperatorPage
{
    public override string Title => "Staff access";

    public IReadOnlyList<StaffAccessGrantResponse> Grants { get; private set; } = [];

    public IReadOnlyList<(Guid Id, string Name)> Organizations { get; private set; } = [];

    public IReadOnlyDictionary<Guid, string> Operators { get; private set; } = new Dictionary<Guid, string>();

    [BindProperty]
    public Guid? OrganizationId { get; set; }

    [BindProperty]
    public string? Reason { get; set; }

    [BindProperty]
    public double? Hours { get; set; }

    public string OrganizationName(Guid id) => Organizations.FirstOrDefault(o => o.Id == id).Name ?? id.ToString();

    public bool Withdrawable(StaffAccessGrantResponse grant) =>
        grant.OperatorUserId == UserId && grant.Status is StaffAccessStatus.Requested || (grant.OperatorUserId == UserId && grant.Active);

    public async Task OnGetAsync(string? done)
    {
        Notice = done switch
        {
            "requested" => "Access requested; the organization's owners and admins decide.",
            "withdrawn" => "Access withdrawn.",
            _ => null,
        };
        await LoadAsync();
    }

    public async Task<IActionResult> OnPostRequestAsync()
    {
        if (OrganizationId is null)
        {
            ModelState.AddModelError(nameof(OrganizationId), "choose the organization whose data you need");
        }

        if (!await TryAsync(() => grants.RequestAsync(OrganizationId!.Value, UserId, new RequestStaffAccess(Reason, Hours), HttpContext.RequestAborted)))
        {
            await LoadAsync();
            return Page();
        }

        return Redirect("/admin/staff-access?done=requested");
    }

    public async Task<IActionResult> OnPostWithdrawAsync(Guid grantId)
    {
        var grant = await Db.StaffAccessGrants.AsNoTracking().SingleOrDefaultAsync(g => g.Id == grantId, HttpContext.RequestAborted);
        if (grant is null)
        {
            return Missing();
        }

        if (grant.OperatorUserId != UserId)
        {
            return Denied(); // another operator's access is the organization's to revoke
        }

        if (!await TryAsync(() => grants.DecideAsync(grant.OrganizationId, grantId, UserId, StaffAccessStatus.Revoked, HttpContext.RequestAborted)))
        {
            AdminForms.Remap(ModelState, ("status", string.Empty));
            await LoadAsync();
            return Page();
        }

        return Redirect("/admin/staff-access?done=withdrawn");
    }

    private async Task LoadAsync()
    {
        Grants = await grants.ListAllAsync(false, HttpContext.RequestAborted);
        Organizations = (await Db.Organizations.AsNoTracking().Select(o => new { o.Id, o.Name }).ToListAsync(HttpContext.RequestAborted))
            .OrderBy(o => o.Name, StringComparer.OrdinalIgnoreCase).Select(o => (o.Id, o.Name)).ToList();
        var ids = Grants.Select(g => g.OperatorUserId).Distinct().ToList();
        Operators = await Db.Users.AsNoTracking().Where(u => ids.Contains(u.Id)).ToDictionaryAsync(u => u.Id, u => u.Email, HttpContext.RequestAborted);
    }
}
