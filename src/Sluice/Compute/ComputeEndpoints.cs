using System.Text.Json;
using Sluice.Compute.Protocol;
using Sluice.Hosting;
using Sluice.Identity;

namespace Sluice.Compute;

internal static class ComputeEndpoints
{
    public const int HeartbeatMaxBodyBytes = 512 * 1024;

    public static IEndpointRouteBuilder MapCompute(this IEndpointRouteBuilder endpoints)
    {
        // The agent's two calls: anonymous to the session/key machinery. The join token rides in the body, the machine
        // credential in Authorization; both are checked here, never by the API-key gate.
        // A join carries the inventory, which may list up to 256 model files with long paths.
        endpoints.MapPost(AgentPaths.Join, JoinAsync).WithTags("agent").AllowAnonymous().WithMetadata(new BodyLimit(HeartbeatMaxBodyBytes));
        // A heartbeat of a full machine (64 GPUs, 256 task reports) runs past the API's default body limit.
        endpoints.MapPost(AgentPaths.Heartbeat, HeartbeatAsync).WithTags("agent").AllowAnonymous().WithMetadata(new BodyLimit(HeartbeatMaxBodyBytes));

        var machines = endpoints.MapGroup("/api/v1/machines").WithTags("machines").RequireAuthorization(Policies.User);
        machines.MapGet("", (Guid? orgId, HttpContext http, MachineAdmin admin, CancellationToken ct) => admin.ListAsync(ComputeCaller.From(http), orgId, ct));
        machines.MapPost("/join-tokens", async (CreateJoinTokenRequest request, HttpContext http, MachineAdmin admin, CancellationToken ct) =>
        {
            var created = await admin.CreateJoinTokenAsync(ComputeCaller.From(http), request, ct);
            http.Response.Headers.CacheControl = "no-store"; // the token is shown once
            return TypedResults.Created($"/api/v1/machines/join-tokens/{created.Details.Id}", created);
        });
        machines.MapGet("/join-tokens", (Guid? orgId, HttpContext http, MachineAdmin admin, CancellationToken ct) => admin.JoinTokensAsync(ComputeCaller.From(http), orgId, ct));
        machines.MapDelete("/join-tokens/{tokenId:guid}", (Guid tokenId, HttpContext http, MachineAdmin admin, CancellationToken ct) =>
            admin.RevokeJoinTokenAsync(ComputeCaller.From(http), tokenId, ct));

        machines.MapGet("/{id:guid}", (Guid id, HttpContext http, MachineAdmin admin, CancellationToken ct) => admin.GetAsync(ComputeCaller.From(http), id, ct));
        machines.MapGet("/{id:guid}/events", (Guid id, int? limit, HttpContext http, MachineAdmin admin, CancellationToken ct) =>
            admin.EventsAsync(ComputeCaller.From(http), id, limit, ct));
        machines.MapPatch("/{id:guid}/labels", (Guid id, UpdateLabelsRequest request, HttpContext http, MachineAdmin admin, CancellationToken ct) =>
            admin.UpdateLabelsAsync(ComputeCaller.From(http), id, request, ct));
        foreach (var change in new[] { MachineAdmin.Cordon, MachineAdmin.Uncordon, MachineAdmin.Drain })
        {
            machines.MapPost($"/{{id:guid}}/{change}", (Guid id, HttpContext http, MachineAdmin admin, CancellationToken ct) =>
                admin.ChangeStateAsync(ComputeCaller.From(http), id, change, ct));
        }

        machines.MapPost("/{id:guid}/decommission", (Guid id, HttpContext http, MachineAdmin admin, CancellationToken ct) =>
            admin.DecommissionAsync(ComputeCaller.From(http), id, ct));
        machines.MapPost("/{id:guid}/revoke-credential", (Guid id, HttpContext http, MachineAdmin admin, CancellationToken ct) =>
            admin.RevokeCredentialAsync(ComputeCaller.From(http), id, ct));

        machines.MapPost("/{id:guid}/tasks", async (Guid id, CreateTaskRequest request, HttpContext http, MachineTasks tasks, CancellationToken ct) =>
        {
            var created = await tasks.CreateAsync(ComputeCaller.From(http), id, request, ct);
            return TypedResults.Created($"/api/v1/machines/{id}/tasks/{created.Id}", created);
        }).WithMetadata(new BodyLimit(2 * MachineTasks.MaxSpecBytes)); // the spec's own limit is checked after binding
        machines.MapGet("/{id:guid}/tasks", (Guid id, HttpContext http, MachineTasks tasks, CancellationToken ct) => tasks.ListAsync(ComputeCaller.From(http), id, ct));
        machines.MapGet("/{id:guid}/tasks/{taskId:guid}", (Guid id, Guid taskId, HttpContext http, MachineTasks tasks, CancellationToken ct) =>
            tasks.GetAsync(ComputeCaller.From(http), id, taskId, ct));
        machines.MapDelete("/{id:guid}/tasks/{taskId:guid}", (Guid id, Guid taskId, HttpContext http, MachineTasks tasks, CancellationToken ct) =>
            tasks.StopAsync(ComputeCaller.From(http), id, taskId, ct));
        return endpoints;
    }

    private static async Task JoinAsync(HttpContext http, AgentExchange exchange)
    {
        var request = await ReadAsync(http, ComputeJson.Default.JoinRequest);
        var response = await exchange.JoinAsync(request, http.RequestAborted);
        http.Response.StatusCode = StatusCodes.Status201Created;
        http.Response.Headers.CacheControl = "no-store";
        await http.Response.WriteAsJsonAsync(response, ComputeJson.Default.JoinResponse, cancellationToken: http.RequestAborted);
    }

    private static async Task HeartbeatAsync(HttpContext http, AgentExchange exchange)
    {
        var machine = await exchange.AuthenticateAsync(http.Request.Headers.Authorization.ToString(), http.RequestAborted);
        HeartbeatRequest request;
        try
        {
            request = await ReadAsync(http, ComputeJson.Default.HeartbeatRequest);
        }
        catch (ApiProblemException)
        {
            await exchange.RefuseUnreadableAsync(machine, http.RequestAborted);
            throw;
        }

        var response = await exchange.HeartbeatAsync(machine, request, http.RequestAborted);
        http.Response.Headers.CacheControl = "no-store";
        await http.Response.WriteAsJsonAsync(response, ComputeJson.Default.HeartbeatResponse, cancellationToken: http.RequestAborted);
    }

    private static async Task<T> ReadAsync<T>(HttpContext http, System.Text.Json.Serialization.Metadata.JsonTypeInfo<T> type)
        where T : class
    {
        if (!http.Request.HasJsonContentType())
        {
            throw new ApiProblemException(StatusCodes.Status415UnsupportedMediaType, "The body must be JSON.", "Send the body as JSON with Content-Type: application/json.");
        }

        try
        {
            return await http.Request.ReadFromJsonAsync(type, http.RequestAborted)
                ?? throw ApiProblem.Invalid("body", "must be a JSON object");
        }
        catch (JsonException ex)
        {
            // The path names the field; the message (which can quote the value) is not used.
            throw ApiProblem.Invalid(string.IsNullOrEmpty(ex.Path) || ex.Path == "$" ? "body" : ex.Path.TrimStart('$', '.'),
                "is missing, of the wrong type or not valid JSON; see the agent protocol in docs/api.md");
        }
    }
}
