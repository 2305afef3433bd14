using System.Collections.Concurrent;
using System.Data.Common;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Metadata;
using Microsoft.EntityFrameworkCore.Storage;

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

    public static async Task InsertAsync<T>(SluiceDbContext db, IReadOnlyList<T> rows, CancellationToken cancellationToken)
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
                await CopyAsync(postgres, plan, rows, cancellationToken);
            }
            else
            {
                await InsertPreparedAsync(db, connection, plan, rows, cancellationToken);
            }
        }
        finally
        {
            await db.Database.CloseConnectionAsync();
        }
    }

    /// <summary>PostgreSQL: binary <c>COPY</c>, the fastest way in.</summary>
    private static async Task CopyAsync<T>(Npgsql.NpgsqlConnection connection, Plan plan, IReadOnlyList<T> rows, CancellationToken cancellationToken)
        where T : class
    {
        await using var importer = await connection.BeginBinaryImportAsync(plan.CopySql, cancellationToken);
        foreach (var row in rows)
        {
            await importer.StartRowAsync(cancellationToken);
            foreach (var property in plan.Properties)
            {
                if (Plan.ProviderValue(property, row) is { } value)
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

    /// <summary>SQLite: one prepared single-row statement stepped per row inside one transaction.</summary>
    private static async Task InsertPreparedAsync<T>(SluiceDbContext db, DbConnection connection, Plan plan, IReadOnlyList<T> rows, CancellationToken cancellationToken)
        where T : class
    {
        var owned = db.Database.CurrentTransaction is null ? await connection.BeginTransactionAsync(cancellationToken) : null;
        try
        {
            await using var command = connection.CreateCommand();
            command.Transaction = owned ?? db.Database.CurrentTransaction!.GetDbTransaction();
            command.CommandText = plan.InsertSql;
            var parameters = plan.Properties.Select((property, j) =>
            {
                var parameter = ((RelationalTypeMapping)property.GetTypeMapping()).CreateParameter(command, $"@p{j}", null, property.IsNullable);
                command.Parameters.Add(parameter);
                return parameter;
            }).ToList();
            await command.PrepareAsync(cancellationToken);
            foreach (var row in rows)
            {
                for (var j = 0; j < parameters.Count; j++)
                {
                    parameters[j].Value = Plan.ProviderValue(plan.Properties[j], row) ?? DBNull.Value;
                }

                await command.ExecuteNonQueryAsync(cancellationToken);
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

    private sealed class Plan(string table, IReadOnlyList<string> columns, IReadOnlyList<IProperty> properties)
    {
        public IReadOnlyList<IProperty> Properties => properties;

        public string InsertSql { get; } =
            $"INSERT INTO {table} ({string.Join(", ", columns)}) VALUES ({string.Join(", ", columns.Select((_, j) => $"@p{j}"))})";

        public string CopySql { get; } = $"COPY {table} ({string.Join(", ", columns)}) FROM STDIN (FORMAT BINARY)";

        public static Plan For(IModel model, Type type)
        {
            var entity = model.FindEntityType(type) ?? throw new InvalidOperationException($"{type.Name} is not in the model.");
            var table = entity.GetTableName()!;
            var store = StoreObjectIdentifier.Table(table, entity.GetSchema());
            var properties = entity.GetProperties().ToList();
            return new Plan(table, properties.Select(p => p.GetColumnName(store)!).ToList(), properties);
        }

        /// <summary>The value as the database stores it: through the property's value converter, as SaveChanges would.</summary>
        public static object? ProviderValue(IProperty property, object entity)
        {
            var value = property.GetGetter().GetClrValue(entity);
            var converter = property.GetTypeMapping().Converter;
            return value is null ? null : converter is null ? value : converter.ConvertToProvider(value);
        }
    }
}
