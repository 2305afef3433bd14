namespace Sluice.Crypto;

/// <summary>A secret kept in a file only its owner can read: created once, shared by every process that starts after.</summary>
public static class SecretFile
{
    /// <summary>
    /// The file's text; when there is no file yet, writes <paramref name="create"/>'s text with owner-only permissions
    /// (in an owner-only directory). When another process creates it at the same moment, the first to finish wins, so
    /// every replica ends up with the same secret.
    /// </summary>
    public static string ReadOrCreate(string path, Func<string> create)
    {
        if (File.Exists(path))
        {
            return File.ReadAllText(path);
        }

        var directory = Path.GetDirectoryName(Path.GetFullPath(path))!;
        if (OperatingSystem.IsWindows())
        {
            Directory.CreateDirectory(directory);
        }
        else
        {
            Directory.CreateDirectory(directory, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        }

        // Written under a temporary name and then moved into place, which fails if the file exists: a reader never sees
        // a half-written secret, and of two creators exactly one wins.
        var text = create();
        var temporary = Path.Combine(directory, $".{Path.GetFileName(path)}.{Guid.NewGuid():N}.tmp");
        var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write };
        if (!OperatingSystem.IsWindows())
        {
            options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        }

        try
        {
            using (var writer = new StreamWriter(new FileStream(temporary, options)))
            {
                writer.Write(text);
            }

            File.Move(temporary, path, overwrite: false);
            return text;
        }
        catch (IOException) when (File.Exists(path))
        {
            return File.ReadAllText(path);
        }
        finally
        {
            File.Delete(temporary);
        }
    }
}
