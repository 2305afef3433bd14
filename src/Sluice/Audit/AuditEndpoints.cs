using Microsoft.AspNetCore.Http.HttpResults;
using Sluice.Hosting;
using Sluice.Identity;
using Sluice.Storage;

namespace Sluice.Audit;

public sealed record AuditEntryResponse(long Seq, DateTimeOffset Time, string Actor, Guid? OrganizationId, string Action, string Target, string Outcome, string? SourceNetwork)
{
    public static AuditEntryResponse From(AuditEntry e) => new(e.Seq, e.Time, e.Actor, e.OrganizationId, e.Action, e.Target, e.Outcome, e.SourceNetwork);
}

public sealed record AuditPage(IReadOnlyList<AuditEntryResponse> Entries, long? NextAfter);

public sealed record CheckpointResponse(long TreeSize, string RootHash, string Note, DateTimeOffset CreatedAt)
{
    public static CheckpointResponse? From(AuditCheckpoint? c) => c is null ? null : new(c.TreeSize, c.RootHash, c.Note, c.CreatedAt);
}

public sealed record InclusionProofResponse(long Index, long TreeSize, string LeafHash, IReadOnlyList<string> Proof, CheckpointResponse? Checkpoint);

public sealed record ConsistencyProofResponse(long From, long To, IReadOnlyList<string> Proof, CheckpointResponse? FromCheckpoint, CheckpointResponse? ToCheckpoint);

public sealed record PublicKeyResponse(string Origin, string Algorithm, string KeyId, string PublicKeyPem, string Spki);

internal static class AuditEndpoints
{
    public static IEndpointRouteBuilder MapAudit(this IEndpointRouteBuilder endpoints)
    {
        var audit = endpoints.MapGroup("/api/v1/audit").WithTags("audit");
        audit.MapGet("/entries", Entries).RequireAuthorization(Policies.User);
        audit.MapGet("/checkpoint", async Task<Results<Ok<CheckpointResponse>, NotFound<Microsoft.AspNetCore.Mvc.ProblemDetails>>> (AuditService service, CancellationToken ct) =>
            CheckpointResponse.From(await service.LatestCheckpointAsync(ct)) is { } checkpoint
                ? TypedResults.Ok(checkpoint)
                : TypedResults.NotFound(new Microsoft.AspNetCore.Mvc.ProblemDetails { Status = 404, Title = "Not found.", Detail = "No checkpoint has been signed yet." }))
            .RequireAuthorization(Policies.Authenticated);
        audit.MapPost("/checkpoint", async (AuditService service, CancellationToken ct) => CheckpointResponse.From(await service.CheckpointAsync(ct)))
            .RequireAuthorization(Policies.Operator);
        audit.MapGet("/proof/inclusion", async (long? index, long? size, AuditService service, CancellationToken ct) =>
        {
            var (checkpoint, leaf, proof, treeSize) = await service.InclusionProofAsync(index ?? throw ApiProblem.Invalid("index", "is required"), size, ct);
            return new InclusionProofResponse(index.Value, treeSize, Convert.ToBase64String(leaf), proof.Select(Convert.ToBase64String).ToList(), CheckpointResponse.From(checkpoint));
        }).RequireAuthorization(Policies.Authenticated);
        audit.MapGet("/proof/consistency", async (long? from, long? to, AuditService service, CancellationToken ct) =>
        {
            var (fromCheckpoint, toCheckpoint, proof) = await service.ConsistencyProofAsync(from ?? throw ApiProblem.Invalid("from", "is required"), to, ct);
            return new ConsistencyProofResponse(from.Value, toCheckpoint?.TreeSize ?? to ?? 0, proof.Select(Convert.ToBase64String).ToList(),
                CheckpointResponse.From(fromCheckpoint), CheckpointResponse.From(toCheckpoint));
        }).RequireAuthorization(Policies.Authenticated);
        audit.MapGet("/public-key", (CheckpointSigner signer) => new PublicKeyResponse(
            signer.Origin, "ecdsa-p256-sha256 (C2SP signed-note type 0x02)", Convert.ToHexStringLower(signer.KeyId), signer.PublicKeyPem, Convert.ToBase64String(signer.PublicKeySpki)))
            .AllowAnonymous();
        return endpoints;
    }

    /// <summary>Operators read everything; anyone else names an organization they own or administer.</summary>
    private static async Task<AuditPage> Entries(
        Guid? orgId, DateTimeOffset? from, DateTimeOffset? to, string? actor, string? action, long? after, int? limit,
        HttpContext http, AuditService service, SluiceDbContext db, CancellationToken ct)
    {
        var caller = http.Caller();
        if (!caller.IsOperator)
        {
            if (orgId is not { } org)
            {
                throw ApiProblem.Invalid("orgId", "is required: name the organization whose audit log you administer");
            }

            var role = await OrgAccessHandler.MembershipRoleAsync(http, db, org, caller.UserId!.Value);
            if (role is null)
            {
                throw ApiProblem.NotFound("organization");
            }

            if (role is not (OrgRole.Owner or OrgRole.Admin))
            {
                throw ApiProblem.Forbidden("Only owners and admins read an organization's audit log.");
            }
        }

        if (limit is < 1 or > AuditService.MaxPageSize)
        {
            throw ApiProblem.Invalid("limit", $"must be between 1 and {AuditService.MaxPageSize}");
        }

        var (entries, next) = await service.EntriesAsync(orgId, from, to, actor, action, after, limit, ct);
        return new AuditPage(entries.Select(AuditEntryResponse.From).ToList(), next);
    }
}
