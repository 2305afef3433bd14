using System.Net;
using System.Text.Json;
using Microsoft.Data.Sqlite;
using Sluice.Cli;
using Sluice.Crypto;
using Sluice.Tests.TestSupport;

namespace Sluice.Tests.Cli;

/// <summary>`sluice serve` as an operator runs it: a real process, real HTTP on loopback, signals.</summary>
public sealed class ServeProcessTests : IDisposable
{
    private readonly string _workingDirectory = Directory.CreateTempSubdirectory("sluice-test-").FullName;

    [Fact]
    public async Task Serve_creates_the_embedded_database_answers_health_and_readiness_and_stops_cleanly_on_SIGTERM()
    {
        var port = SluiceProcess.FreePort();
        await using var sluice = SluiceProcess.Start(["serve", "--urls", $"http://127.0.0.1:{port}"], workingDirectory: _workingDirectory);
        await sluice.WaitForOutputAsync("Sluice is listening", TimeSpan.FromSeconds(60));

        using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}") };
        var health = await http.GetAsync("/healthz");
        var ready = await http.GetAsync("/readyz");
        using var readiness = JsonDocument.Parse(await ready.Content.ReadAsStringAsync());

        Assert.Equal(HttpStatusCode.OK, health.StatusCode);
        Assert.Equal(HttpStatusCode.OK, ready.StatusCode);
        Assert.Equal("ok", readiness.RootElement.GetProperty("checks").GetProperty("database").GetProperty("status").GetString());
        var databaseFile = Path.Combine(_workingDirectory, "data", "sluice.db");
        Assert.True(File.Exists(databaseFile), "the default database lives at ./data/sluice.db");
        Assert.Equal("wal", await JournalModeAsync(databaseFile));

        sluice.SendSignal(Signals.Terminate);
        Assert.Equal(ExitCodes.Success, await sluice.WaitForExitAsync(TimeSpan.FromSeconds(30)));
        Assert.Contains("Application is shutting down", sluice.Stdout, StringComparison.Ordinal);
    }

    [Fact]
    public async Task The_first_start_prints_the_operator_credential_once_and_never_logs_it()
    {
        var port = SluiceProcess.FreePort();
        string password;
        await using (var first = SluiceProcess.Start(
            ["serve", "--urls", $"http://127.0.0.1:{port}", "--log-format", "json", "--set", "Identity:PasswordHashCost=10"],
            workingDirectory: _workingDirectory))
        {
            await first.WaitForOutputAsync("Sluice is listening", TimeSpan.FromSeconds(60));
            first.SendSignal(Signals.Terminate);
            await first.WaitForExitAsync(TimeSpan.FromSeconds(30));

            var passwordLine = Assert.Single(first.Stdout.Split('\n'), l => l.TrimStart().StartsWith("password:", StringComparison.Ordinal));
            password = passwordLine.Split(':', 2)[1].Trim();
            Assert.Equal(24, password.Length);
            Assert.Single(first.Stdout.Split('\n'), l => l.Contains(password, StringComparison.Ordinal));
            var logLines = first.Stdout.Split('\n').Where(l => l.StartsWith('{')).ToList();
            Assert.NotEmpty(logLines);
            Assert.All(logLines, l => Assert.DoesNotContain(password, l, StringComparison.Ordinal));
            Assert.Contains(logLines, l => l.Contains("Created platform operator", StringComparison.Ordinal));
        }

        var hash = await ScalarAsync(Path.Combine(_workingDirectory, "data", "sluice.db"), "SELECT password_hash FROM users WHERE is_platform_operator = 1");
        Assert.StartsWith("$2b$10$", hash, StringComparison.Ordinal);
        Assert.True(Bcrypt.Verify(password, hash));
        Assert.DoesNotContain(password, await File.ReadAllTextAsync(Path.Combine(_workingDirectory, "data", "sluice.db"), System.Text.Encoding.Latin1), StringComparison.Ordinal);

        await using var second = SluiceProcess.Start(["serve", "--urls", $"http://127.0.0.1:{port}"], workingDirectory: _workingDirectory);
        await second.WaitForOutputAsync("Sluice is listening", TimeSpan.FromSeconds(60));
        second.SendSignal(Signals.Terminate);
        await second.WaitForExitAsync(TimeSpan.FromSeconds(30));
        Assert.DoesNotContain("password:", second.Stdout, StringComparison.Ordinal);
        Assert.DoesNotContain(password, second.Stdout + second.Stderr, StringComparison.Ordinal);
    }

    private static async Task<string> JournalModeAsync(string file) => await ScalarAsync(file, "PRAGMA journal_mode");

    private static async Task<string> ScalarAsync(string file, string sql)
    {
        await using var connection = new SqliteConnection($"Data Source={file};Pooling=false");
        await connection.OpenAsync();
        await using var command = connection.CreateCommand();
        command.CommandText = sql;
        return (string)(await command.ExecuteScalarAsync())!;
    }

    public void Dispose()
    {
        try
        {
            Directory.Delete(_workingDirectory, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}
