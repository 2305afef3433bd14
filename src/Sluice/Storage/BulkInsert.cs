using System.Collections.Concurrent;
using System.Data.Common;
using System.Text;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Metadata;
using Microsoft.EntityFrameworkCore.Storage;

namespace Sluice.Storage;

/// <summary>
/// Inserts many rows of one entity type in one multi-row <c>INSERT</c>, without change tracking. Columns, type
/// mappings and value converters come from the EF model, so a row is stored exactly as <c>SaveChanges</c> would store it
/// (the SQLite timestamp and Guid forms included). For append-only metadata written at request rate (usage events),
/// where tracking each entity costs more than the insert.
/// </summary>
public static class BulkInsert
{
    // SQLite and PostgreSQL both take well over this many parameters in one statement.
    private const int MaxParameters = 30_000;

    private static readonly ConcurrentDictionary<(IModel, Type), Plan> Plans = new();

    public static async Task InsertAsync<T>(SluiceDbContext db, IReadOnlyList<T> rows, CancellationToken cancellationToken)
        where T : class
    {
        if (rows.Count == 0)
        {
            return;
        }

        var plan = Plans.GetOrAdd((db.Model, typeof(T)), static key => Plan.For(key.Item1, key.Item2));
        var perStatement = Math.Max(1, MaxParameters / plan.Properties.Count);
        await db.Database.OpenConnectionAsync(cancellationToken);
        try
        {
            var connection = db.Database.GetDbConnection();
            for (var start = 0; start < rows.Count; start += perStatement)
            {
                var count = Math.Min(perStatement, rows.Count - start);
                await using var command = connection.CreateCommand();
                command.Transaction = db.Database.CurrentTransaction?.GetDbTransaction();
                command.CommandText = plan.Sql(count);
                for (var i = 0; i < count; i++)
                {
                    plan.AddParameters(command, i, rows[start + i]);
                }

                await command.ExecuteNonQueryAsync(cancellationToken);
            }
        }
        finally
        {
            await db.Database.CloseConnectionAsync();
        }
    }

    private sealed class Plan(string table, IReadOnlyList<string> columns, IReadOnlyList<IProperty> properties)
    {
        private readonly ConcurrentDictionary<int, string> _sql = new();

        public IReadOnlyList<IProperty> Properties => properties;

        public static Plan For(IModel model, Type type)
        {
            var entity = model.FindEntityType(type) ?? throw new InvalidOperationException($"{type.Name} is not in the model.");
            var table = entity.GetTableName()!;
            var store = StoreObjectIdentifier.Table(table, entity.GetSchema());
            var properties = entity.GetProperties().ToList();
            return new Plan(table, properties.Select(p => p.GetColumnName(store)!).ToList(), properties);
        }

        public string Sql(int rows) => _sql.GetOrAdd(rows, count =>
        {
            var sql = new StringBuilder($"INSERT INTO {table} ({string.Join(", ", columns)}) VALUES ");
            for (var i = 0; i < count; i++)
            {
                sql.Append(i == 0 ? "(" : ", (");
                for (var j = 0; j < columns.Count; j++)
                {
                    sql.Append(j == 0 ? "" : ", ").Append("@p").Append(i).Append('_').Append(j);
                }

                sql.Append(')');
            }

            return sql.ToString();
        });

        public void AddParameters(DbCommand command, int row, object entity)
        {
            for (var j = 0; j < properties.Count; j++)
            {
                var property = properties[j];
                var mapping = (RelationalTypeMapping)property.GetTypeMapping();
                command.Parameters.Add(mapping.CreateParameter(command, $"@p{row}_{j}", property.GetGetter().GetClrValue(entity), property.IsNullable));
            }
        }
    }
}
