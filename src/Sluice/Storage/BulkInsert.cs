using System.Collections.Concurrent;
using System.Data.Common;
using System.Text;
using Microsoft.Data.Sqlite;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Metadata;
using Microsoft.EntityFrameworkCore.Storage.ValueConversion;
using SQLitePCL;

namespace Sluice.Storage;

/// <summary>
/// Inserts many rows of one entity type without change tracking: binary <c>COPY</c> on PostgreSQL, a prepared
/// statement stepped per row in one transaction on SQLite. Columns, type mappings and value converters come from the EF
/// model, so a row is stored exactly as <c>SaveChanges</c> would store it (the SQLite timestamp and Guid forms
/// included). For append-only metadata written at request rate (usage events), where tracking each entity costs more
/// than the insert.
/// </summary>
public static class BulkInsert
{
    private static readonly ConcurrentDictionary<(IModel, Type), Plan> Plans = new();

    /// <summary>
    /// Inserts <paramref name="rows"/>. With <paramref name="skipExisting"/>, rows whose key is already stored are skipped
    /// instead of failing the insert: for retrying a write whose commit outcome is unknown (the connection broke during
    /// it), so that rows are idempotent by id.
    /// </summary>
    public static async Task InsertAsync<T>(SluiceDbContext db, IReadOnlyList<T> rows, CancellationToken cancellationToken, bool skipExisting = false)
        where T : class
    {
        if (rows.Count == 0)
        {
            return;
        }

        var plan = Plans.GetOrAdd((db.Model, typeof(T)), static key => Plan.For(key.Item1, key.Item2));
        await db.Database.OpenConnectionAsync(cancellationToken);
        try
        {
            var connection = db.Database.GetDbConnection();
            if (connection is Npgsql.NpgsqlConnection postgres)
            {
                if (skipExisting)
                {
                    await CopySkippingExistingAsync(db, postgres, plan, rows, cancellationToken);
                }
                else
                {
                    await CopyAsync(postgres, plan.CopySql, plan, rows, cancellationToken);
                }
            }
            else
            {
                await InsertPreparedAsync(db, connection, plan, rows, skipExisting, cancellationToken);
            }
        }
        finally
        {
            await db.Database.CloseConnectionAsync();
        }
    }

    /// <summary>PostgreSQL: binary <c>COPY</c>, the fastest way in.</summary>
    private static async Task CopyAsync<T>(Npgsql.NpgsqlConnection connection, string copySql, Plan plan, IReadOnlyList<T> rows, CancellationToken cancellationToken)
        where T : class
    {
        await using var importer = await connection.BeginBinaryImportAsync(copySql, cancellationToken);
        foreach (var row in rows)
        {
            await importer.StartRowAsync(cancellationToken);
            foreach (var column in plan.Columns)
            {
                if (column.ProviderValue(row) is { } value)
                {
                    await importer.WriteAsync(value, cancellationToken);
                }
                else
                {
                    await importer.WriteNullAsync(cancellationToken);
                }
            }
        }

        await importer.CompleteAsync(cancellationToken);
    }

    /// <summary>
    /// PostgreSQL, skipping rows already stored: <c>COPY</c> into a temporary table, then one
    /// <c>INSERT … SELECT … ON CONFLICT DO NOTHING</c>, in one transaction.
    /// </summary>
    private static async Task CopySkippingExistingAsync<T>(SluiceDbContext db, Npgsql.NpgsqlConnection connection, Plan plan, IReadOnlyList<T> rows, CancellationToken cancellationToken)
        where T : class
    {
        var owned = db.Database.CurrentTransaction is null ? await connection.BeginTransactionAsync(cancellationToken) : null;
        try
        {
            await using (var create = connection.CreateCommand())
            {
                create.CommandText = $"CREATE TEMP TABLE {plan.StagingTable} (LIKE {plan.Table} INCLUDING DEFAULTS) ON COMMIT DROP";
                await create.ExecuteNonQueryAsync(cancellationToken);
            }

            await CopyAsync(connection, plan.StagingCopySql, plan, rows, cancellationToken);
            await using (var insert = connection.CreateCommand())
            {
                insert.CommandText = plan.InsertFromStagingSql;
                await insert.ExecuteNonQueryAsync(cancellationToken);
            }

            if (owned is not null)
            {
                await owned.CommitAsync(cancellationToken);
            }
        }
        finally
        {
            if (owned is not null)
            {
                await owned.DisposeAsync();
            }
        }
    }

    /// <summary>
    /// SQLite: one prepared single-row statement stepped per row inside one transaction, its values bound by position
    /// through SQLite's own API. (ADO.NET parameters are bound by name, which SQLite resolves with a scan of every name
    /// in the statement, for every parameter of every row; docs/benchmarks.md measures the two ways side by side.)
    /// </summary>
    private static async Task InsertPreparedAsync<T>(SluiceDbContext db, DbConnection connection, Plan plan, IReadOnlyList<T> rows, bool skipExisting, CancellationToken cancellationToken)
        where T : class
    {
        var owned = db.Database.CurrentTransaction is null ? await connection.BeginTransactionAsync(cancellationToken) : null;
        try
        {
            var handle = ((SqliteConnection)connection).Handle!;
            Check(raw.sqlite3_prepare_v2(handle, skipExisting ? plan.PositionalInsertSql + " ON CONFLICT DO NOTHING" : plan.PositionalInsertSql, out var statement), handle);
            using (statement)
            {
                var text = new byte[256];
                foreach (var row in rows)
                {
                    cancellationToken.ThrowIfCancellationRequested();
                    for (var j = 0; j < plan.Columns.Count; j++)
                    {
                        Bind(statement, j + 1, plan.Columns[j], row, ref text, handle);
                    }

                    var stepped = raw.sqlite3_step(statement);
                    if (stepped != raw.SQLITE_DONE)
                    {
                        Check(stepped, handle);
                    }

                    Check(raw.sqlite3_reset(statement), handle);
                }
            }

            if (owned is not null)
            {
                await owned.CommitAsync(cancellationToken);
            }
        }
        finally
        {
            if (owned is not null)
            {
                await owned.DisposeAsync();
            }
        }
    }

    /// <summary>Binds one value as Microsoft.Data.Sqlite (and so SaveChanges) would store it.</summary>
    private static void Bind(sqlite3_stmt statement, int index, Column column, object row, ref byte[] text, sqlite3 handle)
    {
        var value = column.ProviderValue(row);
        var result = value switch
        {
            null => raw.sqlite3_bind_null(statement, index),
            string s => BindText(statement, index, s, ref text),
            long l => raw.sqlite3_bind_int64(statement, index, l),
            int i => raw.sqlite3_bind_int64(statement, index, i),
            short h => raw.sqlite3_bind_int64(statement, index, h),
            byte b => raw.sqlite3_bind_int64(statement, index, b),
            bool b => raw.sqlite3_bind_int64(statement, index, b ? 1 : 0),
            double d => raw.sqlite3_bind_double(statement, index, d),
            float f => raw.sqlite3_bind_double(statement, index, f),
            byte[] bytes => raw.sqlite3_bind_blob(statement, index, bytes),
            Guid g when column.GuidAsText => BindGuidText(statement, index, g),
            Guid g => raw.sqlite3_bind_blob(statement, index, g.ToByteArray()),
            _ => throw new NotSupportedException($"Bulk insert cannot store a {value.GetType().Name} ({column.Name})."),
        };
        Check(result, handle);
    }

    private static int BindText(sqlite3_stmt statement, int index, string value, ref byte[] buffer)
    {
        var length = Encoding.UTF8.GetMaxByteCount(value.Length);
        if (buffer.Length < length)
        {
            buffer = new byte[Math.Max(length, buffer.Length * 2)];
        }

        var written = Encoding.UTF8.GetBytes(value, buffer);
        return raw.sqlite3_bind_text(statement, index, buffer.AsSpan(0, written)); // SQLite copies it (SQLITE_TRANSIENT)
    }

    /// <summary>A Guid in a TEXT column, in Microsoft.Data.Sqlite's form: "D" format, upper case.</summary>
    private static int BindGuidText(sqlite3_stmt statement, int index, Guid value)
    {
        Span<byte> text = stackalloc byte[36];
        value.TryFormat(text, out _, "D");
        for (var i = 0; i < text.Length; i++)
        {
            if (text[i] is >= (byte)'a' and <= (byte)'f')
            {
                text[i] -= 'a' - 'A';
            }
        }

        return raw.sqlite3_bind_text(statement, index, text);
    }

    private static void Check(int result, sqlite3 handle)
    {
        if (result != raw.SQLITE_OK)
        {
            SqliteException.ThrowExceptionForRC(result, handle);
        }
    }

    /// <summary>One column: its name and how to read a row's value for it, in the form the database stores.</summary>
    private sealed class Column(IProperty property, string name)
    {
        private readonly IClrPropertyGetter _getter = property.GetGetter();
        private readonly ValueConverter? _converter = property.GetTypeMapping().Converter;

        public string Name { get; } = name;

        /// <summary>EF's SQLite provider stores Guids as TEXT; a BLOB column would take the 16 bytes.</summary>
        public bool GuidAsText { get; } = string.Equals(property.GetRelationalTypeMapping().StoreType, "TEXT", StringComparison.OrdinalIgnoreCase);

        /// <summary>The value as the database stores it: through the property's value converter, as SaveChanges would.</summary>
        public object? ProviderValue(object entity)
        {
            var value = _getter.GetClrValue(entity);
            return value is null ? null : _converter is null ? value : _converter.ConvertToProvider(value);
        }
    }

    private sealed class Plan(string table, IReadOnlyList<Column> columns)
    {
        public IReadOnlyList<Column> Columns => columns;

        public string PositionalInsertSql { get; } =
            $"INSERT INTO {table} ({string.Join(", ", columns.Select(c => c.Name))}) VALUES ({string.Join(", ", columns.Select((_, j) => $"?{j + 1}"))})";

        public string Table => table;

        public string CopySql { get; } = $"COPY {table} ({string.Join(", ", columns.Select(c => c.Name))}) FROM STDIN (FORMAT BINARY)";

        public string StagingTable { get; } = $"staging_{table}";

        public string StagingCopySql { get; } = $"COPY staging_{table} ({string.Join(", ", columns.Select(c => c.Name))}) FROM STDIN (FORMAT BINARY)";

        public string InsertFromStagingSql { get; } =
            $"INSERT INTO {table} ({string.Join(", ", columns.Select(c => c.Name))}) SELECT {string.Join(", ", columns.Select(c => c.Name))} FROM staging_{table} ON CONFLICT DO NOTHING";

        public static Plan For(IModel model, Type type)
        {
            var entity = model.FindEntityType(type) ?? throw new InvalidOperationException($"{type.Name} is not in the model.");
            var table = entity.GetTableName()!;
            var store = StoreObjectIdentifier.Table(table, entity.GetSchema());
            return new Plan(table, entity.GetProperties().Select(p => new Column(p, p.GetColumnName(store)!)).ToList());
        }
    }
}
