namespace Sluice.Gateway;

/// <summary>
/// Models beyond the catalog whose visibility depends on who asks: an organization's own deployments (private to it)
/// and those an operator published (everyone's). Implemented by Deployments/Routing; the gateway only asks, in memory.
/// </summary>
public interface IOrganizationModels
{
    /// <summary><paramref name="organizationId"/>'s own model named <paramref name="model"/>: looked up before the catalog.</summary>
    ModelInfo? FindOwn(Guid organizationId, string model);

    /// <summary>A published model every organization may call: looked up after the catalog.</summary>
    ModelInfo? FindPublished(string model);

    /// <summary>The organization's own models.</summary>
    IEnumerable<ModelInfo> Own(Guid organizationId);

    /// <summary>The published models.</summary>
    IEnumerable<ModelInfo> Published();
}

/// <summary>
/// How a <c>/v1</c> model id resolves for an organization: its own deployment by name first, then the catalog, then
/// published deployments. Another organization's private deployment is simply not found (as an unknown model is).
/// </summary>
public static class ModelLookup
{
    public static ModelInfo? Find(Catalog catalog, IOrganizationModels? organizationModels, Guid organizationId, string model) =>
        organizationModels?.FindOwn(organizationId, model) ?? catalog.Find(model) ?? organizationModels?.FindPublished(model);

    /// <summary>Every model the organization sees, one per id, with the same precedence as <see cref="Find"/>.</summary>
    public static IEnumerable<ModelInfo> Visible(Catalog catalog, IOrganizationModels? organizationModels, Guid organizationId)
    {
        var seen = new Dictionary<string, ModelInfo>(StringComparer.Ordinal);
        foreach (var model in organizationModels?.Own(organizationId) ?? [])
        {
            seen.TryAdd(model.Id, model);
        }

        foreach (var model in catalog.Models.Values)
        {
            seen.TryAdd(model.Id, model);
        }

        foreach (var model in organizationModels?.Published() ?? [])
        {
            seen.TryAdd(model.Id, model);
        }

        return seen.Values;
    }

    /// <summary>
    /// The models <paramref name="organizationId"/> may actually call (what <c>/v1/models</c> lists for a key of it that
    /// names no models): visible to it, with at least one route whose provider serves some endpoint and that its data
    /// policy allows; ordered by id. The console's key form and playground offer these.
    /// </summary>
    public static async Task<IReadOnlyList<ModelInfo>> CallableAsync(
        Catalog catalog, IOrganizationModels? organizationModels, OrganizationPolicies policies, Guid organizationId, CancellationToken cancellationToken)
    {
        var policy = await policies.OrganizationAsync(organizationId, cancellationToken);
        return [.. Visible(catalog, organizationModels, organizationId).Where(m => Usable(m, policy)).OrderBy(m => m.Id, StringComparer.Ordinal)];
    }

    /// <summary>A route of the model serves some endpoint and the organization's data policy (when given) allows it.</summary>
    public static bool Usable(ModelInfo model, OrganizationPolicy? policy) => model.Routes.Any(r =>
        Enum.GetValues<InferenceEndpoint>().Any(r.Provider.Supports)
        && (policy is null || ((!policy.RequireZeroRetention || !r.RetainsData) && (policy.AllowsTrainingRoutes || !r.TrainsOnData))));

    /// <summary>Whether some route of the model the organization may use serves <paramref name="endpoint"/>.</summary>
    public static bool Serves(ModelInfo model, InferenceEndpoint endpoint) => model.Routes.Any(r => r.Provider.Supports(endpoint));
}
