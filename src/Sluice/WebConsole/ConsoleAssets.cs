using System.Collections.Frozen;
using System.Security.Cryptography;

namespace Sluice.WebConsole;

/// <summary>
/// The console's stylesheet and scripts, embedded in the executable (WebConsole/Assets) and served from this origin
/// under <see cref="ConsolePaths.Assets"/>, with a content hash in each URL so they can be cached for a year.
/// </summary>
public static class ConsoleAssets
{
    private const string ResourcePrefix = "console-assets/";

    private static readonly FrozenDictionary<string, Asset> Embedded = Load();

    /// <summary>The URL of an asset, versioned by its content: <c>/console-assets/console.css?v=…</c>.</summary>
    public static string Url(string name) =>
        Embedded.TryGetValue(name, out var asset)
            ? $"{ConsolePaths.Assets}/{name}?v={asset.Version}"
            : throw new ArgumentException($"No console asset is named {name}.", nameof(name));

    public static IEndpointRouteBuilder MapConsoleAssets(this IEndpointRouteBuilder endpoints)
    {
        endpoints.MapGet(ConsolePaths.Assets + "/{name}", (string name, HttpContext http) =>
        {
            if (!Embedded.TryGetValue(name, out var asset))
            {
                return Results.NotFound();
            }

            http.Response.Headers.CacheControl = "public, max-age=31536000, immutable";
            return Results.Bytes(asset.Content, asset.ContentType, entityTag: new Microsoft.Net.Http.Headers.EntityTagHeaderValue($"\"{asset.Version}\""));
        }).AllowAnonymous().ExcludeFromDescription();
        return endpoints;
    }

    private static FrozenDictionary<string, Asset> Load()
    {
        var assembly = typeof(ConsoleAssets).Assembly;
        var assets = new Dictionary<string, Asset>(StringComparer.Ordinal);
        foreach (var resource in assembly.GetManifestResourceNames().Where(n => n.StartsWith(ResourcePrefix, StringComparison.Ordinal)))
        {
            using var stream = assembly.GetManifestResourceStream(resource)!;
            using var buffer = new MemoryStream();
            stream.CopyTo(buffer);
            var content = buffer.ToArray();
            var name = resource[ResourcePrefix.Length..];
            assets[name] = new Asset(content, ContentTypeOf(name), Convert.ToHexStringLower(SHA256.HashData(content))[..16]);
        }

        return assets.ToFrozenDictionary(StringComparer.Ordinal);
    }

    private static string ContentTypeOf(string name) => Path.GetExtension(name) switch
    {
        ".css" => "text/css; charset=utf-8",
        ".js" => "text/javascript; charset=utf-8",
        ".svg" => "image/svg+xml",
        ".png" => "image/png",
        ".ico" => "image/x-icon",
        _ => "application/octet-stream",
    };

    private sealed record Asset(byte[] Content, string ContentType, string Version);
}
