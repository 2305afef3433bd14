using System.Data.Common;
using Sluice.Storage;

namespace Sluice.Tests.TestSupport;

/// <summary>
/// Reads a database's actual schema (tables, columns with type and nullability, keys, indexes, foreign keys) as
/// sorted lines, ignoring EF's own bookkeeping tables, so two databases can be compared.
/// </summary>
internal static class SchemaReader
{
    public static async Task<IReadOnlyList<string>> ReadAsync(TestDatabase database)
    {
        await using var connection = database.OpenConnection();
        var facts = database.Provider == DatabaseProvider.Sqlite
            ? await ReadSqliteAsync(connection)
            : await ReadPostgresAsync(connection);
        return facts.Order(StringComparer.Ordinal).ToList();
    }

    private static async Task<List<string>> ReadSqliteAsync(DbConnection connection)
    {
        var facts = new List<string>();
        var tables = await QueryAsync(connection,
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name NOT LIKE '\\_\\_EFMigrations%' ESCAPE '\\'");
        foreach (var table in tables.Select(r => r[0]))
        {
            facts.Add($"table {table}");
            facts.AddRange((await QueryAsync(connection, $"SELECT name, type, \"notnull\", pk FROM pragma_table_info('{table}')"))
                .Select(r => $"column {table}.{r[0]} {r[1]} notnull={r[2]} pk={r[3]}"));
            foreach (var index in await QueryAsync(connection, $"SELECT name, \"unique\", origin FROM pragma_index_list('{table}')"))
            {
                var columns = (await QueryAsync(connection, $"SELECT name FROM pragma_index_info('{index[0]}') ORDER BY seqno")).Select(r => r[0]);
                facts.Add($"index {table}.{index[0]} unique={index[1]} origin={index[2]} ({string.Join(",", columns)})");
            }

            facts.AddRange((await QueryAsync(connection, $"SELECT \"table\", \"from\", \"to\", on_delete FROM pragma_foreign_key_list('{table}')"))
                .Select(r => $"fk {table}.{r[1]} -> {r[0]}.{r[2]} on delete {r[3]}"));
        }

        return facts;
    }

    private static async Task<List<string>> ReadPostgresAsync(DbConnection connection)
    {
        var facts = new List<string>();
        facts.AddRange((await QueryAsync(connection, """
            SELECT table_name, column_name, data_type, coalesce(character_maximum_length::text, ''), is_nullable, is_identity, coalesce(column_default, '')
            FROM information_schema.columns
            WHERE table_schema = 'public' AND table_name NOT LIKE '\_\_EFMigrations%'
            """)).Select(r => $"column {r[0]}.{r[1]} {r[2]}({r[3]}) nullable={r[4]} identity={r[5]} default={r[6]}"));
        facts.AddRange((await QueryAsync(connection, """
            SELECT c.relname, con.conname, con.contype, pg_get_constraintdef(con.oid)
            FROM pg_constraint con JOIN pg_class c ON c.oid = con.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname = 'public' AND c.relname NOT LIKE '\_\_EFMigrations%'
            """)).Select(r => $"constraint {r[0]}.{r[1]} {r[2]} {r[3]}"));
        facts.AddRange((await QueryAsync(connection, """
            SELECT tablename, indexname, indexdef FROM pg_indexes
            WHERE schemaname = 'public' AND tablename NOT LIKE '\_\_EFMigrations%'
            """)).Select(r => $"index {r[0]}.{r[1]} {r[2].Replace(" ON ONLY ", " ON ", StringComparison.Ordinal)}"));
        return facts;
    }

    private static async Task<List<string[]>> QueryAsync(DbConnection connection, string sql)
    {
        await using var command = connection.CreateCommand();
        command.CommandText = sql;
        await using var reader = await command.ExecuteReaderAsync();
        var rows = new List<string[]>();
        while (await reader.ReadAsync())
        {
            var row = new string[reader.FieldCount];
            for (var i = 0; i < row.Length; i++)
            {
                row[i] = reader.IsDBNull(i) ? "" : Convert.ToString(reader.GetValue(i), System.Globalization.CultureInfo.InvariantCulture)!;
            }

            rows.Add(row);
        }

        return rows;
    }
}
