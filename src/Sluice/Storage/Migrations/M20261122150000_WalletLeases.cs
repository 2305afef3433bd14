using Microsoft.EntityFrameworkCore.Infrastructure;
using Microsoft.EntityFrameworkCore.Migrations;

namespace Sluice.Storage.Migrations;

/// <summary>Wallet leases: slices of a wallet a replica holds against requests in flight.</summary>
[DbContext(typeof(SluiceDbContext))]
[Migration("20261122150000_WalletLeases")]
internal sealed class M20261122150000_WalletLeases : Migration
{
    protected override void Up(MigrationBuilder migrationBuilder)
    {
        migrationBuilder.CreateTable(
            name: "wallet_leases",
            columns: table => new
            {
                id = table.Column<Guid>(nullable: false),
                organization_id = table.Column<Guid>(nullable: false),
                replica = table.Column<string>(maxLength: 64, nullable: false),
                amount_micros = table.Column<long>(nullable: false),
                settled_micros = table.Column<long>(nullable: false),
                returned_micros = table.Column<long>(nullable: false),
                expires_at = table.Timestamp(migrationBuilder),
                released = table.Column<bool>(nullable: false),
                created_at = table.Timestamp(migrationBuilder),
            },
            constraints: table => table.PrimaryKey("pk_wallet_leases", x => x.id));
        migrationBuilder.CreateIndex(name: "ix_wallet_leases_released_expires_at", table: "wallet_leases", columns: ["released", "expires_at"]);
    }
}
