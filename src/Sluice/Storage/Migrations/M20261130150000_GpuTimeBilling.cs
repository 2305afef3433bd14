using Microsoft.EntityFrameworkCore.Infrastructure;
using Microsoft.EntityFrameworkCore.Migrations;

namespace Sluice.Storage.Migrations;

/// <summary>GPU-time billing for deployments: prices per GPU-hour by GPU type (versioned) and the per-replica charge records.</summary>
[DbContext(typeof(SluiceDbContext))]
[Migration("20261130150000_GpuTimeBilling")]
internal sealed class M20261130150000_GpuTimeBilling : Migration
{
    protected override void Up(MigrationBuilder migrationBuilder)
    {
        migrationBuilder.CreateTable(
            name: "gpu_prices",
            columns: table => new
            {
                id = table.Column<Guid>(nullable: false),
                gpu_type = table.Column<string>(maxLength: 100, nullable: false),
                per_gpu_hour_micros = table.Column<long>(nullable: false),
                effective_from = table.Timestamp(migrationBuilder),
                created_at = table.Timestamp(migrationBuilder),
            },
            constraints: table => table.PrimaryKey("pk_gpu_prices", x => x.id));
        migrationBuilder.CreateIndex(name: "ix_gpu_prices_gpu_type_effective_from", table: "gpu_prices", columns: ["gpu_type", "effective_from"]);

        migrationBuilder.CreateTable(
            name: "deployment_charges",
            columns: table => new
            {
                id = table.Column<Guid>(nullable: false),
                replica_id = table.Column<Guid>(nullable: false),
                deployment_id = table.Column<Guid>(nullable: false),
                organization_id = table.Column<Guid>(nullable: false),
                from = table.Timestamp(migrationBuilder),
                to = table.Timestamp(migrationBuilder),
                seconds = table.Column<long>(nullable: false),
                gpu_type = table.Column<string>(maxLength: 100, nullable: true),
                gpu_count = table.Column<int>(nullable: false),
                per_gpu_hour_micros = table.Column<long>(nullable: false),
                cost_micros = table.Column<long>(nullable: false),
                uncollected_micros = table.Column<long>(nullable: false),
                ledger_key = table.Column<string>(maxLength: 200, nullable: true),
                meter = table.Column<string>(maxLength: 64, nullable: false),
                created_at = table.Timestamp(migrationBuilder),
            },
            constraints: table => table.PrimaryKey("pk_deployment_charges", x => x.id));
        migrationBuilder.CreateIndex(name: "ix_deployment_charges_replica_id_to", table: "deployment_charges", columns: ["replica_id", "to"]);
        migrationBuilder.CreateIndex(name: "ix_deployment_charges_organization_id_created_at", table: "deployment_charges", columns: ["organization_id", "created_at"]);
        migrationBuilder.CreateIndex(name: "ix_deployment_charges_deployment_id_created_at", table: "deployment_charges", columns: ["deployment_id", "created_at"]);
    }
}
