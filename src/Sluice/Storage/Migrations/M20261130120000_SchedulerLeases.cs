using Microsoft.EntityFrameworkCore.Infrastructure;
using Microsoft.EntityFrameworkCore.Migrations;

namespace Sluice.Storage.Migrations;

/// <summary>The deployment scheduler's leader lease: one server replica schedules at a time.</summary>
[DbContext(typeof(SluiceDbContext))]
[Migration("20261130120000_SchedulerLeases")]
internal sealed class M20261130120000_SchedulerLeases : Migration
{
    protected override void Up(MigrationBuilder migrationBuilder)
    {
        migrationBuilder.CreateTable(
            name: "scheduler_leases",
            columns: table => new
            {
                name = table.Column<string>(maxLength: 64, nullable: false),
                holder = table.Column<string>(maxLength: 200, nullable: false),
                acquired_at = table.Timestamp(migrationBuilder),
                expires_at = table.Timestamp(migrationBuilder),
            },
            constraints: table => table.PrimaryKey("pk_scheduler_leases", x => x.name));
    }
}
