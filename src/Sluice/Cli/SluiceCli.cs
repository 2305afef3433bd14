using System.CommandLine;
using System.CommandLine.Help;

namespace Sluice.Cli;

/// <summary>The <c>sluice</c> command line: parses, dispatches, and turns every failure into a clear line and an exit code.</summary>
public static class SluiceCli
{
    public static async Task<int> RunAsync(string[] args)
    {
        if (IsHostingToolInvocation(args))
        {
            return await ServeCommand.RunAsync(args, Hosting.CommandLineSettings.None);
        }

        var root = CreateRootCommand();
        var parse = root.Parse(args);
        if (parse.Errors.Count > 0)
        {
            foreach (var error in parse.Errors)
            {
                await Console.Error.WriteLineAsync($"error: {error.Message}");
            }

            await Console.Error.WriteLineAsync();
            WriteHelp(root, parse, Console.Error);
            return ExitCodes.Usage;
        }

        return await parse.InvokeAsync(new InvocationConfiguration
        {
            // The server handles SIGTERM itself, draining in-flight requests for Server:ShutdownTimeout.
            ProcessTerminationTimeout = null,
            EnableDefaultExceptionHandler = false,
        });
    }

    public static RootCommand CreateRootCommand()
    {
        var root = new RootCommand("Sluice: a self-hosted AI inference platform with an OpenAI-compatible API.");
        root.Subcommands.Add(ServeCommand.Create());
        root.Subcommands.Add(MigrateCommand.Create());
        root.Subcommands.Add(OrgsCommand.Create());
        root.Subcommands.Add(KeysCommand.Create());
        root.Subcommands.Add(CatalogCommands.Providers());
        root.Subcommands.Add(CatalogCommands.Models());
        root.Subcommands.Add(BillingCommands.Wallet());
        root.Subcommands.Add(BillingCommands.Prices());
        root.Subcommands.Add(BillingCommands.GpuPrices());
        root.Subcommands.Add(AuditCommand.Create());
        root.Subcommands.Add(FilesCommand.Create());
        root.Subcommands.Add(MachinesCommand.Create());
        root.Subcommands.Add(DeploymentsCommand.Create());
        root.Subcommands.Add(EngineCommand.Create());
        root.Subcommands.Add(AgentCommand.Create());
        return root;
    }

    /// <summary>
    /// Hosting tools such as WebApplicationFactory start the entry point with host settings only
    /// (<c>--applicationName=… --environment=…</c>); that means "serve with these settings".
    /// </summary>
    private static bool IsHostingToolInvocation(string[] args) =>
        args.Length > 0
        && args.All(a => a.StartsWith("--", StringComparison.Ordinal) && a.Contains('=', StringComparison.Ordinal))
        && args.Any(a => a.StartsWith("--applicationName=", StringComparison.OrdinalIgnoreCase));

    private static void WriteHelp(RootCommand root, ParseResult failed, TextWriter writer)
    {
        var path = new Stack<string>();
        for (var result = failed.CommandResult; result.Parent is System.CommandLine.Parsing.CommandResult parent; result = parent)
        {
            path.Push(result.Command.Name);
        }

        var help = root.Parse([.. path, "--help"]);
        new HelpAction().Invoke(help.WithOutput(writer));
    }

    private static ParseResult WithOutput(this ParseResult parse, TextWriter writer)
    {
        parse.InvocationConfiguration.Output = writer;
        return parse;
    }
}
