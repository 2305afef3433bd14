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

    /// <summary>0 picks a free port; the engine prints the address it bound (<c>listening on URL</c>) on stdout.</summary>
    public required int Port { get; init; }

    /// <summary>Batches embedded at once (each up to 32 inputs); further batches wait (reported as sluice_embeddings_requests_waiting).</summary>
    public int Parallel { get; init; } = 2;

    /// <summary>ONNX Runtime threads per batch (null: its choice, one per core).</summary>
    public int? Threads { get; init; }

    /// <summary>Exit when stdin reaches end-of-file: the parent that started the engine closed it or died (even by SIGKILL).</summary>
    public bool ExitWithParent { get; init; }

    /// <summary>When set, <c>/v1</c> requires it as a bearer token (the gateway gives its child one; never logged).</summary>
    public string? ApiKey { get; init; }

    /// <summary>Wait for this file to exist before loading the model (tests observe the loading state with it).</summary>
    public string? LoadWhenExists { get; init; }
}
