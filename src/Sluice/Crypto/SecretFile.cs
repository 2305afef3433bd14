namespace Sluice.Crypto;

/// <summary>A secret kept in a file only its owner can read: created once, shared by every process that starts after.</summary>
public static class SecretFile
{
    /// <summary>
    /// The file's text; when there is no file yet, writes <paramref name="create"/>'s text with owner-only permissions
    /// (in an owner-only directory). Processes creating it at the same moment take turns, so every replica ends up with
    /// the same secret.
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

        // Creators take turns under an exclusive lock on a sibling lock file (a rename that must not overwrite is not
        // atomic on every file system: two processes could each install their own secret). Inside it the secret is
        // written under a temporary name and moved into place, so a reader never sees a half-written one.
        var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write };
        if (!OperatingSystem.IsWindows())
        {
            options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        }

        for (var attempt = 1; ; attempt++)
        {
            FileStream gate;
            try
            {
                gate = new FileStream(path + ".lock", FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
            }
            catch (IOException) when (attempt < 500)
            {
                Thread.Sleep(10); // another creator holds the lock
                continue;
            }

            using (gate)
            {
                if (File.Exists(path))
                {
                    return File.ReadAllText(path);
                }

                var text = create();
                var temporary = Path.Combine(directory, $".{Path.GetFileName(path)}.{Guid.NewGuid():N}.tmp");
                try
                {
                    using (var writer = new StreamWriter(new FileStream(temporary, options)))
                    {
                        writer.Write(text);
                    }

                    File.Move(temporary, path, overwrite: false);
                    return text;
                }
                finally
                {
                    File.Delete(temporary);
                }
            }
        }
    }
}
