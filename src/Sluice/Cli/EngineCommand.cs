using System.CommandLine;
using System.Runtime.CompilerServices;
using Sluice.Engine;

namespace Sluice.Cli;

/// <summary>
/// <c>sluice engine llama|embeddings</c>: the built-in engines. The actions call into Sluice.Engine through methods the
/// JIT compiles only when they run, so no other command (serve above all) loads that assembly or its native libraries.
/// </summary>
internal static class EngineCommand
{
    public static Command Create()
    {
        var command = new Command("engine", "Run a built-in model server (a task on a machine, or the built-in embeddings model).");
        command.Subcommands.Add(LlamaCommand());
        command.Subcommands.Add(EmbeddingsCommand());
        return command;
    }

    private static Command LlamaCommand()
    {
        var model = new Option<string>("--model") { Description = "Path of the GGUF model file.", Required = true };
        var modelId = new Option<string?>("--model-id") { Description = "The id the engine answers to (default: the file name without extension)." };
        var host = new Option<string>("--host") { Description = "Address to listen on (loopback by default).", DefaultValueFactory = _ => "127.0.0.1" };
        var port = new Option<int>("--port") { Description = "Port to listen on.", Required = true };
        var context = new Option<int>("--context-size") { Description = "Context window in tokens.", DefaultValueFactory = _ => 2048 };
        var threads = new Option<int?>("--threads") { Description = "CPU threads for decoding (default: llama.cpp's choice)." };
        var parallel = new Option<int>("--parallel") { Description = "Requests decoded at once; more wait in a queue.", DefaultValueFactory = _ => 1 };
        var maxQueue = new Option<int>("--max-queue") { Description = "Requests that may wait for a slot; more are answered 503.", DefaultValueFactory = _ => 64 };
        var command = new Command("llama", "Serve a GGUF model with llama.cpp: OpenAI chat and completions, /health, /metrics.")
        {
            model, modelId, host, port, context, threads, parallel, maxQueue,
        };
        command.SetAction((parse, cancellationToken) => RunLlamaAsync(new LlamaEngineSettings
        {
            ModelPath = parse.GetValue(model)!,
            ModelId = parse.GetValue(modelId),
            Host = parse.GetValue(host)!,
            Port = parse.GetValue(port),
            ContextSize = parse.GetValue(context),
            Threads = parse.GetValue(threads),
            Parallel = parse.GetValue(parallel),
            MaxQueue = parse.GetValue(maxQueue),
        }, cancellationToken));
        return command;
    }

    private static Command EmbeddingsCommand()
    {
        var modelId = new Option<string>("--model-id") { Description = "The id the engine answers to.", DefaultValueFactory = _ => "all-MiniLM-L6-v2" };
        var host = new Option<string>("--host") { Description = "Address to listen on (loopback by default).", DefaultValueFactory = _ => "127.0.0.1" };
        var port = new Option<int>("--port") { Description = "Port to listen on; 0 picks a free one (printed as 'listening on URL').", Required = true };
        var parallel = new Option<int>("--parallel") { Description = "Batches (of up to 32 inputs) embedded at once; more wait in a queue.", DefaultValueFactory = _ => 2 };
        var threads = new Option<int?>("--threads") { Description = "ONNX Runtime threads per batch (default: one per core)." };
        var exitWithParent = new Option<bool>("--exit-with-parent") { Description = "Exit when standard input closes: the process that started the engine has ended, even if it was killed." };
        var loadWhenExists = new Option<string?>("--load-when-exists") { Description = "Wait for this file to exist before loading the model.", Hidden = true };
        var command = new Command("embeddings", $"Serve sentence embeddings (all-MiniLM-L6-v2 on ONNX Runtime): /v1/embeddings, /v1/models, /health, /metrics. With {EmbeddingsApiKeyVariable} set, /v1 requires it as a bearer token.")
        {
            modelId, host, port, parallel, threads, exitWithParent, loadWhenExists,
        };
        command.SetAction((parse, cancellationToken) => RunEmbeddingsAsync(
            parse.GetValue(modelId)!, parse.GetValue(host)!, parse.GetValue(port), parse.GetValue(parallel), parse.GetValue(threads),
            parse.GetValue(exitWithParent), parse.GetValue(loadWhenExists), cancellationToken));
        return command;
    }

    /// <summary>The variable the embeddings engine reads its API key from (Sluice.Engine's EmbeddingsEngine.ApiKeyVariable).</summary>
    internal const string EmbeddingsApiKeyVariable = EmbeddingsEngine.ApiKeyVariable; // a constant: compiled in, loads nothing

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static Task<int> RunLlamaAsync(LlamaEngineSettings settings, CancellationToken cancellationToken) =>
        LlamaEngine.RunAsync(settings, cancellationToken);

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static Task<int> RunEmbeddingsAsync(
        string modelId, string host, int port, int parallel, int? threads, bool exitWithParent, string? loadWhenExists, CancellationToken cancellationToken) =>
        EmbeddingsEngine.RunAsync(new EmbeddingsEngineSettings
        {
            ModelId = modelId,
            Host = host,
            Port = port,
            Parallel = parallel,
            Threads = threads,
            ExitWithParent = exitWithParent,
            ApiKey = Environment.GetEnvironmentVariable(EmbeddingsEngine.ApiKeyVariable),
            LoadWhenExists = loadWhenExists,
        }, cancellationToken);
}
