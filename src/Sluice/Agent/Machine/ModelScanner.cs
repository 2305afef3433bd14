using Sluice.Compute.Protocol;

namespace Sluice.Agent.Machine;

/// <summary>
/// The model files an agent offers under its models directory, for deployments' <c>path</c> artifacts: every
/// <c>*.gguf</c> file in it or in a directory directly under it, and every directory directly under it that holds a
/// <c>config.json</c> (a Hugging Face model for vLLM or TGI). Absolute paths and sizes only (nothing is read from the
/// files), sorted, at most <see cref="MaxModels"/>. A missing or unreadable directory offers nothing.
/// </summary>
public static class ModelScanner
{
    public const int MaxModels = 256;
    public const int MaxPathLength = 1000;

    /// <summary>Files counted for one directory's size before the count stops (a directory of a million files is not walked).</summary>
    private const int MaxFilesPerDirectory = 10_000;

    public static IReadOnlyList<ModelFile> Scan(string? directory)
    {
        if (string.IsNullOrEmpty(directory))
        {
            return [];
        }

        var root = Path.GetFullPath(directory);
        var found = new List<ModelFile>();
        try
        {
            if (!Directory.Exists(root))
            {
                return [];
            }

            foreach (var file in SafeFiles(root, "*.gguf"))
            {
                found.Add(new ModelFile { Path = file.FullName, Bytes = file.Length });
            }

            foreach (var sub in new DirectoryInfo(root).EnumerateDirectories())
            {
                foreach (var file in SafeFiles(sub.FullName, "*.gguf"))
                {
                    found.Add(new ModelFile { Path = file.FullName, Bytes = file.Length });
                }

                if (File.Exists(Path.Combine(sub.FullName, "config.json")))
                {
                    found.Add(new ModelFile { Path = sub.FullName, Bytes = Size(sub) });
                }
            }
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or System.Security.SecurityException)
        {
            // Unreadable: what was found so far stands.
        }

        return found.Where(m => m.Path.Length <= MaxPathLength && !m.Path.Any(char.IsControl))
            .OrderBy(m => m.Path, StringComparer.Ordinal).Take(MaxModels).ToList();
    }

    private static List<FileInfo> SafeFiles(string directory, string pattern)
    {
        try
        {
            return new DirectoryInfo(directory).EnumerateFiles(pattern, new EnumerationOptions { IgnoreInaccessible = true, MatchCasing = MatchCasing.CaseInsensitive }).ToList();
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return [];
        }
    }

    private static long Size(DirectoryInfo directory)
    {
        long total = 0;
        var files = 0;
        foreach (var file in directory.EnumerateFiles("*", new EnumerationOptions { RecurseSubdirectories = true, IgnoreInaccessible = true }))
        {
            total += file.Length;
            if (++files >= MaxFilesPerDirectory)
            {
                break;
            }
        }

        return total;
    }
}
