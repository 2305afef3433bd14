using System.CommandLine;
using Sluice.Agent;
using Sluice.Hosting;

namespace Sluice.Cli;

/// <summary>
/// <c>sluice agent join|run|status</c>: the machine agent. It needs no database and no server settings: everything it
/// knows is in its data directory.
/// </summary>
internal static class AgentCommand
{
    public static Command Create()
    {
        var command = new Command("agent", "Run this machine as a compute node of a Sluice server: join once, then keep it connected.");
        command.Subcommands.Add(Join());
        command.Subcommands.Add(Run());
        command.Subcommands.Add(Status());
        return command;
    }

    public const string JoinTokenVariable = "SLUICE_AGENT_JOIN_TOKEN";

    private static Option<string?> DataDirOption() => new("--data-dir")
    {
        Description = $"The agent's data directory (default ${AgentDataDirectory.EnvironmentVariable}, else {AgentDataDirectory.SystemDirectory} when writable, else ~/.local/share/sluice-agent).",
    };

    private static string DataDir(ParseResult parse, Option<string?> option) =>
        Path.GetFullPath(parse.GetValue(option) is { Length: > 0 } given ? given : AgentDataDirectory.Default());

    private static Option<string?> ModelsDirOption(string description) => new("--models-dir") { Description = description };

    private static Command Join()
    {
        var server = new Option<string>("--server") { Description = "The Sluice server's URL (https://; http:// only to a loopback address).", Required = true };
        var token = new Option<string?>("--token") { Description = $"The one-time join token an operator or org admin created (or ${JoinTokenVariable}, which keeps it out of the process list)." };
        var dataDir = DataDirOption();
        var listen = new Option<string>("--listen")
        {
            Description = "Where the serving endpoint listens (HTTPS).",
            DefaultValueFactory = _ => "https://0.0.0.0:8443",
        };
        var advertise = new Option<string?>("--advertise") { Description = "Where the gateway reaches this machine, https://HOST:PORT (default: this host's name and the listen port)." };
        var label = new Option<string[]>("--label") { Description = "A label key=value (repeatable), e.g. --label zone=eu-1.", AllowMultipleArgumentsPerToken = false };
        var force = new Option<bool>("--force") { Description = "Join again over an existing identity (replacing it)." };
        var modelsDir = ModelsDirOption("The directory whose model files (*.gguf, and directories with a config.json) deployments may name (default: {data-dir}/models); kept in agent.json.");
        var command = new Command("join", "Exchange a join token for this machine's identity and write it to the data directory.")
        {
            server, token, dataDir, listen, advertise, label, force, modelsDir,
        };
        command.SetAction((parse, cancellationToken) => GuardedAsync(() => AgentJoin.RunAsync(new JoinArguments
        {
            Server = parse.GetValue(server)!,
            Token = parse.GetValue(token) ?? Environment.GetEnvironmentVariable(JoinTokenVariable) ?? "",
            DataDir = DataDir(parse, dataDir),
            Listen = parse.GetValue(listen)!,
            Advertise = parse.GetValue(advertise),
            Labels = parse.GetValue(label) ?? [],
            Force = parse.GetValue(force),
            ModelsDir = parse.GetValue(modelsDir),
        }, Console.Out, Console.Error, TimeProvider.System, cancellationToken)));
        return command;
    }

    private static Command Run()
    {
        var dataDir = DataDirOption();
        var logLevel = new Option<LogLevel>("--log-level") { Description = "Lowest level logged.", DefaultValueFactory = _ => LogLevel.Information };
        var logFormat = new Option<LogFormat>("--log-format") { Description = "Console log format: text or json.", DefaultValueFactory = _ => LogFormat.Text };
        var modelsDir = ModelsDirOption("The directory whose model files the agent reports (default: the one given at join, else {data-dir}/models).");
        var rescan = new Option<int>("--models-rescan-seconds") { Description = "How often the models directory is scanned again.", DefaultValueFactory = _ => 30, Hidden = true };
        var command = new Command("run", "Keep this machine connected: heartbeats, telemetry, and the tasks the server assigns.")
        {
            dataDir, logLevel, logFormat, modelsDir, rescan,
        };
        command.SetAction((parse, cancellationToken) =>
            GuardedAsync(() => AgentRun.RunAsync(DataDir(parse, dataDir), parse.GetValue(logLevel), parse.GetValue(logFormat), Console.Error, cancellationToken, parse.GetValue(modelsDir),
                TimeSpan.FromSeconds(Math.Clamp(parse.GetValue(rescan), 1, 3600)))));
        return command;
    }

    /// <summary>Anything unforeseen (a data directory on a full disk, a port in use) is one <c>error:</c> line and exit 1, not a stack trace.</summary>
    private static async Task<int> GuardedAsync(Func<Task<int>> work)
    {
        try
        {
            return await work();
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            foreach (var line in StartupFailure.Describe(ex))
            {
                await Console.Error.WriteLineAsync($"error: {line.Replace("sluice could not start: ", "the agent failed: ", StringComparison.Ordinal)}");
            }

            return ExitCodes.Failure;
        }
    }

    private static Command Status()
    {
        var dataDir = DataDirOption();
        var command = new Command("status", "Show this machine's identity: machine id, server, serving URL (never the credential).") { dataDir };
        command.SetAction(async (parse, _) =>
        {
            var directory = DataDir(parse, dataDir);
            AgentIdentity identity;
            try
            {
                identity = AgentDataDirectory.Read(directory);
            }
            catch (AgentSetupException ex)
            {
                await Console.Error.WriteLineAsync($"error: {ex.Message}");
                return ExitCodes.Failure;
            }

            await Console.Out.WriteLineAsync($"machine:     {identity.MachineId}");
            await Console.Out.WriteLineAsync($"server:      {identity.ServerUrl}");
            await Console.Out.WriteLineAsync($"serving url: {identity.ServingUrl} (listening on {identity.ServingListenUrl})");
            await Console.Out.WriteLineAsync($"certificate: sha256 {identity.CertificateSha256}");
            await Console.Out.WriteLineAsync($"data dir:    {directory}");
            return ExitCodes.Success;
        });
        return command;
    }
}
