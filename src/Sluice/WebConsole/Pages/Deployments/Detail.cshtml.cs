using Microsoft.AspNetCore.Mvc;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using Sluice.Billing;
using Sluice.Deployments;
using Sluice.Deployments.Billing;
using Sluice.Identity;

namespace Sluice.WebConsole.Pages.Deployments;

/// <summary>One deployment: its spec and status, replicas, recent events (metadata), GPU time billed so far, and (owners and admins) scale and delete.</summary>
[OrgPermission(OrgAccess.OrgRead)]
public sealed class DeploymentDetailModel(DeploymentAdmin deployments, DeploymentCosts costs, IOptions<BillingOptions> billing) : OrgPage
{
    public const int EventsShown = 50;

    public override string Title => Deployment is { } d ? $"Deployment {d.Name}" : "Deployment";

    [FromRoute]
    public Guid Id { get; set; }

    [BindProperty]
    public int? MinReplicas { get; set; }

    [BindProperty]
    public int? MaxReplicas { get; set; }

    [BindProperty]
    public int? TargetConcurrency { get; set; }

    public string Currency => billing.Value.Currency;

    public DeploymentView? Deployment { get; private set; }

    public IReadOnlyList<DeploymentEventView> Events { get; private set; } = [];

    public DeploymentCostSummary Cost { get; private set; } = DeploymentCostSummary.None;

    /// <summary>Where each replica runs: the machine's name when it is one of this organization's own, else "platform pool".</summary>
    public IReadOnlyDictionary<Guid, string> Machines { get; private set; } = new Dictionary<Guid, string>();

    public async Task<IActionResult> OnGetAsync(string? done)
    {
        Notice = done switch
        {
            "created" => "Deployment created: the scheduler places its replicas.",
            "scaled" => "Scaling saved.",
            _ => null,
        };
        if (await LoadAsync() is { } missing)
        {
            return missing;
        }

        MinReplicas = Deployment!.MinReplicas;
        MaxReplicas = Deployment.MaxReplicas;
        TargetConcurrency = Deployment.TargetConcurrency;
        return Page();
    }

    public async Task<IActionResult> OnPostScaleAsync()
    {
        if (!Can(OrgAccess.OrgWrite))
        {
            return Denied();
        }

        if (await LoadAsync() is { } missing)
        {
            return missing;
        }

        var request = new UpdateDeploymentRequest(null, null, null, null, null, null, null, MinReplicas, MaxReplicas, TargetConcurrency, null, null, null, null);
        if (!await TryAsync(() => deployments.UpdateAsync(DeploymentCaller.From(HttpContext), Id, request, HttpContext.RequestAborted)))
        {
            ConsoleDeployments.MoveErrors(ModelState, new Dictionary<string, string>(), [nameof(MinReplicas), nameof(MaxReplicas), nameof(TargetConcurrency)]);
            return Page();
        }

        return Redirect(OrgPath($"/deployments/{Id}?done=scaled"));
    }

    public async Task<IActionResult> OnPostDeleteAsync()
    {
        if (!Can(OrgAccess.OrgWrite))
        {
            return Denied();
        }

        if (await LoadAsync() is { } missing)
        {
            return missing;
        }

        await deployments.DeleteAsync(DeploymentCaller.From(HttpContext), Id, HttpContext.RequestAborted);
        return Redirect(OrgPath("/deployments?done=deleted"));
    }

    /// <summary>The deployment, its events, cost and replicas' machines; a 404 page when it is not this organization's.</summary>
    private async Task<IActionResult?> LoadAsync()
    {
        var caller = DeploymentCaller.From(HttpContext);
        var deployment = await deployments.GetAsync(caller, Id, HttpContext.RequestAborted);
        if (deployment.OrganizationId != OrgId)
        {
            return Missing();
        }

        Deployment = deployment;
        Events = await deployments.EventsAsync(caller, Id, EventsShown, HttpContext.RequestAborted);
        Cost = await costs.ForDeploymentAsync(OrgId, Id, HttpContext.RequestAborted);
        var machineIds = (deployment.Replicas ?? []).Select(r => r.MachineId).Distinct().ToList();
        var machines = await Db.Machines.AsNoTracking().Where(m => machineIds.Contains(m.Id))
            .Select(m => new { m.Id, m.OrganizationId, m.Hostname }).ToListAsync(HttpContext.RequestAborted);
        Machines = machines.ToDictionary(m => m.Id, m => m.OrganizationId == OrgId ? m.Hostname : "platform pool");
        return null;
    }

    public string MachineOf(Guid machineId) => Machines.TryGetValue(machineId, out var name) ? name : "–";

    public static string ReplicaBadge(string state) => state switch
    {
        ReplicaStates.Ready => "badge ok",
        ReplicaStates.Failed => "badge danger",
        ReplicaStates.Starting or ReplicaStates.Draining => "badge warn",
        _ => "badge",
    };

    /// <summary>GPU time as hours and minutes: <c>3 h 05 min</c>.</summary>
    public static string GpuTime(long seconds) => seconds < 60 ? $"{seconds} s" : $"{seconds / 3600} h {seconds % 3600 / 60:00} min";
}
