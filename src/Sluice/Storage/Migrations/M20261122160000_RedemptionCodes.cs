using Microsoft.EntityFrameworkCore.Infrastructure;
using Microsoft.EntityFrameworkCore.Migrations;

namespace Sluice.Storage.Migrations;

/// <summary>Single-use redemption codes (hashed).</summary>
[DbContext(typeof(SluiceDbContext))]
[Migration("20261122160000_RedemptionCodes")]
internal sealed class M20261122160000_RedemptionCodes : Migration
{
    protected override void Up(MigrationBuilder migrationBuilder)
    {
        migrationBuilder.CreateTable(
            name: "redemption_codes",
            columns: table => new
            {
                id = table.Column<Guid>(nullable: false),
                code_hash = table.Column<string>(maxLength: 64, nullable: false),
                amount_micros = table.Column<long>(nullable: false),
                expires_at = table.Timestamp(migrationBuilder),
                created_at = table.Timestamp(migrationBuilder),
                redeemed_at = table.Timestamp(migrationBuilder, nullable: true),
                redeemed_by_organization_id = table.Column<Guid>(nullable: true),
            },
            constraints: table => table.PrimaryKey("pk_redemption_codes", x => x.id));
        migrationBuilder.CreateIndex(name: "ix_redemption_codes_code_hash", table: "redemption_codes", column: "code_hash", unique: true);
    }
}
