using Microsoft.Extensions.Configuration;
using Sluice.Hosting;
using Sluice.Identity;
using Sluice.Storage;
using Sluice.Tests.TestSupport;

namespace Sluice.Tests.Hosting;

public sealed class SettingsTests : IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("sluice-test-").FullName;

    [Fact]
    public void Command_line_beats_a_settings_file_which_beats_appsettings()
    {
        File.WriteAllText(Path.Combine(_directory, "appsettings.json"),
            """{ "Server": { "DataDir": "from-appsettings", "Urls": "http://127.0.0.1:1111", "LogFormat": "Text" } }""");
        var settingsFile = Path.Combine(_directory, "site.json");
        File.WriteAllText(settingsFile, """{ "Server": { "DataDir": "from-file", "LogFormat": "Json" } }""");

        var fromFile = Bind(new CommandLineSettings(settingsFile, new Dictionary<string, string?>()));
        var fromCommandLine = Bind(new CommandLineSettings(settingsFile, new Dictionary<string, string?> { ["Server:DataDir"] = "from-command-line" }));

        Assert.Equal("from-file", fromFile.DataDir);
        Assert.Equal(LogFormat.Json, fromFile.LogFormat);
        Assert.Equal("http://127.0.0.1:1111", fromFile.Urls);
        Assert.Equal("from-command-line", fromCommandLine.DataDir);
    }

    [Fact]
    public void The_defaults_are_the_documented_ones()
    {
        var server = new ServerOptions();
        var database = new DatabaseOptions();
        var identity = new IdentityOptions();

        Assert.Equal("http://127.0.0.1:8080", server.Urls);
        Assert.Equal("data", server.DataDir);
        Assert.Equal(TimeSpan.FromSeconds(30), server.ShutdownTimeout);
        Assert.Equal(LogFormat.Text, server.LogFormat);
        Assert.True(database.MigrateOnStart);
        Assert.Equal(12, identity.PasswordHashCost);
        Assert.Equal("operator@localhost", identity.OperatorEmail);
    }

    [Fact]
    public void Every_failure_names_its_setting()
    {
        Assert.Equal(
            ["Server:ShutdownTimeout: must be between 00:00:00 and 00:10:00",
             "Server:Urls: 'ftp://x' is not a listen address; use the form http://127.0.0.1:8080 (several separated by ';')"],
            SettingsValidator<ServerOptions>.Failures("Server", new ServerOptions { Urls = "ftp://x", ShutdownTimeout = TimeSpan.FromHours(1) }).Order());
        Assert.Equal(
            ["Identity:OperatorEmail: must be an email address", "Identity:PasswordHashCost: must be between 10 and 16"],
            SettingsValidator<IdentityOptions>.Failures("Identity", new IdentityOptions { OperatorEmail = "nobody", PasswordHashCost = 4 }).Order());
        Assert.Equal(
            ["Database:CommandTimeout: must be between 00:00:01 and 00:10:00"],
            SettingsValidator<DatabaseOptions>.Failures("Database", new DatabaseOptions { CommandTimeout = TimeSpan.Zero }));
    }

    [Fact]
    public async Task Settings_given_in_the_environment_and_on_the_command_line_reach_the_server()
    {
        var fromEnvironment = Path.Combine(_directory, "env-data");
        var fromArgument = Path.Combine(_directory, "arg-data");
        var viaDatabaseVariable = Path.Combine(_directory, "db-variable.db");

        var (exitCode, _, stderr) = await SluiceProcess.RunAsync(
            ["migrate"], new Dictionary<string, string?> { ["SLUICE__Server__DataDir"] = fromEnvironment });
        Assert.True(exitCode == 0, stderr);
        Assert.True(File.Exists(Path.Combine(fromEnvironment, "sluice.db")));

        (exitCode, _, stderr) = await SluiceProcess.RunAsync(
            ["migrate", "--data-dir", fromArgument], new Dictionary<string, string?> { ["SLUICE__Server__DataDir"] = fromEnvironment });
        Assert.True(exitCode == 0, stderr);
        Assert.True(File.Exists(Path.Combine(fromArgument, "sluice.db")));

        (exitCode, var stdout, stderr) = await SluiceProcess.RunAsync(
            ["migrate"], new Dictionary<string, string?> { ["SLUICE_DATABASE"] = $"sqlite:{viaDatabaseVariable}" });
        Assert.True(exitCode == 0, stderr);
        Assert.True(File.Exists(viaDatabaseVariable));
        Assert.Contains($"SQLite {viaDatabaseVariable}: schema", stdout, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_server_with_migrate_on_start_off_refuses_a_database_with_pending_migrations()
    {
        var (exitCode, _, stderr) = await SluiceProcess.RunAsync(
            ["serve", "--urls", $"http://127.0.0.1:{SluiceProcess.FreePort()}", "--data-dir", _directory, "--set", "Database:MigrateOnStart=false"]);

        Assert.Equal(1, exitCode);
        Assert.Contains("pending migration(s) and Database:MigrateOnStart is off. Run `sluice migrate` first.", stderr, StringComparison.Ordinal);
    }

    private ServerOptions Bind(CommandLineSettings commandLine)
    {
        var configuration = new ConfigurationManager();
        configuration.UseSluiceSources(_directory, "Production", commandLine, []);
        return SettingsValidator<ServerOptions>.BindNow(configuration, ServerOptions.Section, () => new ServerOptions());
    }

    public void Dispose()
    {
        try
        {
            Directory.Delete(_directory, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}
