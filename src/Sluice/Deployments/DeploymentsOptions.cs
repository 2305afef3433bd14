using System.ComponentModel.DataAnnotations;

namespace Sluice.Deployments;

/// <summary>The <c>Deployments</c> settings the deployments API checks requests against.</summary>
public sealed record DeploymentsOptions
{
    public const string Section = "Deployments";

    /// <summary>The most replicas one deployment may ask for (<c>maxReplicas</c>).</summary>
    [Range(1, 1024, ErrorMessage = "must be between {1} and {2}")]
    public int MaxReplicas { get; init; } = 64;

    /// <summary>The most live deployments one organization may have.</summary>
    [Range(1, 100_000, ErrorMessage = "must be between {1} and {2}")]
    public int MaxPerOrganization { get; init; } = 100;
}
