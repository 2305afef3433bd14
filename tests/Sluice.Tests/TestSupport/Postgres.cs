using Npgsql;

namespace Sluice.Tests.TestSupport;

/// <summary>
/// The throwaway PostgreSQL server that ./test.sh starts and announces in SLUICE_TEST_POSTGRES.
/// Without it, PostgreSQL tests are skipped locally and fail under CI=true.
/// </summary>
internal static class Postgres
{
    public const string Variable = "SLUICE_TEST_POSTGRES";

    public static string AdminConnectionString()
    {
        var value = Environment.GetEnvironmentVariable(Variable);
        if (!string.IsNullOrWhiteSpace(value))
        {
            return value;
        }

        CrossCheck.Unavailable($"PostgreSQL is not available ({Variable} is not set); ./test.sh starts one.");
        return "";
    }

    public static async Task<string> CreateDatabaseAsync(string name)
    {
        await using var connection = new NpgsqlConnection(AdminConnectionString());
        await connection.OpenAsync();
        await using var command = connection.CreateCommand();
        command.CommandText = $"CREATE DATABASE \"{name}\"";
        await command.ExecuteNonQueryAsync();
        return new NpgsqlConnectionStringBuilder(AdminConnectionString()) { Database = name, Pooling = false }.ConnectionString;
    }

    public static async Task DropDatabaseAsync(string name)
    {
        await using var connection = new NpgsqlConnection(AdminConnectionString());
        await connection.OpenAsync();
        await using var command = connection.CreateCommand();
        command.CommandText = $"DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)";
        await command.ExecuteNonQueryAsync();
    }
}
