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

    private static async Task ListModels(HttpContext context, Catalog catalog)
    {
        var visible = Visible(context, catalog).ToList();
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

    private static async Task GetModel(string id, HttpContext context, Catalog catalog)
    {
        if (Visible(context, catalog).FirstOrDefault(m => m.Id == id) is not { } model)
        {
            await OpenAiError.WriteAsync(context, 404, $"The model '{(id.Length > 100 ? id[..100] : id)}' does not exist or you do not have access to it.", "invalid_request_error", "model_not_found", "model");
            return;
        }

        context.Response.ContentType = "application/json";
        await using var json = new Utf8JsonWriter(context.Response.Body);
        WriteModel(json, model);
    }

    private static IEnumerable<ModelInfo> Visible(HttpContext context, Catalog catalog)
    {
        var organizationModels = context.RequestServices.GetService<IOrganizationModels>();
        var key = context.Items[typeof(VerifiedKey)] as VerifiedKey;
        var allowed = key?.AllowedModels?.Split(' ');
        var models = key is null ? catalog.Models.Values : ModelLookup.Visible(catalog, organizationModels, key.OrganizationId);
        return models.Where(m => allowed is null || allowed.Contains(m.Id, StringComparer.Ordinal)).OrderBy(m => m.Id, StringComparer.Ordinal);
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

        json.WriteEndObject();
    }
}
