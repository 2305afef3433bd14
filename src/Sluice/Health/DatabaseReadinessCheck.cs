using Microsoft.Extensions.Diagnostics.HealthChecks;
using Sluice.Storage;

namespace Sluice.Health;

/// <summary>
/// Ready when the database answers and its schema is exactly the one this binary expects. A database that does not
/// answer is <em>degraded</em>, not failing: every replica shares it, so failing readiness would take them all out of
/// the load balancer at once, while a replica still serves cached callers and answers the rest 503 with Retry-After
/// (docs/operations.md, "Database outages"). A schema this binary does not match is failing.
/// </summary>
internal sealed class DatabaseReadinessCheck(SluiceDbContext db, SchemaMigrator migrator) : IHealthCheck
{
    public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        try
        {
            if (!await db.Database.CanConnectAsync(cancellationToken))
            {
                return HealthCheckResult.Degraded("database unreachable");
            }

            var status = await migrator.GetStatusAsync(cancellationToken);
            if (status.IsNewerThanBinary)
            {
                return HealthCheckResult.Unhealthy($"schema {status.Version} is newer than this binary");
            }

            return status.Pending.Count > 0
                ? HealthCheckResult.Unhealthy($"{status.Pending.Count} migration(s) pending")
                : HealthCheckResult.Healthy($"schema {status.Version}");
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            // The exception type only: driver messages can name hosts and users, which a probe endpoint need not show.
            return Storage.DatabaseFailures.IsUnavailable(ex)
                ? HealthCheckResult.Degraded($"database unreachable ({ex.GetType().Name})")
                : HealthCheckResult.Unhealthy($"database error ({ex.GetType().Name})");
        }
    }
}
