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
        var port = new Option<int>("--port") { Description = "Port to listen on.", Required = true };
        var command = new Command("embeddings", "Serve sentence embeddings (all-MiniLM-L6-v2 on ONNX Runtime): /v1/embeddings, /health, /metrics.")
        {
            modelId, host, port,
        };
        command.SetAction((parse, cancellationToken) => RunEmbeddingsAsync(new EmbeddingsEngineSettings
        {
            ModelId = parse.GetValue(modelId)!,
            Host = parse.GetValue(host)!,
            Port = parse.GetValue(port),
        }, cancellationToken));
        return command;
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static Task<int> RunLlamaAsync(LlamaEngineSettings settings, CancellationToken cancellationToken) =>
        LlamaEngine.RunAsync(settings, cancellationToken);

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static Task<int> RunEmbeddingsAsync(EmbeddingsEngineSettings settings, CancellationToken cancellationToken) =>
        EmbeddingsEngine.RunAsync(settings, cancellationToken);
}
