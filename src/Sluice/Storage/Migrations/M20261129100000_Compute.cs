using Microsoft.EntityFrameworkCore.Infrastructure;
using Microsoft.EntityFrameworkCore.Migrations;

namespace Sluice.Storage.Migrations;

/// <summary>The compute plane's control side: machines, join tokens, tasks on machines and machine events.</summary>
[DbContext(typeof(SluiceDbContext))]
[Migration("20261129100000_Compute")]
internal sealed class M20261129100000_Compute : Migration
{
    protected override void Up(MigrationBuilder migrationBuilder)
    {
        migrationBuilder.CreateTable(
            name: "machines",
            columns: table => new
            {
                id = table.Column<Guid>(nullable: false),
                organization_id = table.Column<Guid>(nullable: true),
                hostname = table.Column<string>(maxLength: 253, nullable: false),
                serving_url = table.Column<string>(maxLength: 500, nullable: false),
                certificate_sha256 = table.Column<string>(maxLength: 64, nullable: false),
                credential_hash = table.Column<string>(maxLength: 64, nullable: false),
                credential_revoked_at = table.Timestamp(migrationBuilder, nullable: true),
                serving_token_sealed = table.Column<string>(maxLength: 200, nullable: false),
                state = table.Column<string>(maxLength: 16, nullable: false),
                liveness = table.Column<string>(maxLength: 16, nullable: false),
                inventory = table.Column<string>(nullable: false),
                agent_version = table.Column<string>(maxLength: 64, nullable: false),
                labels = table.Column<string>(nullable: false),
                join_token_id = table.Column<Guid>(nullable: false),
                joined_at = table.Timestamp(migrationBuilder),
                last_heartbeat_at = table.Timestamp(migrationBuilder, nullable: true),
                contact_at = table.Timestamp(migrationBuilder),
                state_changed_at = table.Timestamp(migrationBuilder),
                liveness_changed_at = table.Timestamp(migrationBuilder),
                task_version = table.Column<long>(nullable: false),
            },
            constraints: table => table.PrimaryKey("pk_machines", x => x.id));
        migrationBuilder.CreateIndex(name: "ix_machines_organization_id", table: "machines", column: "organization_id");
        migrationBuilder.CreateIndex(name: "ix_machines_liveness_contact_at", table: "machines", columns: ["liveness", "contact_at"]);

        migrationBuilder.CreateTable(
            name: "machine_join_tokens",
            columns: table => new
            {
                id = table.Column<Guid>(nullable: false),
                organization_id = table.Column<Guid>(nullable: true),
                token_hash = table.Column<string>(maxLength: 64, nullable: false),
                description = table.Column<string>(maxLength: 200, nullable: true),
                created_by = table.Column<string>(maxLength: 64, nullable: false),
                created_at = table.Timestamp(migrationBuilder),
                expires_at = table.Timestamp(migrationBuilder),
                used_at = table.Timestamp(migrationBuilder, nullable: true),
                machine_id = table.Column<Guid>(nullable: true),
                revoked_at = table.Timestamp(migrationBuilder, nullable: true),
                revoked_by = table.Column<string>(maxLength: 64, nullable: true),
            },
            constraints: table => table.PrimaryKey("pk_machine_join_tokens", x => x.id));
        migrationBuilder.CreateIndex(name: "ix_machine_join_tokens_token_hash", table: "machine_join_tokens", column: "token_hash", unique: true);
        migrationBuilder.CreateIndex(name: "ix_machine_join_tokens_organization_id_created_at", table: "machine_join_tokens", columns: ["organization_id", "created_at"]);

        migrationBuilder.CreateTable(
            name: "machine_tasks",
            columns: table => new
            {
                id = table.Column<Guid>(nullable: false),
                machine_id = table.Column<Guid>(nullable: false),
                organization_id = table.Column<Guid>(nullable: true),
                kind = table.Column<string>(maxLength: 16, nullable: false),
                runtime = table.Column<string>(maxLength: 16, nullable: false),
                gpu_indices = table.Column<string>(maxLength: 200, nullable: false),
                generation = table.Column<int>(nullable: false),
                desired = table.Column<string>(maxLength: 16, nullable: false),
                spec_sealed = table.Column<string>(maxLength: 200000, nullable: false),
                state = table.Column<string>(maxLength: 16, nullable: false),
                reason = table.Column<string>(maxLength: 32, nullable: true),
                reported_generation = table.Column<int>(nullable: false),
                restarts = table.Column<int>(nullable: false),
                exit_code = table.Column<int>(nullable: true),
                started_at = table.Timestamp(migrationBuilder, nullable: true),
                ready_at = table.Timestamp(migrationBuilder, nullable: true),
                reported_at = table.Timestamp(migrationBuilder, nullable: true),
                created_by = table.Column<string>(maxLength: 64, nullable: false),
                created_at = table.Timestamp(migrationBuilder),
                updated_at = table.Timestamp(migrationBuilder),
            },
            constraints: table => table.PrimaryKey("pk_machine_tasks", x => x.id));
        migrationBuilder.CreateIndex(name: "ix_machine_tasks_machine_id", table: "machine_tasks", column: "machine_id");

        migrationBuilder.CreateTable(
            name: "machine_events",
            columns: table => new
            {
                id = table.Column<Guid>(nullable: false),
                machine_id = table.Column<Guid>(nullable: false),
                at = table.Timestamp(migrationBuilder),
                kind = table.Column<string>(maxLength: 32, nullable: false),
                detail = table.Column<string>(maxLength: 200, nullable: true),
            },
            constraints: table => table.PrimaryKey("pk_machine_events", x => x.id));
        migrationBuilder.CreateIndex(name: "ix_machine_events_machine_id_at", table: "machine_events", columns: ["machine_id", "at"]);
    }
}
