using Microsoft.Extensions.Options;

namespace Sluice.Files;

/// <summary>
/// Where encrypted bytes live: one file per stored file and one journal per running batch under
/// <see cref="FilesOptions.Directory"/>, each under its own data key wrapped by the <see cref="FileKeyRing"/>.
/// </summary>
public sealed class FileStore
{
    private readonly string _root;

    public FileStore(IOptions<FilesOptions> options, IOptions<Hosting.ServerOptions> server)
    {
        var settings = options.Value;
        _root = string.IsNullOrWhiteSpace(settings.Directory)
            ? Path.Combine(Path.GetFullPath(server.Value.DataDir), "files")
            : Path.GetFullPath(settings.Directory);
        Keys = !string.IsNullOrWhiteSpace(settings.KeyEncryptionKeys)
            ? FileKeyRing.FromText(settings.KeyEncryptionKeys)
            : FileKeyRing.FromFile(string.IsNullOrWhiteSpace(settings.KeyEncryptionKeyFile)
                ? Path.Combine(Path.GetFullPath(server.Value.DataDir), "keys", "files.kek")
                : Path.GetFullPath(settings.KeyEncryptionKeyFile));
        foreach (var directory in new[] { _root, Path.Combine(_root, "journals") })
        {
            if (OperatingSystem.IsWindows())
            {
                System.IO.Directory.CreateDirectory(directory);
            }
            else
            {
                System.IO.Directory.CreateDirectory(directory, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
            }
        }
    }

    public FileKeyRing Keys { get; }

    public string Root => _root;

    public static EncryptedFile.Binding FileBinding(Guid fileId, Guid orgId) => new("file", fileId, orgId);

    public string PathOf(Guid fileId) => Path.Combine(_root, fileId.ToString("N") + ".sf");

    public string JournalPathOf(Guid batchId) => Path.Combine(_root, "journals", batchId.ToString("N") + ".sj");

    /// <summary>Encrypts a stream into the file's place; a failed or oversize write leaves nothing behind.</summary>
    public Task<long> WriteAsync(Guid fileId, Guid orgId, Stream source, long maxBytes, Action<ReadOnlyMemory<byte>>? observe, CancellationToken cancellationToken) =>
        EncryptedFile.WriteAsync(PathOf(fileId), Keys, FileBinding(fileId, orgId), source, maxBytes, observe, cancellationToken);

    public Stream OpenRead(Guid fileId, Guid orgId) => EncryptedFile.OpenRead(PathOf(fileId), Keys, FileBinding(fileId, orgId));

    public bool Exists(Guid fileId) => File.Exists(PathOf(fileId));

    public void Shred(Guid fileId) => EncryptedFile.Shred(PathOf(fileId));

    /// <summary>Every encrypted object on disk, for key rotation and orphan sweeps.</summary>
    public IEnumerable<(Guid Id, bool IsJournal, string Path)> Objects()
    {
        foreach (var path in System.IO.Directory.EnumerateFiles(_root, "*.sf"))
        {
            if (Guid.TryParseExact(Path.GetFileNameWithoutExtension(path), "N", out var id))
            {
                yield return (id, false, path);
            }
        }

        foreach (var path in System.IO.Directory.EnumerateFiles(Path.Combine(_root, "journals"), "*.sj"))
        {
            if (Guid.TryParseExact(Path.GetFileNameWithoutExtension(path), "N", out var id))
            {
                yield return (id, true, path);
            }
        }
    }
}
