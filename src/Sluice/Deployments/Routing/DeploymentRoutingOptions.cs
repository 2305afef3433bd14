using System.ComponentModel.DataAnnotations;

namespace Sluice.Deployments.Routing;

/// <summary>The <c>Deployments:Routing</c> settings: the directory of ready replicas and the cold-start queue.</summary>
public sealed record DeploymentRoutingOptions
{
    public const string Section = "Deployments:Routing";

    /// <summary>How often each server reloads deployments and their ready replicas (one query); routing reads only memory.</summary>
    [Range(typeof(TimeSpan), "00:00:00.050", "00:01:00", ErrorMessage = "must be between {1} and {2}")]
    public TimeSpan DirectoryRefreshInterval { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>Requests one server holds waiting for a replica of one deployment; beyond it a 503 with Retry-After.</summary>
    [Range(0, 100_000, ErrorMessage = "must be between {1} and {2}")]
    public int QueueCapacity { get; init; } = 100;

    /// <summary>How long a request waits for a replica to become ready before a 503 with Retry-After.</summary>
    [Range(typeof(TimeSpan), "00:00:00.100", "01:00:00", ErrorMessage = "must be between {1} and {2}")]
    public TimeSpan QueueTimeout { get; init; } = TimeSpan.FromMinutes(5);

    /// <summary>How often a waiting streaming client gets an SSE comment (<c>: waiting for a replica to start</c>).</summary>
    [Range(typeof(TimeSpan), "00:00:00.050", "00:01:00", ErrorMessage = "must be between {1} and {2}")]
    public TimeSpan KeepAliveInterval { get; init; } = TimeSpan.FromSeconds(5);
}
