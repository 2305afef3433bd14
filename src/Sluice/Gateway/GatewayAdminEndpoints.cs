using Microsoft.AspNetCore.Http.HttpResults;
using Sluice.Identity;

namespace Sluice.Gateway;

public sealed record UsagePipelineResponse(int Queued, long Written, long Dropped);

internal static class GatewayAdminEndpoints
{
    public static IEndpointRouteBuilder MapGatewayAdmin(this IEndpointRouteBuilder endpoints)
    {
        var providers = endpoints.MapGroup("/api/v1/providers").WithTags("providers").RequireAuthorization(Policies.Operator);
        providers.MapGet("", (CatalogAdmin admin, CancellationToken ct) => admin.ProvidersAsync(ct));
        providers.MapGet("/{id:guid}", (Guid id, CatalogAdmin admin, CancellationToken ct) => admin.ProviderAsync(id, ct));
        providers.MapPost("", async (CreateProviderRequest request, CatalogAdmin admin, CancellationToken ct) =>
        {
            var created = await admin.CreateProviderAsync(request, ct);
            return TypedResults.Created($"/api/v1/providers/{created.Id}", created);
        });
        providers.MapPatch("/{id:guid}", (Guid id, UpdateProviderRequest request, CatalogAdmin admin, CancellationToken ct) => admin.UpdateProviderAsync(id, request, ct));
        providers.MapDelete("/{id:guid}", async Task<NoContent> (Guid id, CatalogAdmin admin, CancellationToken ct) =>
        {
            await admin.DeleteProviderAsync(id, ct);
            return TypedResults.NoContent();
        });

        var catalog = endpoints.MapGroup("/api/v1/catalog").WithTags("catalog").RequireAuthorization(Policies.Operator);
        catalog.MapGet("/models", (CatalogAdmin admin, CancellationToken ct) => admin.ModelsAsync(ct));
        catalog.MapPost("/models", async (CreateModelRequest request, CatalogAdmin admin, CancellationToken ct) =>
        {
            var created = await admin.CreateModelAsync(request, ct);
            return TypedResults.Created($"/api/v1/catalog/models/{created.Id}", created);
        });
        catalog.MapDelete("/models/{*id}", async Task<NoContent> (string id, CatalogAdmin admin, CancellationToken ct) =>
        {
            await admin.DeleteModelAsync(GatewayEndpoints.ModelIdFromPath(id), ct);
            return TypedResults.NoContent();
        });
        catalog.MapPost("/aliases", async (CreateAliasRequest request, CatalogAdmin admin, CancellationToken ct) =>
        {
            var created = await admin.CreateAliasAsync(request, ct);
            return TypedResults.Created($"/api/v1/catalog/aliases/{Uri.EscapeDataString(created.Alias)}", created);
        });
        catalog.MapDelete("/aliases/{*alias}", async Task<NoContent> (string alias, CatalogAdmin admin, CancellationToken ct) =>
        {
            await admin.DeleteAliasAsync(GatewayEndpoints.ModelIdFromPath(alias), ct);
            return TypedResults.NoContent();
        });
        catalog.MapPost("/routes", async (CreateRouteRequest request, CatalogAdmin admin, CancellationToken ct) =>
        {
            var created = await admin.CreateRouteAsync(request, ct);
            return TypedResults.Created($"/api/v1/catalog/routes/{created.Id}", created);
        });
        catalog.MapDelete("/routes/{routeId:guid}", async Task<NoContent> (Guid routeId, CatalogAdmin admin, CancellationToken ct) =>
        {
            await admin.DeleteRouteAsync(routeId, ct);
            return TypedResults.NoContent();
        });

        endpoints.MapGet("/api/v1/admin/usage-pipeline", (UsageMeter meter) => new UsagePipelineResponse(meter.Queued, meter.Written, meter.Dropped))
            .WithTags("operators").RequireAuthorization(Policies.Operator);
        return endpoints;
    }
}
