using Microsoft.EntityFrameworkCore.Infrastructure;
using Microsoft.EntityFrameworkCore.Migrations;

namespace Sluice.Storage.Migrations;

/// <summary>Usage events record what each request was charged.</summary>
[DbContext(typeof(SluiceDbContext))]
[Migration("20261122170000_UsageCost")]
internal sealed class M20261122170000_UsageCost : Migration
{
    protected override void Up(MigrationBuilder migrationBuilder) =>
        migrationBuilder.AddColumn<long>(name: "cost_micros", table: "usage_events", nullable: false, defaultValue: 0L);
}
