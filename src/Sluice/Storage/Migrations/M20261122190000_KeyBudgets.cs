using Microsoft.EntityFrameworkCore.Infrastructure;
using Microsoft.EntityFrameworkCore.Migrations;

namespace Sluice.Storage.Migrations;

/// <summary>Keys' spend per limit period, and leases against those limits.</summary>
[DbContext(typeof(SluiceDbContext))]
[Migration("20261122190000_KeyBudgets")]
internal sealed class M20261122190000_KeyBudgets : Migration
{
    protected override void Up(MigrationBuilder migrationBuilder)
    {
        migrationBuilder.CreateTable(
            name: "key_budgets",
            columns: table => new
            {
                key_id = table.Column<Guid>(nullable: false),
                period = table.Column<string>(maxLength: 16, nullable: false),
                spent_micros = table.Column<long>(nullable: false),
                leased_micros = table.Column<long>(nullable: false),
            },
            constraints: table => table.PrimaryKey("pk_key_budgets", x => new { x.key_id, x.period }));
        migrationBuilder.AddColumn<Guid>(name: "key_id", table: "wallet_leases", nullable: true);
        migrationBuilder.AddColumn<string>(name: "period", table: "wallet_leases", maxLength: 16, nullable: true);
    }
}
