using System.Data.Common;
using Microsoft.Data.Sqlite;
using Npgsql;

namespace Sluice.Storage;

public enum DatabaseProvider
{
    Sqlite,
    Postgres,
}

/// <summary>
/// The database Sluice uses: provider, full connection string, and a description safe to print
/// (it never contains the password).
/// </summary>
public sealed record DatabaseTarget(DatabaseProvider Provider, string ConnectionString, string Description)
{
    public const string DatabaseFileName = "sluice.db";

    private const string SettingName = "The database setting (SLUICE_DATABASE or ConnectionStrings:Sluice)";

    /// <summary>
    /// Resolves the configured value: empty means the embedded SQLite file in the data directory;
    /// <c>postgres://</c> / <c>postgresql://</c> URLs and <c>Host=…</c> keyword strings mean PostgreSQL;
    /// <c>sqlite:PATH</c> and <c>Data Source=…</c> mean SQLite.
    /// </summary>
    public static DatabaseTarget Resolve(string? configured, string dataDirectory)
    {
        if (string.IsNullOrWhiteSpace(configured))
        {
            return Sqlite(Path.Combine(Path.GetFullPath(dataDirectory), DatabaseFileName), null);
        }

        var value = configured.Trim();
        if (value.StartsWith("postgres://", StringComparison.OrdinalIgnoreCase)
            || value.StartsWith("postgresql://", StringComparison.OrdinalIgnoreCase))
        {
            return PostgresFromUrl(value);
        }

        if (value.StartsWith("sqlite:", StringComparison.OrdinalIgnoreCase))
        {
            var path = value["sqlite:".Length..];
            if (path.StartsWith("//", StringComparison.Ordinal))
            {
                path = path[2..];
            }

            if (path.Length == 0)
            {
                throw new DatabaseConfigurationException($"{SettingName} 'sqlite:' needs a file path, as in sqlite:data/sluice.db.");
            }

            return Sqlite(Path.GetFullPath(path), null);
        }

        return FromKeywords(value);
    }

    private static DatabaseTarget FromKeywords(string value)
    {
        var generic = new DbConnectionStringBuilder();
        try
        {
            generic.ConnectionString = value;
        }
        catch (ArgumentException)
        {
            throw new DatabaseConfigurationException(
                $"{SettingName} is neither a postgres:// URL nor a valid 'Key=Value;…' connection string.");
        }

        if (generic.ContainsKey("Host") || generic.ContainsKey("Server"))
        {
            NpgsqlConnectionStringBuilder npgsql;
            try
            {
                npgsql = new NpgsqlConnectionStringBuilder(value);
            }
            catch (Exception ex) when (ex is ArgumentException or FormatException or InvalidCastException)
            {
                throw new DatabaseConfigurationException($"{SettingName} is not a valid PostgreSQL connection string: {FirstLine(ex.Message)}");
            }

            return Postgres(npgsql);
        }

        if (generic.ContainsKey("Data Source") || generic.ContainsKey("DataSource") || generic.ContainsKey("Filename"))
        {
            SqliteConnectionStringBuilder sqlite;
            try
            {
                sqlite = new SqliteConnectionStringBuilder(value);
            }
            catch (Exception ex) when (ex is ArgumentException or FormatException or InvalidCastException)
            {
                throw new DatabaseConfigurationException($"{SettingName} is not a valid SQLite connection string: {FirstLine(ex.Message)}");
            }

            return Sqlite(Path.GetFullPath(sqlite.DataSource), sqlite);
        }

        throw new DatabaseConfigurationException(
            $"{SettingName} names no database: use a postgres:// URL, 'Host=…;Database=…' for PostgreSQL, or 'Data Source=FILE' for SQLite.");
    }

    private static DatabaseTarget PostgresFromUrl(string value)
    {
        if (!Uri.TryCreate(value, UriKind.Absolute, out var uri) || string.IsNullOrEmpty(uri.Host))
        {
            throw new DatabaseConfigurationException(
                $"{SettingName} is not a valid PostgreSQL URL; use postgres://USER:PASSWORD@HOST:PORT/DATABASE.");
        }

        var builder = new NpgsqlConnectionStringBuilder { Host = uri.Host.Trim('[', ']') };
        if (uri.Port > 0)
        {
            builder.Port = uri.Port;
        }

        if (uri.UserInfo.Length > 0)
        {
            var colon = uri.UserInfo.IndexOf(':', StringComparison.Ordinal);
            builder.Username = Uri.UnescapeDataString(colon < 0 ? uri.UserInfo : uri.UserInfo[..colon]);
            if (colon >= 0)
            {
                builder.Password = Uri.UnescapeDataString(uri.UserInfo[(colon + 1)..]);
            }
        }

        var database = Uri.UnescapeDataString(uri.AbsolutePath.Trim('/'));
        if (database.Length > 0)
        {
            builder.Database = database;
        }

        foreach (var pair in uri.Query.TrimStart('?').Split('&', StringSplitOptions.RemoveEmptyEntries))
        {
            var equals = pair.IndexOf('=', StringComparison.Ordinal);
            var key = Uri.UnescapeDataString(equals < 0 ? pair : pair[..equals]);
            var parameter = equals < 0 ? "" : Uri.UnescapeDataString(pair[(equals + 1)..]);
            try
            {
                builder[key] = parameter;
            }
            catch (Exception ex) when (ex is ArgumentException or FormatException or InvalidCastException)
            {
                throw new DatabaseConfigurationException($"{SettingName} has an unsupported URL parameter '{key}'.");
            }
        }

        return Postgres(builder);
    }

    private static DatabaseTarget Postgres(NpgsqlConnectionStringBuilder builder)
    {
        if (string.IsNullOrWhiteSpace(builder.Host))
        {
            throw new DatabaseConfigurationException($"{SettingName} names no PostgreSQL host.");
        }

        if (string.IsNullOrEmpty(builder.ApplicationName))
        {
            builder.ApplicationName = "sluice";
        }

        var user = string.IsNullOrEmpty(builder.Username) ? "" : builder.Username + "@";
        var database = builder.Database ?? builder.Username ?? "";
        return new DatabaseTarget(
            DatabaseProvider.Postgres,
            builder.ConnectionString,
            $"PostgreSQL {user}{builder.Host}:{builder.Port}/{database}");
    }

    private static DatabaseTarget Sqlite(string fullPath, SqliteConnectionStringBuilder? given)
    {
        var builder = given ?? new SqliteConnectionStringBuilder();
        builder.DataSource = fullPath;
        builder.Mode = SqliteOpenMode.ReadWriteCreate;
        builder.Pooling = true;
        return new DatabaseTarget(DatabaseProvider.Sqlite, builder.ConnectionString, $"SQLite {fullPath}");
    }

    private static string FirstLine(string message)
    {
        var newline = message.IndexOfAny(['\r', '\n']);
        return newline < 0 ? message : message[..newline];
    }

    /// <summary>The SQLite file this target points at, or null for PostgreSQL.</summary>
    public string? SqliteFile => Provider == DatabaseProvider.Sqlite
        ? new SqliteConnectionStringBuilder(ConnectionString).DataSource
        : null;

    public override string ToString() => Description;
}

/// <summary>A database setting that cannot be used; the message never repeats the value (it may hold a password).</summary>
public sealed class DatabaseConfigurationException(string message) : Exception(message);
