using Sluice.Crypto;

namespace Sluice.Tests.Crypto;

public sealed class SecretFileTests : IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("sluice-secret-file-").FullName;

    [Fact]
    public void Creates_an_owner_only_file_in_an_owner_only_directory_and_reads_it_back_afterwards()
    {
        var path = Path.Combine(_directory, "keys", "secret.key");

        var created = SecretFile.ReadOrCreate(path, () => "first");
        var again = SecretFile.ReadOrCreate(path, () => "second");

        Assert.Equal("first", created);
        Assert.Equal("first", again);
        Assert.Equal("first", File.ReadAllText(path));
        if (!OperatingSystem.IsWindows())
        {
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(path));
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute, File.GetUnixFileMode(Path.GetDirectoryName(path)!));
        }
    }

    [Fact]
    public async Task Processes_creating_it_at_once_all_end_up_with_the_same_secret()
    {
        var path = Path.Combine(_directory, "race.key");
        using var start = new Barrier(8);

        var secrets = await Task.WhenAll(Enumerable.Range(0, 8).Select(i => Task.Run(() =>
        {
            start.SignalAndWait();
            return SecretFile.ReadOrCreate(path, () => $"secret-{i}");
        })));

        Assert.Single(secrets.Distinct());
        Assert.Equal(secrets[0], File.ReadAllText(path));
    }

    [Fact]
    public void The_secret_box_key_file_is_owner_only_too()
    {
        var path = Path.Combine(_directory, "box", "secrets.key");
        var box = new SecretBox(path);

        Assert.Equal("hello", box.Open(box.Seal("hello", "ad"), "ad"));
        if (!OperatingSystem.IsWindows())
        {
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(path));
        }
    }

    public void Dispose() => Directory.Delete(_directory, recursive: true);
}
