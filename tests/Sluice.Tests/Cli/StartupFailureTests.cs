using System.Net;
using System.Net.Sockets;
using Sluice.Cli;
using Sluice.Storage;
using Sluice.Tests.TestSupport;

namespace Sluice.Tests.Cli;

/// <summary>Every way `sluice serve` can fail to start ends in a short, clear message and a non-zero exit, never a stack trace.</summary>
public sealed class StartupFailureTests
{
    private const string PasswordCanary = "canary-Pw-7f3a9c";

    [Theory]
    [InlineData("Host=;;==")]
    [InlineData("Frobnicate=yes;Password=" + PasswordCanary)]
    [InlineData("Host=db.internal;Port=notaport;Password=" + PasswordCanary)]
    [InlineData("postgres://user:" + PasswordCanary + "@/nohost")]
    public async Task A_bad_connection_string_fails_with_one_clear_line_without_the_password(string connectionString)
    {
        var (exitCode, stdout, stderr) = await SluiceProcess.RunAsync(
            ["serve", "--urls", $"http://127.0.0.1:{SluiceProcess.FreePort()}"],
            new Dictionary<string, string?> { ["SLUICE_DATABASE"] = connectionString });

        Assert.Equal(ExitCodes.Failure, exitCode);
        AssertOneClearLine(stderr);
        Assert.Contains("SLUICE_DATABASE", stderr, StringComparison.Ordinal);
        Assert.DoesNotContain(PasswordCanary, stdout + stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task An_unreachable_database_fails_with_one_clear_line_naming_it_without_the_password()
    {
        var closedPort = SluiceProcess.FreePort();
        var (exitCode, stdout, stderr) = await SluiceProcess.RunAsync(
            ["serve", "--urls", $"http://127.0.0.1:{SluiceProcess.FreePort()}", "--database",
             $"postgres://sluice:{PasswordCanary}@127.0.0.1:{closedPort}/sluice"]);

        Assert.Equal(ExitCodes.Failure, exitCode);
        AssertOneClearLine(stderr);
        Assert.Contains($"127.0.0.1:{closedPort}", stderr, StringComparison.Ordinal);
        Assert.DoesNotContain(PasswordCanary, stdout + stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", stdout, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_port_in_use_is_named()
    {
        using var occupant = new TcpListener(IPAddress.Loopback, 0);
        occupant.Start();
        var port = ((IPEndPoint)occupant.LocalEndpoint).Port;
        var dataDir = Directory.CreateTempSubdirectory("sluice-test-").FullName;

        var (exitCode, stdout, stderr) = await SluiceProcess.RunAsync(
            ["serve", "--urls", $"http://127.0.0.1:{port}", "--data-dir", dataDir]);

        Assert.Equal(ExitCodes.Failure, exitCode);
        AssertOneClearLine(stderr);
        Assert.Contains($"port {port} is already in use", stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", stdout, StringComparison.Ordinal);
    }

    [Fact]
    public async Task An_invalid_setting_from_the_environment_names_the_setting()
    {
        var (exitCode, _, stderr) = await SluiceProcess.RunAsync(
            ["serve"], new Dictionary<string, string?> { ["SLUICE__Server__ShutdownTimeout"] = "soon" });

        Assert.Equal(ExitCodes.Failure, exitCode);
        AssertOneClearLine(stderr);
        Assert.Contains("Server:ShutdownTimeout", stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Out_of_range_settings_name_each_setting()
    {
        var dataDir = Directory.CreateTempSubdirectory("sluice-test-").FullName;
        var (exitCode, _, stderr) = await SluiceProcess.RunAsync(
            ["serve", "--urls", $"http://127.0.0.1:{SluiceProcess.FreePort()}", "--data-dir", dataDir,
             "--set", "Identity:PasswordHashCost=99", "--set", "Database:CommandTimeout=00:00:00"]);

        Assert.Equal(ExitCodes.Failure, exitCode);
        Assert.Contains("error: invalid setting Identity:PasswordHashCost: must be between 10 and 16", stderr, StringComparison.Ordinal);
        Assert.Contains("error: invalid setting Database:CommandTimeout", stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Keeping_files_longer_than_the_thirty_days_commitment_is_refused()
    {
        var (exitCode, _, stderr) = await SluiceProcess.RunAsync(
            ["serve", "--urls", $"http://127.0.0.1:{SluiceProcess.FreePort()}", "--data-dir", Directory.CreateTempSubdirectory("sluice-test-").FullName,
             "--set", "Files:Retention=31.00:00:00"]);

        Assert.Equal(ExitCodes.Failure, exitCode);
        Assert.Contains("error: invalid setting Files:Retention: must be more than zero and at most 30 days", stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_missing_settings_file_is_named()
    {
        var (exitCode, _, stderr) = await SluiceProcess.RunAsync(["migrate", "--config", "/nonexistent/sluice.json"]);

        Assert.Equal(ExitCodes.Failure, exitCode);
        AssertOneClearLine(stderr);
        Assert.Contains("/nonexistent/sluice.json", stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_database_migrated_by_a_newer_sluice_is_refused()
    {
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Sqlite);
        var (migrated, _, migrateError) = await SluiceProcess.RunAsync(["migrate", "--database", database.ConnectionString]);
        Assert.True(migrated == 0, migrateError);
        await database.ExecuteAsync(
            "INSERT INTO \"__EFMigrationsHistory\" (\"MigrationId\", \"ProductVersion\") VALUES ('29990101000000_FromTheFuture', '99.0.0')");

        var (exitCode, _, stderr) = await SluiceProcess.RunAsync(
            ["serve", "--urls", $"http://127.0.0.1:{SluiceProcess.FreePort()}", "--database", database.ConnectionString]);

        Assert.Equal(ExitCodes.Failure, exitCode);
        AssertOneClearLine(stderr);
        Assert.Contains("29990101000000_FromTheFuture, newer than this sluice binary", stderr, StringComparison.Ordinal);
    }

    private static void AssertOneClearLine(string stderr)
    {
        var lines = stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        var line = Assert.Single(lines);
        Assert.StartsWith("error: ", line, StringComparison.Ordinal);
        Assert.DoesNotContain("Exception", line, StringComparison.Ordinal);
    }
}
