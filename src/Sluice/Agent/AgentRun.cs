using System.Runtime.InteropServices;
using Sluice.Agent.Machine;
using Sluice.Cli;
using Sluice.Hosting;

namespace Sluice.Agent;

/// <summary>
/// `sluice agent run`: loads the identity, starts the task supervisor and the serving endpoint
/// (<see cref="AgentComposition"/>), then heartbeats until a signal (exit 0, after stopping the tasks) or a refusal of
/// the machine (401 revoked, 410 decommissioned: the tasks are stopped, one <c>error:</c> line, exit 1).
/// </summary>
internal static class AgentRun
{
    public static readonly TimeSpan StopTimeout = TimeSpan.FromSeconds(60);

    public static async Task<int> RunAsync(string dataDir, LogLevel level, LogFormat format, TextWriter error, CancellationToken cancellationToken, string? modelsDir = null, TimeSpan? modelsRescan = null)
    {
        AgentIdentity identity;
        try
        {
            identity = AgentDataDirectory.Read(dataDir);
        }
        catch (AgentSetupException ex)
        {
            await error.WriteLineAsync($"error: {ex.Message}");
            return ExitCodes.Failure;
        }

        if (ControlClient.Refusal(identity.ServerUrl, out var server) is { } refused)
        {
            await error.WriteLineAsync($"error: the identity's server URL is not usable: {refused}");
            return ExitCodes.Failure;
        }

        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, Stop);
        using var sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, Stop);

        var loggers = LoggerFactory.Create(logging =>
        {
            SluiceApp.ConfigureLogging(logging, format);
            logging.SetMinimumLevel(level);
        });
        try
        {
            var logger = loggers.CreateLogger("Sluice.Agent");
            var time = TimeProvider.System;
            var wake = new AgentWake();
            var supervisor = AgentComposition.CreateSupervisor(identity, dataDir, time, loggers, wake);
            await using var serving = await AgentComposition.StartServingAsync(identity, dataDir, supervisor, time, loggers, stop.Token, wake);
            using var client = new ControlClient(server!, TimeSpan.FromSeconds(30));
            var probe = new MachineProbe(new MachineProbeSources { DiskPath = dataDir, ModelsDirectory = identity.ModelsDirectoryFor(dataDir, modelsDir), ModelsRescanInterval = modelsRescan ?? TimeSpan.FromSeconds(30) }, time, loggers.CreateLogger("Sluice.Agent.Machine"));
            var loop = new HeartbeatLoop(identity, client, supervisor, probe, time, logger, wake: wake);
            AgentLog.Running(logger, identity.MachineId, server!.GetLeftPart(UriPartial.Authority), identity.ServingUrl);

            var ended = await loop.RunAsync(stop.Token);
            AgentLog.Stopping(logger);
            using (var bound = new CancellationTokenSource(StopTimeout))
            {
                try
                {
                    await supervisor.StopAllAsync(bound.Token);
                }
                catch (OperationCanceledException) when (bound.IsCancellationRequested)
                {
                    AgentLog.StopTimedOut(logger, StopTimeout.TotalSeconds);
                }
            }

            if (supervisor is IAsyncDisposable disposable)
            {
                await disposable.DisposeAsync();
            }

            switch (ended)
            {
                case AgentStop.CredentialRefused:
                    await error.WriteLineAsync($"error: the server no longer accepts this machine's credential ({loop.Detail}); its tasks were stopped. If the machine should rejoin, get a new join token and run `sluice agent join --force`.");
                    return ExitCodes.Failure;
                case AgentStop.Decommissioned:
                    await error.WriteLineAsync($"error: this machine was decommissioned ({loop.Detail}); its tasks were stopped.");
                    return ExitCodes.Failure;
                default:
                    return ExitCodes.Success;
            }
        }
        finally
        {
            loggers.Dispose(); // flushes the console logger
        }

        void Stop(PosixSignalContext context)
        {
            context.Cancel = true; // the agent stops its tasks, then exits 0
            stop.Cancel();
        }
    }
}
