using Microsoft.EntityFrameworkCore.Infrastructure;
using Microsoft.EntityFrameworkCore.Migrations;

namespace Sluice.Storage.Migrations;

/// <summary>The console's used form tokens, so a form posted twice is refused the second time.</summary>
[DbContext(typeof(SluiceDbContext))]
[Migration("20261202100000_ConsoleFormNonces")]
internal sealed class M20261202100000_ConsoleFormNonces : Migration
{
    protected override void Up(MigrationBuilder migrationBuilder)
    {
        migrationBuilder.CreateTable(
            name: "console_form_nonces",
            columns: table => new
            {
                nonce = table.Column<string>(maxLength: 32, nullable: false),
                expires_at = table.Timestamp(migrationBuilder),
            },
            constraints: table => table.PrimaryKey("pk_console_form_nonces", x => x.nonce));
        migrationBuilder.CreateIndex(name: "ix_console_form_nonces_expires_at", table: "console_form_nonces", column: "expires_at");
    }
}
