using Microsoft.EntityFrameworkCore.Infrastructure;
using Microsoft.EntityFrameworkCore.Migrations;

namespace Sluice.Storage.Migrations;

/// <summary>Deployments: an organization's models on machines, their replicas (tasks) and their events.</summary>
[DbContext(typeof(SluiceDbContext))]
[Migration("20261130100000_Deployments")]
internal sealed class M20261130100000_Deployments : Migration
{
    protected override void Up(MigrationBuilder migrationBuilder)
    {
        migrationBuilder.CreateTable(
            name: "deployments",
            columns: table => new
            {
                id = table.Column<Guid>(nullable: false),
                organization_id = table.Column<Guid>(nullable: false),
                name = table.Column<string>(maxLength: 100, nullable: false),
                description = table.Column<string>(maxLength: 500, nullable: true),
                engine = table.Column<string>(maxLength: 32, nullable: false),
                artifact_kind = table.Column<string>(maxLength: 16, nullable: false),
                artifact = table.Column<string>(maxLength: 1000, nullable: true),
                gpu_type = table.Column<string>(maxLength: 100, nullable: true),
                gpus_per_replica = table.Column<int>(nullable: false),
                min_replicas = table.Column<int>(nullable: false),
                max_replicas = table.Column<int>(nullable: false),
                target_concurrency = table.Column<int>(nullable: false),
                idle_timeout_seconds = table.Column<int>(nullable: false),
                scale_down_delay_seconds = table.Column<int>(nullable: false),
                launch_json = table.Column<string>(nullable: false),
                secrets_sealed = table.Column<string>(nullable: true),
                generation = table.Column<int>(nullable: false),
                desired_replicas = table.Column<int>(nullable: false),
                status = table.Column<string>(maxLength: 32, nullable: false),
                status_reason = table.Column<string>(maxLength: 300, nullable: true),
                @public = table.Column<bool>(nullable: false),
                input_per_million_micros = table.Column<long>(nullable: true),
                output_per_million_micros = table.Column<long>(nullable: true),
                created_by = table.Column<string>(maxLength: 64, nullable: false),
                created_at = table.Timestamp(migrationBuilder),
                updated_at = table.Timestamp(migrationBuilder),
                deleted_at = table.Timestamp(migrationBuilder, nullable: true),
            },
            constraints: table => table.PrimaryKey("pk_deployments", x => x.id));
        migrationBuilder.CreateIndex(name: "ix_deployments_organization_id_name", table: "deployments", columns: ["organization_id", "name"]);
        migrationBuilder.CreateIndex(name: "ix_deployments_public", table: "deployments", column: "public");

        migrationBuilder.CreateTable(
            name: "deployment_replicas",
            columns: table => new
            {
                id = table.Column<Guid>(nullable: false),
                deployment_id = table.Column<Guid>(nullable: false),
                organization_id = table.Column<Guid>(nullable: false),
                generation = table.Column<int>(nullable: false),
                machine_id = table.Column<Guid>(nullable: false),
                task_id = table.Column<Guid>(nullable: false),
                gpu_type = table.Column<string>(maxLength: 100, nullable: true),
                gpu_count = table.Column<int>(nullable: false),
                state = table.Column<string>(maxLength: 16, nullable: false),
                reason = table.Column<string>(maxLength: 64, nullable: true),
                cold_start = table.Column<bool>(nullable: false),
                created_at = table.Timestamp(migrationBuilder),
                ready_at = table.Timestamp(migrationBuilder, nullable: true),
                draining_at = table.Timestamp(migrationBuilder, nullable: true),
                stopped_at = table.Timestamp(migrationBuilder, nullable: true),
                billed_through = table.Timestamp(migrationBuilder, nullable: true),
            },
            constraints: table => table.PrimaryKey("pk_deployment_replicas", x => x.id));
        migrationBuilder.CreateIndex(name: "ix_deployment_replicas_deployment_id_state", table: "deployment_replicas", columns: ["deployment_id", "state"]);
        migrationBuilder.CreateIndex(name: "ix_deployment_replicas_task_id", table: "deployment_replicas", column: "task_id", unique: true);
        migrationBuilder.CreateIndex(name: "ix_deployment_replicas_machine_id", table: "deployment_replicas", column: "machine_id");

        migrationBuilder.CreateTable(
            name: "deployment_events",
            columns: table => new
            {
                id = table.Column<Guid>(nullable: false),
                deployment_id = table.Column<Guid>(nullable: false),
                at = table.Timestamp(migrationBuilder),
                kind = table.Column<string>(maxLength: 32, nullable: false),
                detail = table.Column<string>(maxLength: 2000, nullable: true),
            },
            constraints: table => table.PrimaryKey("pk_deployment_events", x => x.id));
        migrationBuilder.CreateIndex(name: "ix_deployment_events_deployment_id_at", table: "deployment_events", columns: ["deployment_id", "at"]);
    }
}
