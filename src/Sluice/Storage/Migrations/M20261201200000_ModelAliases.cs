using Microsoft.EntityFrameworkCore.Infrastructure;
using Microsoft.EntityFrameworkCore.Migrations;

namespace Sluice.Storage.Migrations;

/// <summary>Aliases of catalog models: other names a /v1 call may use for a model (deleted with it).</summary>
[DbContext(typeof(SluiceDbContext))]
[Migration("20261201200000_ModelAliases")]
internal sealed class M20261201200000_ModelAliases : Migration
{
    protected override void Up(MigrationBuilder migrationBuilder)
    {
        migrationBuilder.CreateTable(
            name: "catalog_model_aliases",
            columns: table => new
            {
                alias = table.Column<string>(maxLength: 200, nullable: false),
                model_id = table.Column<string>(maxLength: 200, nullable: false),
                created_at = table.Timestamp(migrationBuilder),
            },
            constraints: table =>
            {
                table.PrimaryKey("pk_catalog_model_aliases", x => x.alias);
                table.ForeignKey("fk_catalog_model_aliases_catalog_models_model_id", x => x.model_id, "catalog_models", "id", onDelete: ReferentialAction.Cascade);
            });
        migrationBuilder.CreateIndex(name: "ix_catalog_model_aliases_model_id", table: "catalog_model_aliases", column: "model_id");
    }
}
