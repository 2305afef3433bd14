using Microsoft.AspNetCore.Mvc;
using Sluice.Compute;
using Sluice.Compute.Protocol;
using Sluice.Identity;

namespace Sluice.WebConsole.Pages.Machines;

/// <summary>
/// The organization's private fleet: machines it joined with <c>sluice agent join</c> (status, last heartbeat, GPUs,
/// utilisation, tasks) and the one-time join tokens that let a machine in. Like <c>/api/v1/machines</c>, owners and
/// admins only; a new token is shown once, in the response to the post that made it.
/// </summary>
[OrgPermission(OrgAccess.OrgWrite)]
public sealed class MachinesModel(MachineAdmin machines, MachineActivity activity) : OrgPage
{
    public override string Title => "Machines";

    [BindProperty]
    public string? Description { get; set; }

    [BindProperty]
    public int? TtlSeconds { get; set; }

    public IReadOnlyList<MachineView> Machines { get; private set; } = [];

    public IReadOnlyDictionary<Guid, MachineActivitySummary> Activity { get; private set; } = new Dictionary<Guid, MachineActivitySummary>();

    public IReadOnlyList<JoinTokenView> Tokens { get; private set; } = [];

    /// <summary>The token just created: shown in this response only.</summary>
    public CreatedJoinToken? Created { get; private set; }

    /// <summary>The command to run on the machine, with the token just created.</summary>
    public string? JoinCommand => Created is { } created ? $"sluice agent join --server {Request.Scheme}://{Request.Host} --token {created.Token}" : null;

    public async Task OnGetAsync(string? done)
    {
        Notice = done switch
        {
            "revoked" => "Join token revoked.",
            _ => null,
        };
        await LoadAsync();
    }

    public async Task<IActionResult> OnPostTokenAsync()
    {
        if (!Can(OrgAccess.OrgWrite))
        {
            return Denied();
        }

        var request = new CreateJoinTokenRequest(OrgId, TtlSeconds, string.IsNullOrWhiteSpace(Description) ? null : Description.Trim());
        CreatedJoinToken? created = null;
        if (await TryAsync(async () => created = await machines.CreateJoinTokenAsync(ComputeCaller.From(HttpContext), request, HttpContext.RequestAborted)))
        {
            Created = created;
            Response.Headers.CacheControl = "no-store"; // the token is shown once
            Notice = "Join token created. Copy it now: it is not shown again.";
            ModelState.Clear();
            Description = null;
            TtlSeconds = null;
        }

        await LoadAsync();
        return Page();
    }

    public async Task<IActionResult> OnPostRevokeAsync(Guid tokenId)
    {
        if (!Can(OrgAccess.OrgWrite))
        {
            return Denied();
        }

        var caller = ComputeCaller.From(HttpContext);
        var tokens = await machines.JoinTokensAsync(caller, OrgId, HttpContext.RequestAborted);
        if (tokens.All(t => t.Id != tokenId))
        {
            return Missing(); // another organization's token, or none
        }

        if (!await TryAsync(() => machines.RevokeJoinTokenAsync(caller, tokenId, HttpContext.RequestAborted)))
        {
            await LoadAsync();
            return Page();
        }

        return Redirect(OrgPath("/machines?done=revoked"));
    }

    private async Task LoadAsync()
    {
        var caller = ComputeCaller.From(HttpContext);
        Machines = await machines.ListAsync(caller, OrgId, HttpContext.RequestAborted);
        Activity = await activity.ForMachinesAsync([.. Machines.Select(m => m.Id)], HttpContext.RequestAborted);
        Tokens = (await machines.JoinTokensAsync(caller, OrgId, HttpContext.RequestAborted)).Take(20).ToList();
    }

    public MachineActivitySummary ActivityOf(Guid id) => Activity.TryGetValue(id, out var a) ? a : new MachineActivitySummary(0, 0, null, null);

    public static string Gpus(MachineInventory inventory) => inventory.Gpus.Count == 0 ? "none"
        : string.Join(", ", inventory.Gpus.GroupBy(g => g.Name, StringComparer.Ordinal).Select(g => $"{g.Count()} × {g.Key}"));

    public static string LivenessBadge(string liveness) => liveness switch
    {
        MachineLiveness.Alive => "badge ok",
        MachineLiveness.Suspect or MachineLiveness.Starting => "badge warn",
        _ => "badge danger",
    };

    public static string TokenBadge(string status) => status == "active" ? "badge ok" : "badge";
}
