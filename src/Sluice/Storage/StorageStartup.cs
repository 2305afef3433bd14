using System.Data.Common;
using System.Net.Sockets;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.Options;

namespace Sluice.Storage;

/// <summary>
/// Prepares the database before anything else starts: creates the SQLite file (WAL mode) in the data directory,
/// then applies migrations, or with <c>Database:MigrateOnStart=false</c> checks that none are pending.
/// </summary>
internal sealed class StorageStartup(
    IServiceScopeFactory scopes,
    DatabaseTarget target,
    IOptions<DatabaseOptions> options,
    ILogger<StorageStartup> logger) : IHostedLifecycleService
{
    public Task StartingAsync(CancellationToken cancellationToken) =>
        PrepareAsync(options.Value.MigrateOnStart, cancellationToken);

    /// <summary>
    /// Makes the database usable by this binary and returns its schema status. Without <paramref name="applyMigrations"/>
    /// it only checks, and refuses a schema with pending migrations.
    /// </summary>
    public async Task<SchemaStatus> PrepareAsync(bool applyMigrations, CancellationToken cancellationToken)
    {
        try
        {
            if (target.SqliteFile is { } file)
            {
                await PrepareSqliteFileAsync(file, cancellationToken);
            }

            await using var scope = scopes.CreateAsyncScope();
            var migrator = scope.ServiceProvider.GetRequiredService<SchemaMigrator>();
            if (applyMigrations)
            {
                var (before, after) = await migrator.MigrateAsync(cancellationToken);
                StorageLog.Migrated(logger, target.Description, after.Version, before.Pending.Count);
                return after;
            }

            var status = await migrator.GetStatusAsync(cancellationToken);
            migrator.ThrowIfNewer(status);
            if (!status.IsCurrent)
            {
                throw new SchemaNotCurrentException(
                    $"The database ({target.Description}) has {status.Pending.Count} pending migration(s) and Database:MigrateOnStart is off. " +
                    "Run `sluice migrate` first.");
            }

            StorageLog.SchemaCurrent(logger, target.Description, status.Version);
            return status;
        }
        catch (Exception ex) when (IsDatabaseFailure(ex))
        {
            throw new DatabaseUnavailableException(target, ex);
        }
    }

    /// <summary>A failure to reach or open the database, possibly wrapped (EF's execution strategy wraps driver errors).</summary>
    private static bool IsDatabaseFailure(Exception exception)
    {
        for (var current = exception; current is not null; current = current.InnerException)
        {
            if (current is DbException or SocketException or TimeoutException or UnauthorizedAccessException or IOException)
            {
                return true;
            }
        }

        return false;
    }

    private async Task PrepareSqliteFileAsync(string file, CancellationToken cancellationToken)
    {
        var directory = Path.GetDirectoryName(file)!;
        if (!Directory.Exists(directory))
        {
            Directory.CreateDirectory(directory);
            StorageLog.CreatedDataDirectory(logger, directory);
        }

        // WAL lets readers proceed while one writer commits; the mode is stored in the file, so setting it once suffices.
        await using var connection = new SqliteConnection(target.ConnectionString);
        await connection.OpenAsync(cancellationToken);
        await using var command = connection.CreateCommand();
        command.CommandText = "PRAGMA journal_mode=WAL;";
        await command.ExecuteScalarAsync(cancellationToken);
    }

    public Task StartAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StartedAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StoppingAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StoppedAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}

/// <summary>The database could not be opened or reached; the message names it without its password.</summary>
public sealed class DatabaseUnavailableException(DatabaseTarget target, Exception inner)
    : Exception($"cannot use the database ({target.Description}): {Reason(inner)}", inner)
{
    private static string Reason(Exception exception)
    {
        // Skip wrappers (EF's execution strategy) to the driver's own error, then name its root cause.
        var driver = exception;
        while (driver is not (DbException or SocketException) && driver.InnerException is not null)
        {
            driver = driver.InnerException;
        }

        var innermost = driver;
        while (innermost.InnerException is not null)
        {
            innermost = innermost.InnerException;
        }

        var reason = innermost == driver ? driver.Message : $"{driver.Message} ({innermost.Message})";
        var newline = reason.IndexOfAny(['\r', '\n']);
        return newline < 0 ? reason : reason[..newline];
    }
}
