using System.ComponentModel.DataAnnotations;

namespace Sluice.Storage;

/// <summary>The <c>Database</c> settings. The connection itself is <c>ConnectionStrings:Sluice</c> or <c>SLUICE_DATABASE</c>.</summary>
public sealed record DatabaseOptions
{
    public const string Section = "Database";

    /// <summary>Apply pending migrations when <c>serve</c> starts; when off, a server with pending migrations refuses to start.</summary>
    public bool MigrateOnStart { get; init; } = true;

    [Range(typeof(TimeSpan), "00:00:01", "00:10:00", ErrorMessage = "must be between {1} and {2}")]
    public TimeSpan CommandTimeout { get; init; } = TimeSpan.FromSeconds(30);
}
