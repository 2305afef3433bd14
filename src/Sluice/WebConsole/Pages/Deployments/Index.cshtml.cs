using Microsoft.Extensions.Options;
using Sluice.Billing;
using Sluice.Deployments;
using Sluice.Deployments.Billing;
using Sluice.Identity;

namespace Sluice.WebConsole.Pages.Deployments;

/// <summary>The organization's deployments: what runs, where it is in scaling, the model name to call, and what its GPU time cost.</summary>
[OrgPermission(OrgAccess.OrgRead)]
public sealed class DeploymentsModel(DeploymentAdmin deployments, DeploymentCosts costs, IOptions<BillingOptions> billing) : OrgPage
{
    public override string Title => "Deployments";

    public string Currency => billing.Value.Currency;

    public IReadOnlyList<DeploymentView> Deployments { get; private set; } = [];

    public IReadOnlyDictionary<Guid, DeploymentCostSummary> Costs { get; private set; } = new Dictionary<Guid, DeploymentCostSummary>();

    /// <summary>Replicas ready per deployment.</summary>
    public IReadOnlyDictionary<Guid, int> Ready { get; private set; } = new Dictionary<Guid, int>();

    public async Task OnGetAsync(string? done)
    {
        Notice = done switch
        {
            "deleted" => "Deployment deleted: its replicas are stopping.",
            _ => null,
        };
        Deployments = await deployments.ListAsync(DeploymentCaller.From(HttpContext), OrgId, HttpContext.RequestAborted);
        Costs = await costs.ForOrganizationAsync(OrgId, HttpContext.RequestAborted);
        var ids = Deployments.Select(d => d.Id).ToList();
        Ready = await ConsoleDeployments.ReadyReplicasAsync(Db, ids, HttpContext.RequestAborted);
    }

    public DeploymentCostSummary CostOf(Guid id) => Costs.TryGetValue(id, out var cost) ? cost : DeploymentCostSummary.None;

    public static string StatusBadge(string status) => status switch
    {
        DeploymentStatuses.Ready => "badge ok",
        DeploymentStatuses.Failed or DeploymentStatuses.Suspended => "badge danger",
        DeploymentStatuses.Pending or DeploymentStatuses.Deleting => "badge warn",
        _ => "badge",
    };

    public static string Gpus(DeploymentView d) => d.GpusPerReplica == 0 ? "none" : $"{d.GpuType ?? "any GPU"} × {d.GpusPerReplica}";

    public static string Artifact(DeploymentView d) => d.Artifact ?? "–";
}
