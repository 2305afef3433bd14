using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Migrations;
using Microsoft.EntityFrameworkCore.Migrations.Operations;
using Microsoft.EntityFrameworkCore.Migrations.Operations.Builders;

namespace Sluice.Storage.Migrations;

/// <summary>
/// Column helpers for hand-written migrations that run on both SQLite and PostgreSQL.
/// They mirror what <see cref="SluiceDbContext"/> maps, which the schema test checks.
/// </summary>
internal static class ColumnTypes
{
    /// <summary>A timestamp: <c>timestamp with time zone</c> on PostgreSQL, UTC microseconds (INTEGER) on SQLite.</summary>
    public static OperationBuilder<AddColumnOperation> Timestamp(
        this ColumnsBuilder table, MigrationBuilder migration, bool nullable = false) =>
        migration.IsSqlite()
            ? table.Column<long>(nullable: nullable)
            : table.Column<DateTimeOffset>(nullable: nullable);

    /// <summary>Adds a timestamp column to an existing table, typed as <see cref="Timestamp"/> is.</summary>
    public static OperationBuilder<AddColumnOperation> AddTimestampColumn(
        this MigrationBuilder migration, string name, string table, bool nullable = false) =>
        migration.IsSqlite()
            ? migration.AddColumn<long>(name: name, table: table, nullable: nullable)
            : migration.AddColumn<DateTimeOffset>(name: name, table: table, nullable: nullable);
}
