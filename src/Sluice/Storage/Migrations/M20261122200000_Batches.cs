using Microsoft.EntityFrameworkCore.Infrastructure;
using Microsoft.EntityFrameworkCore.Migrations;

namespace Sluice.Storage.Migrations;

/// <summary>Files (metadata only: their bytes are encrypted on disk), batches, batch usage, and provider concurrency caps.</summary>
[DbContext(typeof(SluiceDbContext))]
[Migration("20261122200000_Batches")]
internal sealed class M20261122200000_Batches : Migration
{
    protected override void Up(MigrationBuilder migrationBuilder)
    {
        migrationBuilder.CreateTable(
            name: "files",
            columns: table => new
            {
                id = table.Column<Guid>(nullable: false),
                organization_id = table.Column<Guid>(nullable: false),
                created_by_key_id = table.Column<Guid>(nullable: true),
                purpose = table.Column<string>(maxLength: 32, nullable: false),
                filename = table.Column<string>(maxLength: 255, nullable: false),
                bytes = table.Column<long>(nullable: false),
                lines = table.Column<int>(nullable: false),
                created_at = table.Timestamp(migrationBuilder),
                expires_at = table.Timestamp(migrationBuilder),
            },
            constraints: table => table.PrimaryKey("pk_files", x => x.id));
        migrationBuilder.CreateIndex(name: "ix_files_organization_id_created_at", table: "files", columns: ["organization_id", "created_at"]);
        migrationBuilder.CreateIndex(name: "ix_files_expires_at", table: "files", column: "expires_at");

        migrationBuilder.CreateTable(
            name: "batches",
            columns: table => new
            {
                id = table.Column<Guid>(nullable: false),
                organization_id = table.Column<Guid>(nullable: false),
                key_id = table.Column<Guid>(nullable: false),
                endpoint = table.Column<string>(maxLength: 32, nullable: false),
                input_file_id = table.Column<Guid>(nullable: false),
                completion_window = table.Column<string>(maxLength: 8, nullable: false),
                status = table.Column<string>(maxLength: 16, nullable: false),
                output_file_id = table.Column<Guid>(nullable: true),
                error_file_id = table.Column<Guid>(nullable: true),
                errors = table.Column<string>(maxLength: 200_000, nullable: true),
                metadata = table.Column<string>(maxLength: 16_000, nullable: true),
                model = table.Column<string>(maxLength: 200, nullable: true),
                output_expires_after_seconds = table.Column<long>(nullable: true),
                total_requests = table.Column<int>(nullable: false),
                completed_requests = table.Column<int>(nullable: false),
                failed_requests = table.Column<int>(nullable: false),
                input_tokens = table.Column<long>(nullable: false),
                output_tokens = table.Column<long>(nullable: false),
                cached_tokens = table.Column<long>(nullable: false),
                created_at = table.Timestamp(migrationBuilder),
                expires_at = table.Timestamp(migrationBuilder),
                in_progress_at = table.Timestamp(migrationBuilder, nullable: true),
                finalizing_at = table.Timestamp(migrationBuilder, nullable: true),
                completed_at = table.Timestamp(migrationBuilder, nullable: true),
                failed_at = table.Timestamp(migrationBuilder, nullable: true),
                expired_at = table.Timestamp(migrationBuilder, nullable: true),
                cancelling_at = table.Timestamp(migrationBuilder, nullable: true),
                cancelled_at = table.Timestamp(migrationBuilder, nullable: true),
                lease_owner = table.Column<string>(maxLength: 64, nullable: true),
                lease_until = table.Timestamp(migrationBuilder, nullable: true),
            },
            constraints: table => table.PrimaryKey("pk_batches", x => x.id));
        migrationBuilder.CreateIndex(name: "ix_batches_organization_id_created_at", table: "batches", columns: ["organization_id", "created_at"]);
        migrationBuilder.CreateIndex(name: "ix_batches_status_lease_until", table: "batches", columns: ["status", "lease_until"]);

        migrationBuilder.AddColumn<Guid>(name: "batch_id", table: "usage_events", nullable: true);
        migrationBuilder.AddColumn<int>(name: "max_concurrent_requests", table: "providers", nullable: true);
    }
}
