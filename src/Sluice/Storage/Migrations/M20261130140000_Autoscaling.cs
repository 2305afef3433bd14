using Microsoft.EntityFrameworkCore.Infrastructure;
using Microsoft.EntityFrameworkCore.Migrations;

namespace Sluice.Storage.Migrations;

/// <summary>
/// Autoscaling: the load each server replica sees on deployments, the deciding replica's lease, and the agent-seen
/// requests in flight and engine queue depth of each task.
/// </summary>
[DbContext(typeof(SluiceDbContext))]
[Migration("20261130140000_Autoscaling")]
internal sealed class M20261130140000_Autoscaling : Migration
{
    protected override void Up(MigrationBuilder migrationBuilder)
    {
        migrationBuilder.AddColumn<int>(name: "in_flight", table: "machine_tasks", nullable: true);
        migrationBuilder.AddColumn<int>(name: "queue_depth", table: "machine_tasks", nullable: true);

        migrationBuilder.CreateTable(
            name: "deployment_load_reports",
            columns: table => new
            {
                server_id = table.Column<Guid>(nullable: false),
                deployment_id = table.Column<Guid>(nullable: false),
                in_flight = table.Column<int>(nullable: false),
                waiting = table.Column<int>(nullable: false),
                last_request_at = table.Timestamp(migrationBuilder, nullable: true),
                reported_at = table.Timestamp(migrationBuilder),
            },
            constraints: table => table.PrimaryKey("pk_deployment_load_reports", x => new { x.server_id, x.deployment_id }));
        migrationBuilder.CreateIndex(name: "ix_deployment_load_reports_deployment_id", table: "deployment_load_reports", column: "deployment_id");

        migrationBuilder.CreateTable(
            name: "autoscaler_leases",
            columns: table => new
            {
                name = table.Column<string>(maxLength: 64, nullable: false),
                holder = table.Column<Guid>(nullable: false),
                expires_at = table.Timestamp(migrationBuilder),
            },
            constraints: table => table.PrimaryKey("pk_autoscaler_leases", x => x.name));
    }
}
