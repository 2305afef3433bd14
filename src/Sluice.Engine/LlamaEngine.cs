using System.Diagnostics;
using System.Net;
using System.Runtime.InteropServices;
using LLama.Native;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Sluice.Engine.Llama;

namespace Sluice.Engine;

/// <summary>Serves a GGUF model: OpenAI chat and completions (streaming too), <c>/health</c> and <c>/metrics</c>.</summary>
/// <remarks>
/// It listens before it loads, so probes see llama.cpp server's 503 "Loading model" until the weights are in memory. A
/// file that is missing or not GGUF ends the process with an <c>error:</c> line and exit code 1; SIGTERM ends it with 0.
/// Logging comes from the environment (<c>Logging__LogLevel__Default=Debug</c>); nothing it logs holds a prompt or a
/// completion, and llama.cpp's own log is held at warnings and errors (its debug output is dropped).
/// </remarks>
public static class LlamaEngine
{
    public static async Task<int> RunAsync(LlamaEngineSettings settings, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(settings);
        if (Validate(settings) is { } invalid)
        {
            await Console.Error.WriteLineAsync($"error: {invalid}");
            return 2;
        }

        if (!File.Exists(settings.ModelPath))
        {
            await Console.Error.WriteLineAsync($"error: the model file '{settings.ModelPath}' does not exist (or is not readable); pass a GGUF file with --model");
            return 1;
        }

        var modelId = settings.ModelId ?? Path.GetFileNameWithoutExtension(settings.ModelPath);
        var builder = WebApplication.CreateEmptyBuilder(new WebApplicationOptions());
        builder.Configuration.AddEnvironmentVariables();
        builder.Logging.AddEngineLogging(builder.Configuration);
        builder.Services.AddRoutingCore();
        builder.WebHost.UseKestrelCore();
        builder.WebHost.ConfigureKestrel(kestrel =>
        {
            kestrel.AddServerHeader = false;
            if (IPAddress.TryParse(settings.Host, out var address))
            {
                kestrel.Listen(address, settings.Port);
            }
            else if (settings.Host == "localhost")
            {
                kestrel.ListenLocalhost(settings.Port);
            }
            else
            {
                kestrel.ListenAnyIP(settings.Port);
            }
        });

        await using var app = builder.Build();
        var logger = app.Services.GetRequiredService<ILoggerFactory>().CreateLogger("Sluice.Engine.Llama");
        var loaded = false;
        ConfigureNativeLog(logger, () => !Volatile.Read(ref loaded));
        var metrics = new LlamaMetrics();
        var lifetime = app.Services.GetRequiredService<IHostApplicationLifetime>();
        var server = new LlamaServer(modelId, metrics, logger, TimeProvider.System, lifetime.ApplicationStopping);

        app.MapGet("/health", server.HealthAsync);
        app.MapGet("/metrics", server.MetricsAsync);
        app.MapGet("/v1/models", server.ModelsAsync);
        app.MapPost("/v1/chat/completions", server.ChatAsync);
        app.MapPost("/v1/completions", server.CompletionsAsync);
        app.MapFallback(LlamaServer.NotFoundAsync);

        using var terminate = PosixSignalRegistration.Create(PosixSignal.SIGTERM, Stop);
        using var interrupt = PosixSignalRegistration.Create(PosixSignal.SIGINT, Stop);
        using var cancelled = cancellationToken.Register(lifetime.StopApplication);

        try
        {
            await app.StartAsync(CancellationToken.None);
        }
        catch (IOException listen)
        {
            await Console.Error.WriteLineAsync($"error: cannot listen on {settings.Host}:{settings.Port}: {listen.Message}");
            return 1;
        }

        LlamaLog.Listening(logger, $"{settings.Host}:{settings.Port}", Path.GetFileName(settings.ModelPath));
        var watch = Stopwatch.StartNew();
        var loading = Task.Run(() => Load(settings, metrics), CancellationToken.None);
        var stopping = Task.Delay(Timeout.Infinite, lifetime.ApplicationStopping);
        if (await Task.WhenAny(loading, stopping) != loading)
        {
            await app.StopAsync(CancellationToken.None);
            return 0; // stopped while loading; the load (native code) ends with the process
        }

        LlamaModel model;
        try
        {
            model = await loading;
        }
        catch (EngineLoadException failure)
        {
            await Console.Error.WriteLineAsync($"error: {failure.Message}");
            await app.StopAsync(CancellationToken.None);
            return 1;
        }

        // The model is not disposed on the way out: a decode cut off by the shutdown timeout may still run on a
        // thread pool thread, and freeing its context under it would crash the exit. The process frees the memory.
        Volatile.Write(ref loaded, true);
        server.Ready(model);
        LlamaLog.Loaded(logger, modelId, watch.ElapsedMilliseconds, model.ParameterCount, model.ContextSize, settings.Parallel, model.UsesModelTemplate ? "the model's" : "plain fallback");
        using var stoppingLog = lifetime.ApplicationStopping.Register(() => LlamaLog.Stopping(logger, metrics.RequestsProcessing));
        await app.WaitForShutdownAsync(CancellationToken.None);
        return 0;

        void Stop(PosixSignalContext signal)
        {
            signal.Cancel = true;
            lifetime.StopApplication();
        }
    }

    private static string? Validate(LlamaEngineSettings settings)
    {
        if (settings.Port is < 1 or > 65535)
        {
            return $"--port must be between 1 and 65535 (got {settings.Port})";
        }

        if (settings.ContextSize is < 16 or > 1_048_576)
        {
            return $"--context-size must be between 16 and 1048576 tokens (got {settings.ContextSize})";
        }

        if (settings.Parallel is < 1 or > 64)
        {
            return $"--parallel must be between 1 and 64 (got {settings.Parallel})";
        }

        if (settings.MaxQueue is < 0 or > 100_000)
        {
            return $"--max-queue must be between 0 and 100000 (got {settings.MaxQueue})";
        }

        if (settings.Threads is < 1 or > 1024)
        {
            return $"--threads must be between 1 and 1024 (got {settings.Threads})";
        }

        if (string.IsNullOrWhiteSpace(settings.Host))
        {
            return "--host must name an address to listen on";
        }

        return string.IsNullOrWhiteSpace(settings.ModelId) && settings.ModelId is not null ? "--model-id must not be empty" : null;
    }

    private static LlamaModel Load(LlamaEngineSettings settings, LlamaMetrics metrics)
    {
        GgufFile.Check(settings.ModelPath);
        try
        {
            return LlamaModel.Load(settings, metrics);
        }
        catch (Exception failure) when (failure is not EngineLoadException)
        {
            // LoadWeightsFailedException (a file llama.cpp refuses), RuntimeError or DllNotFoundException (no native
            // build for this platform or CPU): their messages name paths and libraries, never content.
            throw new EngineLoadException($"llama.cpp could not load the model '{settings.ModelPath}' ({failure.GetType().Name}: {failure.Message}); check that the file is a complete GGUF model of an architecture llama.cpp supports", failure);
        }
    }

    /// <summary>
    /// llama.cpp's log goes to our logger at warning and error only once requests are served: its info and debug output
    /// (which may describe a request) is dropped then. While the model loads (no request yet) it is kept at Debug: which
    /// native library was chosen for this CPU, the model's metadata. Set before the native library loads.
    /// </summary>
    private static void ConfigureNativeLog(ILogger logger, Func<bool> loading)
    {
        var last = LLamaLogLevel.None;
        NativeLibraryConfig.All.WithLogCallback((level, message) =>
        {
            if (level == LLamaLogLevel.Continue)
            {
                level = last;
            }

            last = level;
            var line = message.TrimEnd();
            if (line.Length == 0)
            {
                return;
            }

            if (level == LLamaLogLevel.Error)
            {
                LlamaLog.NativeError(logger, line);
            }
            else if (level == LLamaLogLevel.Warning)
            {
                LlamaLog.NativeWarning(logger, line);
            }
            else if (loading() && logger.IsEnabled(LogLevel.Debug))
            {
                // Before the first request: which native library was chosen for this CPU, the model's metadata.
                LlamaLog.NativeDebug(logger, line);
            }
        });
    }
}

/// <summary>The model cannot be loaded: the engine prints the message as an <c>error:</c> line and exits 1.</summary>
public sealed class EngineLoadException(string message, Exception? inner = null) : Exception(message, inner);
