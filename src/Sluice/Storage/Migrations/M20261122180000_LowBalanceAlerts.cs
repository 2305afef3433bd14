using Microsoft.EntityFrameworkCore.Infrastructure;
using Microsoft.EntityFrameworkCore.Migrations;

namespace Sluice.Storage.Migrations;

/// <summary>Organizations' low-balance threshold and webhook.</summary>
[DbContext(typeof(SluiceDbContext))]
[Migration("20261122180000_LowBalanceAlerts")]
internal sealed class M20261122180000_LowBalanceAlerts : Migration
{
    protected override void Up(MigrationBuilder migrationBuilder)
    {
        migrationBuilder.AddColumn<long>(name: "low_balance_threshold_micros", table: "organizations", nullable: true);
        migrationBuilder.AddColumn<string>(name: "low_balance_webhook_url", table: "organizations", maxLength: 500, nullable: true);
        migrationBuilder.AddColumn<string>(name: "low_balance_webhook_secret", table: "organizations", maxLength: 500, nullable: true);
        migrationBuilder.AddColumn<bool>(name: "low_balance_alerted", table: "organizations", nullable: false, defaultValue: false);
    }
}
