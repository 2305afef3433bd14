namespace Sluice.Engine;

/// <summary>`sluice engine llama`: serve one GGUF model with llama.cpp behind an OpenAI-compatible API.</summary>
public sealed record LlamaEngineSettings
{
    public required string ModelPath { get; init; }

    /// <summary>The id the engine answers to in <c>/v1/models</c> and <c>model</c>; defaults to the file name without extension.</summary>
    public string? ModelId { get; init; }

    public string Host { get; init; } = "127.0.0.1";
    public required int Port { get; init; }
    public int ContextSize { get; init; } = 2048;
    public int? Threads { get; init; }

    /// <summary>Requests decoded at once; further requests wait (reported as llamacpp:requests_deferred).</summary>
    public int Parallel { get; init; } = 1;

    /// <summary>Requests that may wait for a slot; one more is answered 503 (queue_full) with Retry-After.</summary>
    public int MaxQueue { get; init; } = 64;
}

/// <summary>`sluice engine embeddings`: sentence embeddings with all-MiniLM-L6-v2 on ONNX Runtime.</summary>
public sealed record EmbeddingsEngineSettings
{
    public string ModelId { get; init; } = "all-MiniLM-L6-v2";
    public string Host { get; init; } = "127.0.0.1";
    public required int Port { get; init; }
}
