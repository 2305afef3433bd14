using System.Text.Json;
using Sluice.Gateway.Protocols.Anthropic;
using Sluice.Identity;

namespace Sluice.Gateway;

internal static class GatewayEndpoints
{
    public static IEndpointRouteBuilder MapGateway(this IEndpointRouteBuilder endpoints)
    {
        var v1 = endpoints.MapGroup("/v1").WithTags("inference").RequireApiKey(KeyScopes.Inference);
        v1.MapPost("/chat/completions", (HttpContext context, Pipeline.HttpInferenceAdapter handler) => handler.HandleAsync(context, InferenceEndpoint.ChatCompletions));
        v1.MapPost("/completions", (HttpContext context, Pipeline.HttpInferenceAdapter handler) => handler.HandleAsync(context, InferenceEndpoint.Completions));
        v1.MapPost("/embeddings", (HttpContext context, Pipeline.HttpInferenceAdapter handler) => handler.HandleAsync(context, InferenceEndpoint.Embeddings));
        v1.MapPost("/responses", (HttpContext context, Pipeline.HttpInferenceAdapter handler, TimeProvider time) =>
            handler.HandleAsync(context, new Protocols.Responses.ResponsesProtocol(time))); // one per call: its stream's state
        v1.MapAnthropicMessages();
        v1.MapGet("/models", ListModels);
        v1.MapGet("/models/{*id}", GetModel);
        return endpoints;
    }

    /// <summary>
    /// A model id taken from the path's catch-all: <c>/v1/models/meta-llama/Llama-3.1-8B-Instruct</c> as it is, and
    /// <c>/v1/models/meta-llama%2FLlama-3.1-8B-Instruct</c> decoded (the server decodes every escape in a path but
    /// <c>%2F</c>, which would change its segments, so the route value keeps it). Model ids never contain '%'.
    /// </summary>
    public static string ModelIdFromPath(string id) => id.Contains('%', StringComparison.Ordinal) ? Uri.UnescapeDataString(id) : id;

    private static async Task ListModels(HttpContext context, Catalog catalog, OrganizationPolicies policies)
    {
        var visible = await VisibleAsync(context, catalog, policies);
        context.Response.ContentType = "application/json";
        await using var json = new Utf8JsonWriter(context.Response.Body);
        json.WriteStartObject();
        json.WriteString("object", "list");
        json.WriteStartArray("data");
        foreach (var model in visible)
        {
            WriteModel(json, model);
        }

        json.WriteEndArray();
        json.WriteEndObject();
    }

    private static async Task GetModel(string id, HttpContext context, Catalog catalog, OrganizationPolicies policies)
    {
        id = ModelIdFromPath(id);
        var organizationModels = context.RequestServices.GetService<IOrganizationModels>();
        var key = context.Items[typeof(VerifiedKey)] as VerifiedKey;

        // The same resolution as a call: the organization's own deployment, the catalog (an alias finds its model), a
        // published deployment; then the same filters as the list.
        var found = key is null ? catalog.Find(id) : ModelLookup.Find(catalog, organizationModels, key.OrganizationId, id);
        var policy = key is null ? null : await policies.OrganizationAsync(key.OrganizationId, context.RequestAborted);
        if (found is null || !Usable(found, policy) || !Granted(key, found, id))
        {
            await OpenAiError.WriteAsync(context, 404, $"The model '{(id.Length > 100 ? id[..100] : id)}' does not exist or you do not have access to it.", "invalid_request_error", "model_not_found", "model");
            return;
        }

        context.Response.ContentType = "application/json";
        await using var json = new Utf8JsonWriter(context.Response.Body);
        WriteModel(json, found);
    }

    /// <summary>
    /// The models a caller may actually call, by canonical id: granted to its key, with at least one route whose provider
    /// serves some endpoint and that the organization's data policy allows. A model without one is not listed (a call
    /// to it still explains itself: 400 unsupported endpoint, 403 no compliant route).
    /// </summary>
    private static async Task<IEnumerable<ModelInfo>> VisibleAsync(HttpContext context, Catalog catalog, OrganizationPolicies policies)
    {
        var organizationModels = context.RequestServices.GetService<IOrganizationModels>();
        var key = context.Items[typeof(VerifiedKey)] as VerifiedKey;
        var models = key is null ? catalog.Models.Values : ModelLookup.Visible(catalog, organizationModels, key.OrganizationId);
        var policy = key is null ? null : await policies.OrganizationAsync(key.OrganizationId, context.RequestAborted);
        return models.Where(m => Usable(m, policy) && Granted(key, m, m.Id)).OrderBy(m => m.Id, StringComparer.Ordinal);
    }

    private static bool Usable(ModelInfo model, OrganizationPolicy? policy) => ModelLookup.Usable(model, policy);

    /// <summary>As the pipeline grants: the key names the model's id, or the name asked for (an alias).</summary>
    private static bool Granted(VerifiedKey? key, ModelInfo model, string asked)
    {
        if (key?.AllowedModels is not { } allowed)
        {
            return true;
        }

        var names = allowed.Split(' ');
        return names.Contains(model.Id, StringComparer.Ordinal) || names.Contains(asked, StringComparer.Ordinal);
    }

    private static void WriteModel(Utf8JsonWriter json, ModelInfo model)
    {
        json.WriteStartObject();
        json.WriteString("id", model.Id);
        json.WriteString("object", "model");
        json.WriteNumber("created", model.CreatedAt.ToUnixTimeSeconds());
        json.WriteString("owned_by", model.OwnedBy ?? (model.IsTestModel ? "sluice-test-model" : "sluice"));
        if (model.IsTestModel)
        {
            json.WriteBoolean("test_model", true);
        }

        if (model.Description is not null)
        {
            json.WriteString("description", model.Description);
        }

        if (model.Aliases.Count > 0)
        {
            // Not in OpenAI's model object: other names a call may use for this model (they are not listed as models).
            json.WriteStartArray("aliases");
            foreach (var alias in model.Aliases)
            {
                json.WriteStringValue(alias);
            }

            json.WriteEndArray();
        }

        json.WriteEndObject();
    }
}
