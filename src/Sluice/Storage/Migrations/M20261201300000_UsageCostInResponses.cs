using Microsoft.EntityFrameworkCore.Infrastructure;
using Microsoft.EntityFrameworkCore.Migrations;

namespace Sluice.Storage.Migrations;

/// <summary>An organization can turn off <c>usage.cost</c> in its answers (on by default, existing ones included).</summary>
[DbContext(typeof(SluiceDbContext))]
[Migration("20261201300000_UsageCostInResponses")]
internal sealed class M20261201300000_UsageCostInResponses : Migration
{
    protected override void Up(MigrationBuilder migrationBuilder) =>
        migrationBuilder.AddColumn<bool>(name: "usage_cost_in_responses", table: "organizations", nullable: false, defaultValue: true);
}
