namespace Sluice.Storage;

internal static partial class StorageLog
{
    [LoggerMessage(1, LogLevel.Information, "Database {Database}: schema {Version}, applied {Applied} migration(s)")]
    public static partial void Migrated(ILogger logger, string database, string version, int applied);

    [LoggerMessage(2, LogLevel.Information, "Database {Database}: schema {Version} is current")]
    public static partial void SchemaCurrent(ILogger logger, string database, string version);

    [LoggerMessage(3, LogLevel.Information, "Created data directory {DataDirectory}")]
    public static partial void CreatedDataDirectory(ILogger logger, string dataDirectory);
}
