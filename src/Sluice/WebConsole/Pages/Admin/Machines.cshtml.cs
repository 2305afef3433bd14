using Microsoft.AspNetCore.Mvc;
using Microsoft.EntityFrameworkCore;
using Sluice.Compute;

namespace Sluice.WebConsole.Pages.Admin;

/// <summary>
/// The fleet as operators see it (<see cref="MachineAdmin"/> with an operator's <see cref="ComputeCaller"/>): every
/// machine, its state and liveness, last heartbeat, GPUs and size; cordon, uncordon and drain; and join tokens, whose
/// secret is shown once in the response that created it.
/// </summary>
public sealed class MachinesModel(MachineAdmin machines) : OperatorPage
{
    public override string Title => "Machines";

    public IReadOnlyList<MachineView> Machines { get; private set; } = [];

    public IReadOnlyList<JoinTokenView> Tokens { get; private set; } = [];

    public IReadOnlyDictionary<Guid, string> Organizations { get; private set; } = new Dictionary<Guid, string>();

    /// <summary>A join token just created: shown in this response only.</summary>
    public string? NewToken { get; private set; }

    /// <summary>Blank: the platform pool; otherwise an organization's private fleet.</summary>
    [BindProperty]
    public Guid? OrganizationId { get; set; }

    [BindProperty]
    public string? Description { get; set; }

    [BindProperty]
    public int? TtlSeconds { get; set; }

    private ComputeCaller Operator => new(true, UserId);

    public string OrganizationName(Guid? id) => id is { } org ? Organizations.GetValueOrDefault(org, org.ToString()) : "platform pool";

    public async Task OnGetAsync(string? done)
    {
        Notice = done switch
        {
            MachineAdmin.Cordon => "Machine cordoned: no new replicas are placed on it.",
            MachineAdmin.Uncordon => "Machine uncordoned.",
            MachineAdmin.Drain => "Machine draining: its replicas move elsewhere.",
            "revoked" => "Join token revoked.",
            _ => null,
        };
        await LoadAsync();
    }

    public async Task<IActionResult> OnPostChangeAsync(Guid machineId, string change)
    {
        if (change is not (MachineAdmin.Cordon or MachineAdmin.Uncordon or MachineAdmin.Drain))
        {
            return BadRequest();
        }

        if (!await TryAsync(() => machines.ChangeStateAsync(Operator, machineId, change, HttpContext.RequestAborted)))
        {
            AdminForms.Remap(ModelState, ("state", string.Empty), ("id", string.Empty));
            await LoadAsync();
            return Page();
        }

        return Redirect($"/admin/machines?done={change}");
    }

    public async Task<IActionResult> OnPostTokenAsync()
    {
        CreatedJoinToken? created = null;
        if (!await TryAsync(async () => created = await machines.CreateJoinTokenAsync(Operator,
                new CreateJoinTokenRequest(OrganizationId, TtlSeconds, string.IsNullOrWhiteSpace(Description) ? null : Description.Trim()), HttpContext.RequestAborted)))
        {
            await LoadAsync();
            return Page();
        }

        NewToken = created!.Token;
        Notice = "Join token created. Copy it now: it is not shown again.";
        ModelState.Clear();
        OrganizationId = null;
        Description = null;
        TtlSeconds = null;
        await LoadAsync();
        return Page();
    }

    public async Task<IActionResult> OnPostRevokeTokenAsync(Guid tokenId)
    {
        if (!await TryAsync(() => machines.RevokeJoinTokenAsync(Operator, tokenId, HttpContext.RequestAborted)))
        {
            AdminForms.Remap(ModelState, ("token", string.Empty), ("id", string.Empty));
            await LoadAsync();
            return Page();
        }

        return Redirect("/admin/machines?done=revoked");
    }

    private async Task LoadAsync()
    {
        Machines = await machines.ListAsync(Operator, null, HttpContext.RequestAborted);
        Tokens = await machines.JoinTokensAsync(Operator, null, HttpContext.RequestAborted);
        Organizations = await Db.Organizations.AsNoTracking().ToDictionaryAsync(o => o.Id, o => o.Name, HttpContext.RequestAborted);
    }
}
