using Sluice.Hosting;
using Sluice.Identity;

namespace Sluice.Deployments;

/// <summary><c>/api/v1/deployments</c>: create, list, get, update, delete, events; publish and unpublish for operators.</summary>
internal static class DeploymentEndpoints
{
    public static IEndpointRouteBuilder MapDeploymentEndpoints(this IEndpointRouteBuilder endpoints)
    {
        var group = endpoints.MapGroup("/api/v1/deployments").WithTags("deployments").RequireAuthorization(Policies.User);
        group.MapPost("", async (CreateDeploymentRequest request, HttpContext http, DeploymentAdmin admin, CancellationToken ct) =>
        {
            var created = await admin.CreateAsync(DeploymentCaller.From(http), request, ct);
            return TypedResults.Created($"/api/v1/deployments/{created.Id}", created);
        }).WithMetadata(new BodyLimit(4 * DeploymentAdmin.MaxLaunchBytes + (DeploymentSecrets.MaxCount * (DeploymentSecrets.MaxValueLength + 256))));
        group.MapGet("", (Guid? orgId, HttpContext http, DeploymentAdmin admin, CancellationToken ct) => admin.ListAsync(DeploymentCaller.From(http), orgId, ct));
        group.MapGet("/{id:guid}", (Guid id, HttpContext http, DeploymentAdmin admin, CancellationToken ct) => admin.GetAsync(DeploymentCaller.From(http), id, ct));
        group.MapPatch("/{id:guid}", (Guid id, UpdateDeploymentRequest request, HttpContext http, DeploymentAdmin admin, CancellationToken ct) =>
            admin.UpdateAsync(DeploymentCaller.From(http), id, request, ct))
            .WithMetadata(new BodyLimit(4 * DeploymentAdmin.MaxLaunchBytes + (DeploymentSecrets.MaxCount * (DeploymentSecrets.MaxValueLength + 256))));
        group.MapDelete("/{id:guid}", async (Guid id, HttpContext http, DeploymentAdmin admin, CancellationToken ct) =>
        {
            await admin.DeleteAsync(DeploymentCaller.From(http), id, ct);
            return TypedResults.NoContent();
        });
        group.MapGet("/{id:guid}/events", (Guid id, int? limit, HttpContext http, DeploymentAdmin admin, CancellationToken ct) =>
            admin.EventsAsync(DeploymentCaller.From(http), id, limit, ct));
        group.MapPost("/{id:guid}/publish", (Guid id, PublishDeploymentRequest request, HttpContext http, DeploymentAdmin admin, CancellationToken ct) =>
            admin.PublishAsync(DeploymentCaller.From(http), id, request, ct));
        group.MapPost("/{id:guid}/unpublish", (Guid id, HttpContext http, DeploymentAdmin admin, CancellationToken ct) =>
            admin.UnpublishAsync(DeploymentCaller.From(http), id, ct));
        return endpoints;
    }
}
