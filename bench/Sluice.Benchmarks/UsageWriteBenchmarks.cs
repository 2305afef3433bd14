using BenchmarkDotNet.Attributes;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Sluice.Gateway;
using Sluice.Storage;

namespace Sluice.Benchmarks;

/// <summary>
/// What metering costs off the request path: the usage writer storing one batch of 500 events (its batch size) in
/// SQLite in one transaction, against the same rows bound as ADO.NET parameters. Divide by 500 for a request's share.
/// </summary>
[MemoryDiagnoser]
public class UsageWriteBenchmarks
{
    private const int Rows = 500;
    private IHost _host = null!;
    private string _directory = null!;
    private UsageEvent[] _events = null!;

    [GlobalSetup]
    public async Task SetupAsync()
    {
        (_host, _directory) = await BenchmarkStorage.StartAsync();
        var organization = Guid.CreateVersion7();
        var key = Guid.CreateVersion7();
        var route = Guid.CreateVersion7();
        _events = Enumerable.Range(0, Rows).Select(i => new UsageEvent
        {
            RequestId = "req_" + Guid.CreateVersion7().ToString("N"),
            OrganizationId = organization,
            KeyId = key,
            Endpoint = "chat.completions",
            Model = "bench",
            RouteId = route,
            Status = 200,
            Attempts = 1,
            PromptTokens = 12,
            CompletionTokens = 40,
            RequestBytes = 90,
            ResponseBytes = 400,
            LatencyMicros = 180,
            TimeToFirstTokenMicros = 150,
            CostMicros = 30,
            StartedAt = DateTimeOffset.UtcNow,
        }).ToArray();
    }

    /// <summary>Each measurement starts from an empty table, as the writer usually appends to a table of bounded size.</summary>
    [IterationSetup]
    public void EmptyTable()
    {
        using var scope = _host.Services.CreateScope();
        scope.ServiceProvider.GetRequiredService<SluiceDbContext>().UsageEvents.ExecuteDelete();
    }

    [Benchmark(Baseline = true, Description = "ADO.NET: named parameters, values through EF's getters and converters")]
    public async Task StoreThroughAdoParameters()
    {
        var batch = FreshBatch();
        await using var scope = _host.Services.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<SluiceDbContext>();
        var entity = db.Model.FindEntityType(typeof(UsageEvent))!;
        var properties = entity.GetProperties().ToList();
        var store = Microsoft.EntityFrameworkCore.Metadata.StoreObjectIdentifier.Table(entity.GetTableName()!, null);
        await db.Database.OpenConnectionAsync();
        var connection = db.Database.GetDbConnection();
        await using var transaction = await connection.BeginTransactionAsync();
        await using var command = connection.CreateCommand();
        command.Transaction = transaction;
        command.CommandText = $"INSERT INTO usage_events ({string.Join(", ", properties.Select(p => p.GetColumnName(store)))}) VALUES ({string.Join(", ", properties.Select((_, j) => $"@p{j}"))})";
        var parameters = properties.Select((property, j) =>
        {
            var parameter = ((Microsoft.EntityFrameworkCore.Storage.RelationalTypeMapping)property.GetTypeMapping()).CreateParameter(command, $"@p{j}", null, property.IsNullable);
            command.Parameters.Add(parameter);
            return parameter;
        }).ToList();
        await command.PrepareAsync();
        foreach (var row in batch)
        {
            for (var j = 0; j < parameters.Count; j++)
            {
                var value = properties[j].GetGetter().GetClrValue(row);
                var converter = properties[j].GetTypeMapping().Converter;
                parameters[j].Value = (value is null ? null : converter is null ? value : converter.ConvertToProvider(value)) ?? DBNull.Value;
            }

            await command.ExecuteNonQueryAsync();
        }

        await transaction.CommitAsync();
        await db.Database.CloseConnectionAsync();
    }

    [Benchmark(Description = "BulkInsert: positional binding through SQLite's API")]
    public async Task StoreBatch()
    {
        var batch = FreshBatch();
        await using var scope = _host.Services.CreateAsyncScope();
        await BulkInsert.InsertAsync(scope.ServiceProvider.GetRequiredService<SluiceDbContext>(), batch, default);
    }

    private UsageEvent[] FreshBatch()
    {
        // Fresh ids each time: the rows are real inserts, as in production (v7 ids append at the end of the key).
        var batch = new UsageEvent[Rows];
        for (var i = 0; i < Rows; i++)
        {
            var e = _events[i];
            batch[i] = new UsageEvent
            {
                Id = Guid.CreateVersion7(), RequestId = e.RequestId, OrganizationId = e.OrganizationId, KeyId = e.KeyId, Endpoint = e.Endpoint,
                Model = e.Model, RouteId = e.RouteId, Status = e.Status, Attempts = e.Attempts, PromptTokens = e.PromptTokens,
                CompletionTokens = e.CompletionTokens, RequestBytes = e.RequestBytes, ResponseBytes = e.ResponseBytes, LatencyMicros = e.LatencyMicros,
                TimeToFirstTokenMicros = e.TimeToFirstTokenMicros, CostMicros = e.CostMicros, StartedAt = e.StartedAt,
            };
        }

        return batch;
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        BenchmarkStorage.Stop(_host, _directory);
    }
}
