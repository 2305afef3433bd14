using Microsoft.EntityFrameworkCore;
using Sluice.Hosting;
using Sluice.Identity;
using Sluice.Storage;

namespace Sluice.Deployments.Routing;

/// <summary>Percentiles of one measure, in microseconds; null when nothing was measured.</summary>
public sealed record Percentiles(int Count, long P50, long P90, long P99);

/// <summary>
/// <c>GET /api/v1/deployments/{id}/stats?from&amp;to</c>: what a deployment's callers met in a window, from usage events
/// (requests, errors, requests that met a cold start, their queue wait) and from its replicas (cold starts and how long
/// each took, CreatedAt → ReadyAt of replicas started for a waiting request).
/// </summary>
public sealed record DeploymentStats(
    Guid DeploymentId,
    DateTimeOffset From,
    DateTimeOffset To,
    long Requests,
    long Errors,
    long ColdStartRequests,
    Percentiles? QueueWaitMicros,
    int ColdStarts,
    Percentiles? ColdStartMicros);

internal static class DeploymentStatsEndpoints
{
    /// <summary>The longest window one stats request may cover.</summary>
    public static readonly TimeSpan MaxWindow = TimeSpan.FromDays(93);

    public static IEndpointRouteBuilder MapDeploymentStats(this IEndpointRouteBuilder endpoints)
    {
        endpoints.MapGet("/api/v1/deployments/{id:guid}/stats", StatsAsync).WithTags("deployments").RequireAuthorization(Policies.User);
        return endpoints;
    }

    private static async Task<DeploymentStats> StatsAsync(
        Guid id, string? from, string? to, HttpContext http, SluiceDbContext db, TimeProvider time, CancellationToken cancellationToken)
    {
        var end = Time(to, "to") ?? time.GetUtcNow();
        if (end < DateTimeOffset.UnixEpoch.AddDays(1))
        {
            throw ApiProblem.Invalid("to", "must be a time after 1970"); // and a default window before it must exist
        }

        var start = Time(from, "from") ?? end - TimeSpan.FromDays(1);
        if (start >= end)
        {
            throw ApiProblem.Invalid("from", "must be before to");
        }

        if (end - start > MaxWindow)
        {
            throw ApiProblem.Invalid("from", $"the window from 'from' to 'to' must be at most {MaxWindow.TotalDays} days");
        }

        var deployment = await db.Deployments.AsNoTracking().Where(d => d.Id == id).Select(d => new { d.OrganizationId }).SingleOrDefaultAsync(cancellationToken)
            ?? throw ApiProblem.NotFound("deployment");
        var caller = http.Caller();
        if (!caller.IsOperator)
        {
            // Members of the owning organization, any role; anyone else is told it does not exist.
            var user = caller.UserId;
            var member = user is not null && await db.Memberships.AsNoTracking()
                .AnyAsync(m => m.OrganizationId == deployment.OrganizationId && m.UserId == user && db.Users.Any(u => u.Id == user && u.ClosedAt == null), cancellationToken);
            if (!member)
            {
                throw ApiProblem.NotFound("deployment");
            }
        }

        var events = db.UsageEvents.AsNoTracking().Where(e => e.DeploymentId == id && e.StartedAt >= start && e.StartedAt < end);
        var requests = await events.LongCountAsync(cancellationToken);
        var errors = await events.LongCountAsync(e => e.Status >= 400, cancellationToken);
        var waits = await events.Where(e => e.ColdStart == true && e.QueueWaitMicros != null).Select(e => e.QueueWaitMicros!.Value).ToListAsync(cancellationToken);

        // Cold starts: replicas started for a waiting request, created in the window; their time is creation to ready.
        var coldReplicas = await db.DeploymentReplicas.AsNoTracking()
            .Where(r => r.DeploymentId == id && r.ColdStart && r.CreatedAt >= start && r.CreatedAt < end)
            .Select(r => new { r.CreatedAt, r.ReadyAt })
            .ToListAsync(cancellationToken);
        var coldTimes = coldReplicas.Where(r => r.ReadyAt is not null).Select(r => (long)(r.ReadyAt!.Value - r.CreatedAt).TotalMicroseconds).ToList();

        return new DeploymentStats(id, start, end, requests, errors, waits.Count, Of(waits), coldReplicas.Count, Of(coldTimes));
    }

    private static DateTimeOffset? Time(string? value, string field) =>
        string.IsNullOrEmpty(value) ? null
        : DateTimeOffset.TryParse(value, System.Globalization.CultureInfo.InvariantCulture, System.Globalization.DateTimeStyles.AssumeUniversal, out var parsed) ? parsed
        : throw ApiProblem.Invalid(field, "must be a time in ISO 8601 form (2026-11-30T12:00:00Z)");

    /// <summary>Nearest-rank percentiles (each one a value that was measured).</summary>
    internal static Percentiles? Of(List<long> values)
    {
        if (values.Count == 0)
        {
            return null;
        }

        values.Sort();
        long Rank(int p) => values[Math.Clamp((int)Math.Ceiling(p / 100.0 * values.Count) - 1, 0, values.Count - 1)];
        return new Percentiles(values.Count, Rank(50), Rank(90), Rank(99));
    }
}
