using Sluice.Cli;
using Sluice.Tests.TestSupport;

namespace Sluice.Tests.Cli;

public sealed class CommandLineTests
{
    [Fact]
    public async Task Version_prints_the_version_and_exits_zero()
    {
        var (exitCode, stdout, _) = await SluiceProcess.RunAsync(["--version"]);

        Assert.Equal(ExitCodes.Success, exitCode);
        Assert.Matches(@"^\d+\.\d+\.\d+", stdout.Trim());
    }

    [Theory]
    [InlineData("frobnicate")]
    [InlineData("serve", "--bogus")]
    [InlineData("migrate", "--no-such-option")]
    [InlineData("serve", "--urls")]
    public async Task Unknown_command_or_option_prints_usage_and_exits_2(params string[] arguments)
    {
        var (exitCode, _, stderr) = await SluiceProcess.RunAsync(arguments);

        Assert.Equal(ExitCodes.Usage, exitCode);
        Assert.StartsWith("error: ", stderr, StringComparison.Ordinal);
        Assert.Contains("Usage:", stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task No_command_prints_usage_and_exits_2()
    {
        var (exitCode, _, stderr) = await SluiceProcess.RunAsync([]);

        Assert.Equal(ExitCodes.Usage, exitCode);
        Assert.Contains("serve", stderr, StringComparison.Ordinal);
        Assert.Contains("migrate", stderr, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("--help")]
    [InlineData("serve", "--help")]
    [InlineData("migrate", "-h")]
    public async Task Every_command_has_help(params string[] arguments)
    {
        var (exitCode, stdout, _) = await SluiceProcess.RunAsync(arguments);

        Assert.Equal(ExitCodes.Success, exitCode);
        Assert.Contains("Usage:", stdout, StringComparison.Ordinal);
    }

    [Fact]
    public void Serve_documents_its_options()
    {
        var serve = SluiceCli.CreateRootCommand().Subcommands.Single(c => c.Name == "serve");

        Assert.Equal(
            ["--urls", "--data-dir", "--database", "--config", "--set", "--log-format"],
            serve.Options.Where(o => !o.Name.StartsWith("--help", StringComparison.Ordinal) && o.Name != "-h").Select(o => o.Name).Take(6));
        Assert.All(serve.Options, o => Assert.False(string.IsNullOrWhiteSpace(o.Description)));
    }
}
