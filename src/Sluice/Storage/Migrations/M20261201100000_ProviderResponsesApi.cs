using Microsoft.EntityFrameworkCore.Infrastructure;
using Microsoft.EntityFrameworkCore.Migrations;

namespace Sluice.Storage.Migrations;

/// <summary>A provider says whether it speaks OpenAI's Responses API itself (then <c>/v1/responses</c> calls pass through to it).</summary>
[DbContext(typeof(SluiceDbContext))]
[Migration("20261201100000_ProviderResponsesApi")]
internal sealed class M20261201100000_ProviderResponsesApi : Migration
{
    protected override void Up(MigrationBuilder migrationBuilder) =>
        migrationBuilder.AddColumn<bool>(name: "supports_responses", table: "providers", nullable: false, defaultValue: false);
}
