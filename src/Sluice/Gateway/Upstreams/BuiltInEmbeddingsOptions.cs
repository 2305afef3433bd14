using System.ComponentModel.DataAnnotations;

namespace Sluice.Gateway;

/// <summary>
/// The <c>Gateway:BuiltInEmbeddings</c> settings: the built-in <c>all-MiniLM-L6-v2</c> embeddings model, served by a
/// <c>sluice engine embeddings</c> child process that <c>sluice serve</c> starts on first use and supervises.
/// </summary>
public sealed record BuiltInEmbeddingsOptions
{
    public const string Section = "Gateway:BuiltInEmbeddings";

    /// <summary>Offer the model (listed in <c>/v1/models</c>, served on <c>/v1/embeddings</c>).</summary>
    public bool Enabled { get; init; } = true;

    /// <summary>Start the engine when the server starts instead of on the first request (which then waits for the load).</summary>
    public bool Preload { get; init; }

    /// <summary>Batches of up to 32 inputs the engine embeds at once; more wait in its queue.</summary>
    [Range(1, 64, ErrorMessage = "must be between {1} and {2}")]
    public int Parallel { get; init; } = 2;

    /// <summary>ONNX Runtime threads per batch; empty means one per core.</summary>
    [Range(1, 256, ErrorMessage = "must be between {1} and {2}")]
    public int? Threads { get; init; }

    /// <summary>How long the engine may take to load before it is killed and started again.</summary>
    [Range(typeof(TimeSpan), "00:00:05", "00:30:00", ErrorMessage = "must be between {1} and {2}")]
    public TimeSpan StartupTimeout { get; init; } = TimeSpan.FromMinutes(2);
}
