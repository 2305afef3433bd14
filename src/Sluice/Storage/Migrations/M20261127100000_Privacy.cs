using Microsoft.EntityFrameworkCore.Infrastructure;
using Microsoft.EntityFrameworkCore.Migrations;

namespace Sluice.Storage.Migrations;

/// <summary>
/// The privacy engine: legal holds, data-subject requests, consent records, subprocessors, policy versions,
/// in-service notifications, staff access grants; closed/erased/restricted accounts; organizations' training consent.
/// </summary>
[DbContext(typeof(SluiceDbContext))]
[Migration("20261127100000_Privacy")]
internal sealed class M20261127100000_Privacy : Migration
{
    protected override void Up(MigrationBuilder migrationBuilder)
    {
        migrationBuilder.AddTimestampColumn(name: "closed_at", table: "users", nullable: true);
        migrationBuilder.AddTimestampColumn(name: "erased_at", table: "users", nullable: true);
        migrationBuilder.AddTimestampColumn(name: "processing_restricted_at", table: "users", nullable: true);
        migrationBuilder.AddColumn<bool>(name: "training_consent", table: "organizations", nullable: false, defaultValue: false);

        migrationBuilder.CreateTable(
            name: "legal_holds",
            columns: table => new
            {
                id = table.Column<Guid>(nullable: false),
                scope = table.Column<string>(maxLength: 8, nullable: false),
                organization_id = table.Column<Guid>(nullable: true),
                user_id = table.Column<Guid>(nullable: true),
                retention_class = table.Column<string>(maxLength: 32, nullable: true),
                reason = table.Column<string>(maxLength: 500, nullable: false),
                placed_by = table.Column<string>(maxLength: 64, nullable: false),
                placed_at = table.Timestamp(migrationBuilder),
                released_by = table.Column<string>(maxLength: 64, nullable: true),
                released_at = table.Timestamp(migrationBuilder, nullable: true),
                release_reason = table.Column<string>(maxLength: 500, nullable: true),
            },
            constraints: table => table.PrimaryKey("pk_legal_holds", x => x.id));
        migrationBuilder.CreateIndex(name: "ix_legal_holds_released_at", table: "legal_holds", column: "released_at");

        migrationBuilder.CreateTable(
            name: "privacy_requests",
            columns: table => new
            {
                id = table.Column<Guid>(nullable: false),
                user_id = table.Column<Guid>(nullable: false),
                type = table.Column<string>(maxLength: 16, nullable: false),
                status = table.Column<string>(maxLength: 24, nullable: false),
                details = table.Column<string>(maxLength: 2000, nullable: true),
                verification_code_hash = table.Column<string>(maxLength: 64, nullable: true),
                verification_code_expires_at = table.Timestamp(migrationBuilder, nullable: true),
                verification_attempts = table.Column<int>(nullable: false),
                verification_method = table.Column<string>(maxLength: 16, nullable: true),
                verified_at = table.Timestamp(migrationBuilder, nullable: true),
                created_at = table.Timestamp(migrationBuilder),
                due_at = table.Timestamp(migrationBuilder),
                decided_by = table.Column<string>(maxLength: 64, nullable: true),
                decided_at = table.Timestamp(migrationBuilder, nullable: true),
                decision_reason = table.Column<string>(maxLength: 1000, nullable: true),
                appeal_reason = table.Column<string>(maxLength: 1000, nullable: true),
                appealed_at = table.Timestamp(migrationBuilder, nullable: true),
                completed_at = table.Timestamp(migrationBuilder, nullable: true),
                export_available_until = table.Timestamp(migrationBuilder, nullable: true),
            },
            constraints: table => table.PrimaryKey("pk_privacy_requests", x => x.id));
        migrationBuilder.CreateIndex(name: "ix_privacy_requests_user_id_created_at", table: "privacy_requests", columns: ["user_id", "created_at"]);
        migrationBuilder.CreateIndex(name: "ix_privacy_requests_status_due_at", table: "privacy_requests", columns: ["status", "due_at"]);

        migrationBuilder.CreateTable(
            name: "consent_records",
            columns: table => new
            {
                id = table.Column<Guid>(nullable: false),
                user_id = table.Column<Guid>(nullable: true),
                organization_id = table.Column<Guid>(nullable: true),
                purpose = table.Column<string>(maxLength: 16, nullable: false),
                granted = table.Column<bool>(nullable: false),
                version = table.Column<int>(nullable: false),
                policy_version = table.Column<int>(nullable: false),
                recorded_by = table.Column<string>(maxLength: 64, nullable: false),
                recorded_at = table.Timestamp(migrationBuilder),
            },
            constraints: table => table.PrimaryKey("pk_consent_records", x => x.id));
        migrationBuilder.CreateIndex(name: "ix_consent_records_user_id_purpose_version", table: "consent_records", columns: ["user_id", "purpose", "version"]);
        migrationBuilder.CreateIndex(name: "ix_consent_records_organization_id_purpose_version", table: "consent_records", columns: ["organization_id", "purpose", "version"]);

        migrationBuilder.CreateTable(
            name: "subprocessors",
            columns: table => new
            {
                id = table.Column<Guid>(nullable: false),
                name = table.Column<string>(maxLength: 200, nullable: false),
                purpose = table.Column<string>(maxLength: 500, nullable: false),
                location = table.Column<string>(maxLength: 200, nullable: false),
                created_at = table.Timestamp(migrationBuilder),
                updated_at = table.Timestamp(migrationBuilder),
            },
            constraints: table => table.PrimaryKey("pk_subprocessors", x => x.id));
        migrationBuilder.CreateIndex(name: "ix_subprocessors_name", table: "subprocessors", column: "name", unique: true);

        migrationBuilder.CreateTable(
            name: "policy_versions",
            columns: table => new
            {
                version = table.Column<int>(nullable: false),
                fingerprint = table.Column<string>(maxLength: 64, nullable: false),
                sections = table.Column<string>(maxLength: 1000, nullable: false),
                changed_sections = table.Column<string>(maxLength: 500, nullable: false),
                published_at = table.Timestamp(migrationBuilder),
            },
            constraints: table => table.PrimaryKey("pk_policy_versions", x => x.version));

        migrationBuilder.CreateTable(
            name: "notifications",
            columns: table => new
            {
                id = table.Column<Guid>(nullable: false),
                user_id = table.Column<Guid>(nullable: false),
                organization_id = table.Column<Guid>(nullable: true),
                kind = table.Column<string>(maxLength: 32, nullable: false),
                subject = table.Column<string>(maxLength: 200, nullable: false),
                body = table.Column<string>(maxLength: 4000, nullable: false),
                created_at = table.Timestamp(migrationBuilder),
                read_at = table.Timestamp(migrationBuilder, nullable: true),
            },
            constraints: table => table.PrimaryKey("pk_notifications", x => x.id));
        migrationBuilder.CreateIndex(name: "ix_notifications_user_id_created_at", table: "notifications", columns: ["user_id", "created_at"]);
        migrationBuilder.CreateIndex(name: "ix_notifications_created_at", table: "notifications", column: "created_at");

        migrationBuilder.CreateTable(
            name: "staff_access_grants",
            columns: table => new
            {
                id = table.Column<Guid>(nullable: false),
                organization_id = table.Column<Guid>(nullable: false),
                operator_user_id = table.Column<Guid>(nullable: false),
                reason = table.Column<string>(maxLength: 500, nullable: false),
                duration_seconds = table.Column<long>(nullable: false),
                status = table.Column<string>(maxLength: 16, nullable: false),
                requested_at = table.Timestamp(migrationBuilder),
                decided_by_user_id = table.Column<Guid>(nullable: true),
                decided_at = table.Timestamp(migrationBuilder, nullable: true),
                expires_at = table.Timestamp(migrationBuilder, nullable: true),
            },
            constraints: table => table.PrimaryKey("pk_staff_access_grants", x => x.id));
        migrationBuilder.CreateIndex(name: "ix_staff_access_grants_organization_id_requested_at", table: "staff_access_grants", columns: ["organization_id", "requested_at"]);
    }
}
