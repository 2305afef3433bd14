using System.Data.Common;
using Microsoft.Data.Sqlite;
using Microsoft.EntityFrameworkCore;
using Npgsql;
using Sluice.Storage;

namespace Sluice.Tests.TestSupport;

/// <summary>A fresh, empty database of one provider for one test, removed afterwards.</summary>
public sealed class TestDatabase : IAsyncDisposable
{
    private readonly string? _postgresName;

    private TestDatabase(DatabaseProvider provider, string connectionString, string directory, string? postgresName)
    {
        Provider = provider;
        ConnectionString = connectionString;
        Directory = directory;
        _postgresName = postgresName;
    }

    public DatabaseProvider Provider { get; }

    /// <summary>The value for ConnectionStrings:Sluice.</summary>
    public string ConnectionString { get; }

    /// <summary>A private temporary directory, used as Server:DataDir.</summary>
    public string Directory { get; }

    public DatabaseTarget Target => DatabaseTarget.Resolve(ConnectionString, Directory);

    public static async Task<TestDatabase> CreateAsync(DatabaseProvider provider)
    {
        var directory = System.IO.Directory.CreateTempSubdirectory("sluice-test-").FullName;
        if (provider == DatabaseProvider.Sqlite)
        {
            return new TestDatabase(provider, $"Data Source={Path.Combine(directory, "sluice.db")}", directory, null);
        }

        var name = $"sluice_test_{Guid.NewGuid():N}";
        var connectionString = await Postgres.CreateDatabaseAsync(name);
        return new TestDatabase(provider, connectionString, directory, name);
    }

    public SluiceDbContext CreateContext()
    {
        var options = new DbContextOptionsBuilder<SluiceDbContext>();
        StorageModule.ConfigureProvider(options, Target, TimeSpan.FromSeconds(30));
        return new SluiceDbContext(options.Options);
    }

    public DbConnection OpenConnection()
    {
        DbConnection connection = Provider == DatabaseProvider.Sqlite
            ? new SqliteConnection(Target.ConnectionString)
            : new NpgsqlConnection(Target.ConnectionString);
        connection.Open();
        return connection;
    }

    public async Task<int> ExecuteAsync(string sql)
    {
        await using var connection = OpenConnection();
        await using var command = connection.CreateCommand();
        command.CommandText = sql;
        return await command.ExecuteNonQueryAsync();
    }

    public async Task<object?> ScalarAsync(string sql)
    {
        await using var connection = OpenConnection();
        await using var command = connection.CreateCommand();
        command.CommandText = sql;
        return await command.ExecuteScalarAsync();
    }

    public async ValueTask DisposeAsync()
    {
        SqliteConnection.ClearAllPools();
        if (_postgresName is not null)
        {
            NpgsqlConnection.ClearAllPools();
            await Postgres.DropDatabaseAsync(_postgresName);
        }

        try
        {
            System.IO.Directory.Delete(Directory, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}
