using Microsoft.EntityFrameworkCore.Infrastructure;
using Microsoft.EntityFrameworkCore.Migrations;

namespace Sluice.Storage.Migrations;

/// <summary>Users, with the platform operator created on first run.</summary>
[DbContext(typeof(SluiceDbContext))]
[Migration("20261122100000_Foundation")]
internal sealed class M20261122100000_Foundation : Migration
{
    protected override void Up(MigrationBuilder migrationBuilder)
    {
        migrationBuilder.CreateTable(
            name: "users",
            columns: table => new
            {
                id = table.Column<Guid>(nullable: false),
                email = table.Column<string>(maxLength: 320, nullable: false),
                display_name = table.Column<string>(maxLength: 200, nullable: true),
                password_hash = table.Column<string>(maxLength: 100, nullable: false),
                is_platform_operator = table.Column<bool>(nullable: false),
                created_at = table.Timestamp(migrationBuilder),
            },
            constraints: table => table.PrimaryKey("pk_users", x => x.id));

        migrationBuilder.CreateIndex(name: "ix_users_email", table: "users", column: "email", unique: true);
    }
}
