using Microsoft.EntityFrameworkCore.Infrastructure;
using Microsoft.EntityFrameworkCore.Migrations;

namespace Sluice.Storage.Migrations;

/// <summary>A usage event says when its token counts are Sluice's own because the provider reported none.</summary>
[DbContext(typeof(SluiceDbContext))]
[Migration("20261128120000_UsageTokensCountedLocally")]
internal sealed class M20261128120000_UsageTokensCountedLocally : Migration
{
    protected override void Up(MigrationBuilder migrationBuilder) =>
        migrationBuilder.AddColumn<bool>(name: "tokens_counted_locally", table: "usage_events", nullable: false, defaultValue: false);
}
