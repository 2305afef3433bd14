using System.Net;
using Sluice.Engine.Embeddings;

namespace Sluice.Engine;

/// <summary>Serves <c>/v1/embeddings</c> with all-MiniLM-L6-v2 (384 dimensions), <c>/health</c> and <c>/metrics</c>.</summary>
public static class EmbeddingsEngine
{
    /// <summary>The environment variable the engine reads its API key from (so it never appears in a command line).</summary>
    public const string ApiKeyVariable = "SLUICE_ENGINE_API_KEY";

    public static async Task<int> RunAsync(EmbeddingsEngineSettings settings, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(settings);
        if (ListenAddress(settings.Host) is not { } address)
        {
            await Console.Error.WriteLineAsync("error: --host must be an IP address (such as 127.0.0.1) or localhost");
            return 2;
        }

        if (settings.Port is < 0 or > 65535)
        {
            await Console.Error.WriteLineAsync("error: --port must be from 0 (any free port) to 65535");
            return 2;
        }

        if (settings.Parallel is < 1 or > 64)
        {
            await Console.Error.WriteLineAsync("error: --parallel must be from 1 to 64");
            return 2;
        }

        if (settings.Threads is < 1 or > 256)
        {
            await Console.Error.WriteLineAsync("error: --threads must be from 1 to 256");
            return 2;
        }

        if (string.IsNullOrWhiteSpace(settings.ModelId) || settings.ModelId.Length > 256)
        {
            await Console.Error.WriteLineAsync("error: --model-id must be a non-empty name of at most 256 characters");
            return 2;
        }

        try
        {
            using var server = new EmbeddingsServer(settings);
            return await server.RunAsync(address, cancellationToken);
        }
        catch (IOException)
        {
            await Console.Error.WriteLineAsync($"error: cannot listen on {settings.Host}:{settings.Port}: the address is in use or not available here");
            return 1;
        }
    }

    private static IPAddress? ListenAddress(string host) =>
        string.Equals(host, "localhost", StringComparison.OrdinalIgnoreCase) ? IPAddress.Loopback
        : IPAddress.TryParse(host, out var address) ? address
        : null;
}
