using Microsoft.EntityFrameworkCore.Infrastructure;
using Microsoft.EntityFrameworkCore.Migrations;

namespace Sluice.Storage.Migrations;

/// <summary>Organizations, memberships, invitations, sessions, login events and API keys; age attestation on users.</summary>
[DbContext(typeof(SluiceDbContext))]
[Migration("20261122110000_Identity")]
internal sealed class M20261122110000_Identity : Migration
{
    protected override void Up(MigrationBuilder migrationBuilder)
    {
        migrationBuilder.AddColumn<int>(name: "attested_minimum_age", table: "users", nullable: true);
        migrationBuilder.AddTimestampColumn(name: "age_attested_at", table: "users", nullable: true);

        migrationBuilder.CreateTable(
            name: "organizations",
            columns: table => new
            {
                id = table.Column<Guid>(nullable: false),
                name = table.Column<string>(maxLength: 200, nullable: false),
                billing_email = table.Column<string>(maxLength: 320, nullable: true),
                created_at = table.Timestamp(migrationBuilder),
                updated_at = table.Timestamp(migrationBuilder),
            },
            constraints: table => table.PrimaryKey("pk_organizations", x => x.id));

        migrationBuilder.CreateTable(
            name: "memberships",
            columns: table => new
            {
                organization_id = table.Column<Guid>(nullable: false),
                user_id = table.Column<Guid>(nullable: false),
                role = table.Column<string>(maxLength: 16, nullable: false),
                created_at = table.Timestamp(migrationBuilder),
            },
            constraints: table =>
            {
                table.PrimaryKey("pk_memberships", x => new { x.organization_id, x.user_id });
                table.ForeignKey("fk_memberships_organizations_organization_id", x => x.organization_id, "organizations", "id", onDelete: ReferentialAction.Cascade);
                table.ForeignKey("fk_memberships_users_user_id", x => x.user_id, "users", "id", onDelete: ReferentialAction.Cascade);
            });
        migrationBuilder.CreateIndex(name: "ix_memberships_user_id", table: "memberships", column: "user_id");

        migrationBuilder.CreateTable(
            name: "invitations",
            columns: table => new
            {
                id = table.Column<Guid>(nullable: false),
                organization_id = table.Column<Guid>(nullable: false),
                email = table.Column<string>(maxLength: 320, nullable: false),
                role = table.Column<string>(maxLength: 16, nullable: false),
                token_hash = table.Column<string>(maxLength: 64, nullable: false),
                expires_at = table.Timestamp(migrationBuilder),
                created_by_user_id = table.Column<Guid>(nullable: false),
                created_at = table.Timestamp(migrationBuilder),
                accepted_at = table.Timestamp(migrationBuilder, nullable: true),
                accepted_by_user_id = table.Column<Guid>(nullable: true),
                revoked_at = table.Timestamp(migrationBuilder, nullable: true),
            },
            constraints: table =>
            {
                table.PrimaryKey("pk_invitations", x => x.id);
                table.ForeignKey("fk_invitations_organizations_organization_id", x => x.organization_id, "organizations", "id", onDelete: ReferentialAction.Cascade);
            });
        migrationBuilder.CreateIndex(name: "ix_invitations_token_hash", table: "invitations", column: "token_hash", unique: true);
        migrationBuilder.CreateIndex(name: "ix_invitations_organization_id", table: "invitations", column: "organization_id");

        migrationBuilder.CreateTable(
            name: "sessions",
            columns: table => new
            {
                id = table.Column<Guid>(nullable: false),
                token_hash = table.Column<string>(maxLength: 64, nullable: false),
                user_id = table.Column<Guid>(nullable: false),
                created_at = table.Timestamp(migrationBuilder),
                expires_at = table.Timestamp(migrationBuilder),
                revoked_at = table.Timestamp(migrationBuilder, nullable: true),
            },
            constraints: table =>
            {
                table.PrimaryKey("pk_sessions", x => x.id);
                table.ForeignKey("fk_sessions_users_user_id", x => x.user_id, "users", "id", onDelete: ReferentialAction.Cascade);
            });
        migrationBuilder.CreateIndex(name: "ix_sessions_token_hash", table: "sessions", column: "token_hash", unique: true);
        migrationBuilder.CreateIndex(name: "ix_sessions_user_id", table: "sessions", column: "user_id");

        migrationBuilder.CreateTable(
            name: "login_events",
            columns: table => new
            {
                id = table.Column<Guid>(nullable: false),
                user_id = table.Column<Guid>(nullable: true),
                occurred_at = table.Timestamp(migrationBuilder),
                ip_address = table.Column<string>(maxLength: 45, nullable: true),
                user_agent = table.Column<string>(maxLength: 256, nullable: true),
                outcome = table.Column<string>(maxLength: 32, nullable: false),
            },
            constraints: table => table.PrimaryKey("pk_login_events", x => x.id));
        migrationBuilder.CreateIndex(name: "ix_login_events_user_id_occurred_at", table: "login_events", columns: ["user_id", "occurred_at"]);
        migrationBuilder.CreateIndex(name: "ix_login_events_occurred_at", table: "login_events", column: "occurred_at");

        migrationBuilder.CreateTable(
            name: "api_keys",
            columns: table => new
            {
                id = table.Column<Guid>(nullable: false),
                organization_id = table.Column<Guid>(nullable: false),
                created_by_user_id = table.Column<Guid>(nullable: true),
                name = table.Column<string>(maxLength: 100, nullable: false),
                prefix = table.Column<string>(maxLength: 32, nullable: false),
                secret_hash = table.Column<string>(maxLength: 100, nullable: false),
                previous_prefix = table.Column<string>(maxLength: 32, nullable: true),
                previous_secret_hash = table.Column<string>(maxLength: 100, nullable: true),
                previous_valid_until = table.Timestamp(migrationBuilder, nullable: true),
                scopes = table.Column<int>(nullable: false),
                allowed_models = table.Column<string>(maxLength: 4000, nullable: true),
                expires_at = table.Timestamp(migrationBuilder, nullable: true),
                spend_limit_daily_micros = table.Column<long>(nullable: true),
                spend_limit_monthly_micros = table.Column<long>(nullable: true),
                spend_limit_total_micros = table.Column<long>(nullable: true),
                requests_per_minute = table.Column<int>(nullable: true),
                tokens_per_minute = table.Column<int>(nullable: true),
                last_used_at = table.Timestamp(migrationBuilder, nullable: true),
                revoked_at = table.Timestamp(migrationBuilder, nullable: true),
                created_at = table.Timestamp(migrationBuilder),
                updated_at = table.Timestamp(migrationBuilder),
            },
            constraints: table =>
            {
                table.PrimaryKey("pk_api_keys", x => x.id);
                table.ForeignKey("fk_api_keys_organizations_organization_id", x => x.organization_id, "organizations", "id", onDelete: ReferentialAction.Cascade);
            });
        migrationBuilder.CreateIndex(name: "ix_api_keys_prefix", table: "api_keys", column: "prefix");
        migrationBuilder.CreateIndex(name: "ix_api_keys_previous_prefix", table: "api_keys", column: "previous_prefix");
        migrationBuilder.CreateIndex(name: "ix_api_keys_organization_id", table: "api_keys", column: "organization_id");
        migrationBuilder.CreateIndex(name: "ix_api_keys_updated_at", table: "api_keys", column: "updated_at");
    }
}
