namespace Sluice.Tests.TestSupport;

/// <summary>Files in the repository and in ../shared beside it (present in CI).</summary>
public static class SharedFiles
{
    public static string RepositoryRoot()
    {
        for (var directory = new DirectoryInfo(AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
        {
            if (File.Exists(Path.Combine(directory.FullName, "Sluice.slnx")))
            {
                return directory.FullName;
            }
        }

        throw new InvalidOperationException("Sluice.slnx not found above the test binaries.");
    }

    /// <summary>A path under ../shared; skips the test locally when it is absent, fails under CI.</summary>
    public static string Require(string relative)
    {
        var path = Path.GetFullPath(Path.Combine(RepositoryRoot(), "..", "shared", relative));
        if (File.Exists(path) || Directory.Exists(path))
        {
            return path;
        }

        CrossCheck.Unavailable($"{path} is not beside this checkout (CI runs with ../shared beside it).");
        return path;
    }
}
