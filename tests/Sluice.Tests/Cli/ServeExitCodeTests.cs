using Sluice.Cli;
using Sluice.Hosting;
using Sluice.Storage;
using Sluice.Tests.TestSupport;

namespace Sluice.Tests.Cli;

/// <summary><c>serve</c> exits 0 only when a signal stopped it (SIGTERM, SIGINT: see ServeProcessTests); any other stop is a failure.</summary>
public sealed class ServeExitCodeTests
{
    [Fact]
    public async Task Serve_exits_with_a_failure_status_when_the_host_stops_without_a_signal()
    {
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Sqlite);
        var settings = new CommandLineSettings(null, new Dictionary<string, string?>
        {
            [SluiceConfiguration.ConnectionStringKey] = database.ConnectionString,
            ["Server:DataDir"] = database.Directory,
            ["Server:Urls"] = $"http://127.0.0.1:{SluiceProcess.FreePort()}",
            ["Identity:PasswordHashCost"] = "10",
        });

        // What a fatal failure inside the host does: stop the application, with no signal involved.
        var exitCode = await ServeCommand.RunAsync([], settings, app => app.Lifetime.StopApplication()).WaitAsync(TimeSpan.FromSeconds(60));

        Assert.Equal(ExitCodes.Failure, exitCode);
    }
}
