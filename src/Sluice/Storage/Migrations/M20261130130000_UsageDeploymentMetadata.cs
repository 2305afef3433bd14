using Microsoft.EntityFrameworkCore.Infrastructure;
using Microsoft.EntityFrameworkCore.Migrations;

namespace Sluice.Storage.Migrations;

/// <summary>
/// A usage event names the deployment that served it, how long it waited for a ready replica and whether it met a cold
/// start (null for every other target), indexed for a deployment's statistics.
/// </summary>
[DbContext(typeof(SluiceDbContext))]
[Migration("20261130130000_UsageDeploymentMetadata")]
internal sealed class M20261130130000_UsageDeploymentMetadata : Migration
{
    protected override void Up(MigrationBuilder migrationBuilder)
    {
        migrationBuilder.AddColumn<Guid>(name: "deployment_id", table: "usage_events", nullable: true);
        migrationBuilder.AddColumn<long>(name: "queue_wait_micros", table: "usage_events", nullable: true);
        migrationBuilder.AddColumn<bool>(name: "cold_start", table: "usage_events", nullable: true);
        migrationBuilder.CreateIndex(name: "ix_usage_events_deployment_id_started_at", table: "usage_events", columns: ["deployment_id", "started_at"]);
    }
}
