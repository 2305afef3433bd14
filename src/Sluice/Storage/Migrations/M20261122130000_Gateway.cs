using Microsoft.EntityFrameworkCore.Infrastructure;
using Microsoft.EntityFrameworkCore.Migrations;

namespace Sluice.Storage.Migrations;

/// <summary>Providers, the model catalog and its routes, usage events; organizations' data policy and rate limits.</summary>
[DbContext(typeof(SluiceDbContext))]
[Migration("20261122130000_Gateway")]
internal sealed class M20261122130000_Gateway : Migration
{
    protected override void Up(MigrationBuilder migrationBuilder)
    {
        migrationBuilder.AddColumn<bool>(name: "require_zero_retention", table: "organizations", nullable: false, defaultValue: false);
        migrationBuilder.AddColumn<bool>(name: "require_no_training", table: "organizations", nullable: false, defaultValue: false);
        migrationBuilder.AddColumn<int>(name: "requests_per_minute", table: "organizations", nullable: true);
        migrationBuilder.AddColumn<int>(name: "tokens_per_minute", table: "organizations", nullable: true);

        migrationBuilder.CreateTable(
            name: "providers",
            columns: table => new
            {
                id = table.Column<Guid>(nullable: false),
                name = table.Column<string>(maxLength: 100, nullable: false),
                kind = table.Column<string>(maxLength: 32, nullable: false),
                base_url = table.Column<string>(maxLength: 500, nullable: false),
                api_key_ciphertext = table.Column<string>(maxLength: 2000, nullable: true),
                extra_headers = table.Column<string>(maxLength: 4000, nullable: true),
                created_at = table.Timestamp(migrationBuilder),
                updated_at = table.Timestamp(migrationBuilder),
            },
            constraints: table => table.PrimaryKey("pk_providers", x => x.id));
        migrationBuilder.CreateIndex(name: "ix_providers_name", table: "providers", column: "name", unique: true);

        migrationBuilder.CreateTable(
            name: "catalog_models",
            columns: table => new
            {
                id = table.Column<string>(maxLength: 200, nullable: false),
                description = table.Column<string>(maxLength: 500, nullable: true),
                created_at = table.Timestamp(migrationBuilder),
            },
            constraints: table => table.PrimaryKey("pk_catalog_models", x => x.id));

        migrationBuilder.CreateTable(
            name: "model_routes",
            columns: table => new
            {
                id = table.Column<Guid>(nullable: false),
                model_id = table.Column<string>(maxLength: 200, nullable: false),
                provider_id = table.Column<Guid>(nullable: false),
                upstream_model = table.Column<string>(maxLength: 200, nullable: false),
                priority = table.Column<int>(nullable: false),
                weight = table.Column<int>(nullable: false),
                retains_data = table.Column<bool>(nullable: false),
                trains_on_data = table.Column<bool>(nullable: false),
                created_at = table.Timestamp(migrationBuilder),
            },
            constraints: table =>
            {
                table.PrimaryKey("pk_model_routes", x => x.id);
                table.ForeignKey("fk_model_routes_catalog_models_model_id", x => x.model_id, "catalog_models", "id", onDelete: ReferentialAction.Cascade);
                table.ForeignKey("fk_model_routes_providers_provider_id", x => x.provider_id, "providers", "id", onDelete: ReferentialAction.Restrict);
            });
        migrationBuilder.CreateIndex(name: "ix_model_routes_model_id", table: "model_routes", column: "model_id");
        migrationBuilder.CreateIndex(name: "ix_model_routes_provider_id", table: "model_routes", column: "provider_id");

        migrationBuilder.CreateTable(
            name: "usage_events",
            columns: table => new
            {
                id = table.Column<Guid>(nullable: false),
                request_id = table.Column<string>(maxLength: 64, nullable: false),
                organization_id = table.Column<Guid>(nullable: true),
                key_id = table.Column<Guid>(nullable: true),
                endpoint = table.Column<string>(maxLength: 32, nullable: false),
                model = table.Column<string>(maxLength: 200, nullable: true),
                route_id = table.Column<Guid>(nullable: true),
                status = table.Column<int>(nullable: false),
                error_type = table.Column<string>(maxLength: 64, nullable: true),
                stream = table.Column<bool>(nullable: false),
                attempts = table.Column<int>(nullable: false),
                prompt_tokens = table.Column<long>(nullable: false),
                completion_tokens = table.Column<long>(nullable: false),
                cached_tokens = table.Column<long>(nullable: false),
                request_bytes = table.Column<long>(nullable: false),
                response_bytes = table.Column<long>(nullable: false),
                latency_micros = table.Column<long>(nullable: false),
                time_to_first_token_micros = table.Column<long>(nullable: true),
                started_at = table.Timestamp(migrationBuilder),
            },
            constraints: table => table.PrimaryKey("pk_usage_events", x => x.id));
        migrationBuilder.CreateIndex(name: "ix_usage_events_organization_id_started_at", table: "usage_events", columns: ["organization_id", "started_at"]);
        migrationBuilder.CreateIndex(name: "ix_usage_events_started_at", table: "usage_events", column: "started_at");
    }
}
