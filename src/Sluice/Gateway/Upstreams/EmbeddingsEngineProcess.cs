using System.Diagnostics;
using System.Security.Cryptography;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Options;
using Sluice.Hosting;

namespace Sluice.Gateway;

/// <summary>
/// Runs and supervises the built-in embeddings engine: <c>sluice engine embeddings --exit-with-parent</c> as a child
/// process on a free loopback port, so the gateway process itself never loads ONNX Runtime or the model (90 MB of
/// weights, ~150 MB of memory). It starts on the first request for the model (or at server start with
/// <see cref="BuiltInEmbeddingsOptions.Preload"/>): a replica that never serves embeddings never pays for them.
/// The child gets a random API key in its environment (never on its command line), so nothing else on the machine can
/// use it without going through the gateway's checks and metering. A child that exits or does not load in time is
/// restarted with backoff (<see cref="SupervisedService"/>: 1 s doubling to a minute, shown in <c>/readyz</c>);
/// meanwhile its requests fail fast (a 502 like any unreachable provider) instead of waiting. On shutdown its stdin is
/// closed, which it takes as its cue to stop; if the server dies, even by SIGKILL, the kernel closes that pipe and the
/// child exits on its own.
/// </summary>
internal sealed class EmbeddingsEngineProcess(
    IOptions<BuiltInEmbeddingsOptions> options, TimeProvider time, ILogger<EmbeddingsEngineProcess> logger, BackgroundHealth? health = null)
    : SupervisedService(health)
{
    private const string ListeningLine = "listening on "; // what the engine prints on stdout (Sluice.Engine's EmbeddingsServer)
    private const string ReadyLine = "ready";

    private readonly TaskCompletionSource _demanded = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private volatile TaskCompletionSource<Endpoint> _ready = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private volatile Endpoint? _running;
    private volatile bool _down;
    private volatile string _state = "not started: it starts on the first request for the model";

    /// <summary>Where the running engine answers, and the key it wants.</summary>
    public sealed record Endpoint(Uri BaseUrl, string ApiKey, int ProcessId);

    /// <summary>What <c>/readyz</c> shows.</summary>
    public string State => _state;

    /// <summary>The engine crashed or failed to start and waits for its restart.</summary>
    public bool IsDown => _down;

    /// <summary>The running engine's process id, if one is running (tests).</summary>
    public int? ProcessId => _running?.ProcessId;

    protected override string LoopName => "builtin-embeddings-engine";

    /// <summary>
    /// The running engine; the first call starts it and waits for the model to load (bounded by the caller's token). While
    /// it restarts after a crash this fails at once with <see cref="HttpRequestException"/>, as an unreachable provider does.
    /// </summary>
    public async Task<Endpoint> EndpointAsync(CancellationToken cancellationToken)
    {
        if (_running is { } running)
        {
            return running;
        }

        _demanded.TrySetResult();
        if (_down)
        {
            throw new HttpRequestException("The built-in embeddings engine is restarting.");
        }

        return await _ready.Task.WaitAsync(cancellationToken);
    }

    protected override async Task RunAsync(CancellationToken stoppingToken)
    {
        var settings = options.Value;
        if (!settings.Enabled)
        {
            return;
        }

        if (settings.Preload)
        {
            _demanded.TrySetResult();
        }

        await _demanded.Task.WaitAsync(stoppingToken);
        BuiltInEmbeddingsLog.Starting(logger, Crashes == 0 ? "first use" : $"restart after {Crashes} failure(s)");
        _state = "starting";
        _down = false;
        var started = Stopwatch.GetTimestamp();
        var apiKey = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(32));
        Process? process = null;
        try
        {
            process = StartProcess(settings, apiKey);
            var processId = process.Id;
            _state = $"starting (pid {processId})";
            process.ErrorDataReceived += (_, e) =>
            {
                if (e.Data is { Length: > 0 } line)
                {
                    BuiltInEmbeddingsLog.EngineOutput(logger, processId, line.Length > 500 ? line[..500] : line);
                }
            };
            process.BeginErrorReadLine();

            Uri? address = null;
            using (var startup = new CancellationTokenSource(settings.StartupTimeout, time))
            using (var startupOrStop = CancellationTokenSource.CreateLinkedTokenSource(startup.Token, stoppingToken))
            {
                try
                {
                    while (true)
                    {
                        var line = await process.StandardOutput.ReadLineAsync(startupOrStop.Token);
                        if (line is null)
                        {
                            await process.WaitForExitAsync(startupOrStop.Token);
                            BuiltInEmbeddingsLog.Exited(logger, processId, process.ExitCode);
                            throw new EngineExitedException($"The built-in embeddings engine exited with code {process.ExitCode} while loading.");
                        }

                        if (line.StartsWith(ListeningLine, StringComparison.Ordinal))
                        {
                            address = new Uri(line[ListeningLine.Length..].Trim().TrimEnd('/') + "/");
                        }
                        else if (line == ReadyLine && address is not null)
                        {
                            break;
                        }
                    }
                }
                catch (OperationCanceledException) when (startup.IsCancellationRequested && !stoppingToken.IsCancellationRequested)
                {
                    BuiltInEmbeddingsLog.StartupTimedOut(logger, processId, settings.StartupTimeout);
                    throw new TimeoutException("The built-in embeddings engine did not load in time.");
                }
            }

            var endpoint = new Endpoint(address, apiKey, processId);
            _running = endpoint;
            _state = $"running (pid {processId})";
            BuiltInEmbeddingsLog.Ready(logger, processId, address.ToString(), (long)Stopwatch.GetElapsedTime(started).TotalMilliseconds);
            _ready.TrySetResult(endpoint);
            _ = DrainAsync(process.StandardOutput); // the engine prints nothing more there, but a full pipe must never block it

            await process.WaitForExitAsync(stoppingToken);
            BuiltInEmbeddingsLog.Exited(logger, processId, process.ExitCode);
            throw new EngineExitedException($"The built-in embeddings engine exited with code {process.ExitCode}.");
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            _state = "stopped with the server";
            throw;
        }
        catch (Exception ex)
        {
            _down = true;
            _state = $"restarting after a failure ({ex.GetType().Name})";
            throw;
        }
        finally
        {
            _running = null;
            var waiting = _ready;
            _ready = new TaskCompletionSource<Endpoint>(TaskCreationOptions.RunContinuationsAsynchronously);
            waiting.TrySetException(new HttpRequestException("The built-in embeddings engine stopped before it could serve."));
            if (process is not null)
            {
                await StopProcessAsync(process);
            }
        }
    }

    /// <summary>Closes the child's stdin (its signal to stop), waits briefly, then kills it; never leaves it running.</summary>
    private async Task StopProcessAsync(Process process)
    {
        using (process)
        {
            try
            {
                if (!process.HasExited)
                {
                    var processId = process.Id;
                    process.StandardInput.Close();

                    // A wall-clock bound on an operating-system process, not a timer the server's clock should move.
                    using var grace = new CancellationTokenSource(TimeSpan.FromSeconds(5));
                    try
                    {
                        await process.WaitForExitAsync(grace.Token);
                        BuiltInEmbeddingsLog.Stopped(logger, processId);
                    }
                    catch (OperationCanceledException)
                    {
                        process.Kill(entireProcessTree: true);
                        await process.WaitForExitAsync(CancellationToken.None);
                    }
                }
            }
            catch (InvalidOperationException)
            {
                // It was never started, or has already gone.
            }
        }
    }

    private static async Task DrainAsync(StreamReader output)
    {
        try
        {
            var buffer = new char[1024];
            while (await output.ReadAsync(buffer) > 0)
            {
            }
        }
        catch (Exception ex) when (ex is IOException or ObjectDisposedException or InvalidOperationException)
        {
        }
    }

    private static Process StartProcess(BuiltInEmbeddingsOptions settings, string apiKey)
    {
        var (fileName, prefix) = SluiceExecutable.Locate();
        var info = new ProcessStartInfo(fileName)
        {
            UseShellExecute = false,
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            WorkingDirectory = AppContext.BaseDirectory,
        };
        foreach (var argument in prefix)
        {
            info.ArgumentList.Add(argument);
        }

        string[] arguments = ["engine", "embeddings", "--host", "127.0.0.1", "--port", "0", "--exit-with-parent",
            "--model-id", Catalog.BuiltInEmbeddingsModelId, "--parallel", settings.Parallel.ToString(System.Globalization.CultureInfo.InvariantCulture)];
        foreach (var argument in arguments)
        {
            info.ArgumentList.Add(argument);
        }

        if (settings.Threads is { } threads)
        {
            info.ArgumentList.Add("--threads");
            info.ArgumentList.Add(threads.ToString(System.Globalization.CultureInfo.InvariantCulture));
        }

        // The engine needs none of the server's settings, and some of them are secrets (a database password).
        foreach (var name in info.Environment.Keys.Where(IsServerSetting).ToList())
        {
            info.Environment.Remove(name);
        }

        info.Environment[Cli.EngineCommand.EmbeddingsApiKeyVariable] = apiKey;
        info.Environment["DOTNET_NOLOGO"] = "1";
        return Process.Start(info) ?? throw new InvalidOperationException("The built-in embeddings engine did not start.");
    }

    private static bool IsServerSetting(string name) =>
        name.StartsWith("SLUICE", StringComparison.OrdinalIgnoreCase)
        || name.StartsWith("ConnectionStrings", StringComparison.OrdinalIgnoreCase)
        || name.StartsWith("ASPNETCORE_", StringComparison.OrdinalIgnoreCase);

    private sealed class EngineExitedException(string message) : Exception(message);
}

/// <summary>How to run this same <c>sluice</c> again as a child process.</summary>
internal static class SluiceExecutable
{
    /// <summary>
    /// The running apphost when it is <c>sluice</c>; otherwise <c>dotnet sluice.dll</c> from this program's directory
    /// (<c>dotnet sluice.dll serve</c>, or a test host running the server in process), with the <c>dotnet</c> that runs
    /// this process when it can be found.
    /// </summary>
    public static (string FileName, IReadOnlyList<string> Prefix) Locate()
    {
        var self = Environment.ProcessPath;
        var selfName = self is null ? null : Path.GetFileName(self); // not ...WithoutExtension: "Sluice.Tests" is not "Sluice"
        if (self is not null && selfName is "sluice" or "sluice.exe")
        {
            return (self, []);
        }

        var dll = Path.Combine(AppContext.BaseDirectory, "sluice.dll");
        if (!File.Exists(dll))
        {
            throw new FileNotFoundException("Neither the sluice executable nor sluice.dll is where this program runs from; the built-in embeddings engine cannot start.");
        }

        if (self is not null && selfName is "dotnet" or "dotnet.exe")
        {
            return (self, [dll]);
        }

        var host = Path.GetFullPath(Path.Combine(System.Runtime.InteropServices.RuntimeEnvironment.GetRuntimeDirectory(), "..", "..", "..",
            OperatingSystem.IsWindows() ? "dotnet.exe" : "dotnet"));
        return (File.Exists(host) ? host : "dotnet", [dll]);
    }
}

/// <summary><c>/readyz</c>: the built-in embeddings engine's state; degraded (the server still ready) while it restarts.</summary>
internal sealed class EmbeddingsEngineHealthCheck(EmbeddingsEngineProcess engine, IOptions<BuiltInEmbeddingsOptions> options) : IHealthCheck
{
    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default) =>
        Task.FromResult(!options.Value.Enabled ? HealthCheckResult.Healthy("disabled (Gateway:BuiltInEmbeddings:Enabled)")
            : engine.IsDown ? HealthCheckResult.Degraded(engine.State)
            : HealthCheckResult.Healthy(engine.State));
}
