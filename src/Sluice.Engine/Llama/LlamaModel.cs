using System.Diagnostics;
using System.Text;
using System.Threading.Channels;
using LLama;
using LLama.Common;
using LLama.Native;
using LLama.Sampling;

namespace Sluice.Engine.Llama;

/// <summary>Why a generation ended, in OpenAI's words.</summary>
internal enum FinishReason
{
    Stop,
    Length,
}

/// <summary>What a finished generation counts (token counts by the model's own tokenizer).</summary>
internal sealed record GenerationResult(int PromptTokens, int CompletionTokens, FinishReason Finish);

/// <summary>The queue is full: the engine answers 503 and the caller retries.</summary>
internal sealed class QueueFullException(int waiting) : Exception($"{waiting} requests already wait for a slot")
{
    public int Waiting { get; } = waiting;
}

/// <summary>
/// A loaded GGUF model and its decoding slots: <c>parallel</c> llama.cpp contexts, each decoding one request at a time.
/// A request takes a free slot or waits in a bounded queue (counted as <c>llamacpp:requests_deferred</c>).
/// </summary>
internal sealed class LlamaModel : IDisposable
{
    private readonly LLamaWeights _weights;
    private readonly Channel<LLamaContext> _slots;
    private readonly List<LLamaContext> _contexts = [];
    private readonly LlamaMetrics _metrics;
    private readonly int _maxQueue;
    private readonly bool _hasTemplate;

    private LlamaModel(LLamaWeights weights, ModelParams parameters, int parallel, int maxQueue, LlamaMetrics metrics)
    {
        _weights = weights;
        _metrics = metrics;
        _maxQueue = maxQueue;
        _slots = Channel.CreateUnbounded<LLamaContext>();
        for (var i = 0; i < parallel; i++)
        {
            var context = weights.CreateContext(parameters);
            _contexts.Add(context);
            _slots.Writer.TryWrite(context);
        }

        ContextSize = (int)_contexts[0].ContextSize;
        _hasTemplate = weights.Metadata.ContainsKey("tokenizer.chat_template") && TemplateWorks(weights);
    }

    public int ContextSize { get; }

    public ulong ParameterCount => _weights.ParameterCount;

    /// <summary>Whether chat prompts are rendered with the model's own template (else the plain fallback).</summary>
    public bool UsesModelTemplate => _hasTemplate;

    public static LlamaModel Load(LlamaEngineSettings settings, LlamaMetrics metrics)
    {
        var parameters = new ModelParams(settings.ModelPath)
        {
            ContextSize = (uint)settings.ContextSize,
            BatchSize = (uint)Math.Min(settings.ContextSize, 512),
            UBatchSize = (uint)Math.Min(settings.ContextSize, 512),
            GpuLayerCount = 0,
            SeqMax = 1,
        };
        if (settings.Threads is { } threads)
        {
            parameters.Threads = threads;
            parameters.BatchThreads = threads;
        }

        var weights = LLamaWeights.LoadFromFile(parameters);
        try
        {
            return new LlamaModel(weights, parameters, settings.Parallel, settings.MaxQueue, metrics);
        }
        catch
        {
            weights.Dispose();
            throw;
        }
    }

    /// <summary>Renders a chat with the model's template (llama.cpp's built-in template support), or the plain fallback.</summary>
    public string RenderChat(IReadOnlyList<(string Role, string Content)> messages)
    {
        if (_hasTemplate)
        {
            var template = new LLamaTemplate(_weights, strict: false) { AddAssistant = true };
            foreach (var (role, content) in messages)
            {
                template.Add(role, content);
            }

            return Encoding.UTF8.GetString(template.Apply());
        }

        var text = new StringBuilder();
        foreach (var (role, content) in messages)
        {
            text.Append(role).Append(": ").Append(content).Append('\n');
        }

        return text.Append("assistant:").ToString();
    }

    /// <summary>
    /// Decodes <paramref name="prompt"/> and samples until end of generation, a stop sequence, <c>max_tokens</c> or the
    /// end of the context; <paramref name="emit"/> receives the text as it becomes final (stop sequences held back).
    /// </summary>
    public async Task<GenerationResult> GenerateAsync(
        LLamaToken[] prompt, GenerationRequest request, Func<string, Task> emit, CancellationToken cancellationToken)
    {
        var context = await AcquireAsync(cancellationToken);
        _metrics.Processing(+1);
        try
        {
            return await GenerateAsync(context, prompt, request, emit, cancellationToken);
        }
        finally
        {
            _metrics.Processing(-1);
            _slots.Writer.TryWrite(context);
        }
    }

    private async Task<LLamaContext> AcquireAsync(CancellationToken cancellationToken)
    {
        if (_slots.Reader.TryRead(out var free))
        {
            return free;
        }

        var waiting = _metrics.Deferred(+1);
        try
        {
            if (waiting > _maxQueue)
            {
                throw new QueueFullException((int)(waiting - 1));
            }

            return await _slots.Reader.ReadAsync(cancellationToken);
        }
        finally
        {
            _metrics.Deferred(-1);
        }
    }

    /// <summary>
    /// The prompt's tokens by the model's tokenizer (with BOS where the model asks for it); a prompt that leaves no room
    /// in the context is refused here, before it waits for a slot.
    /// </summary>
    public LLamaToken[] Tokenize(string prompt, GenerationRequest request)
    {
        var tokens = _weights.Tokenize(prompt, _weights.Vocab.ShouldAddBOS, special: true, Encoding.UTF8);
        if (tokens.Length == 0)
        {
            throw new InvalidRequestException("The prompt is empty (no tokens); send some text.", request.Chat ? "messages" : "prompt");
        }

        if (tokens.Length >= ContextSize)
        {
            throw new InvalidRequestException(
                $"This model's maximum context length is {ContextSize} tokens, but the {(request.Chat ? "messages" : "prompt")} came to {tokens.Length} tokens "
                + "(leaving no room to generate). Shorten it, or start the engine with a larger --context-size.",
                request.Chat ? "messages" : "prompt", "context_length_exceeded");
        }

        return tokens;
    }

    private async Task<GenerationResult> GenerateAsync(
        LLamaContext context, LLamaToken[] tokens, GenerationRequest request, Func<string, Task> emit, CancellationToken cancellationToken)
    {
        context.NativeHandle.MemoryClear(true);
        var vocabulary = _weights.Vocab;

        var promptWatch = Stopwatch.StartNew();
        var batch = new LLamaBatch();
        var batchSize = (int)context.BatchSize;
        for (var start = 0; start < tokens.Length; start += batchSize)
        {
            batch.Clear();
            var end = Math.Min(tokens.Length, start + batchSize);
            for (var i = start; i < end; i++)
            {
                batch.Add(tokens[i], i, LLamaSeqId.Zero, i == tokens.Length - 1);
            }

            await DecodeAsync(context, batch, cancellationToken);
        }

        _metrics.PromptDone(tokens.Length, promptWatch.Elapsed);

        var limit = Math.Min(request.MaxTokens ?? int.MaxValue, ContextSize - tokens.Length);
        using var sampler = new DefaultSamplingPipeline
        {
            // llama.cpp server's defaults where the request says nothing.
            Temperature = request.Temperature ?? 0.8f,
            TopP = request.TopP ?? 0.95f,
            TopK = 40,
            MinP = 0.05f,
            FrequencyPenalty = request.FrequencyPenalty ?? 0,
            PresencePenalty = request.PresencePenalty ?? 0,
            Seed = request.Seed ?? (uint)Random.Shared.Next(),
        };
        var decoder = new StreamingTokenDecoder(context);
        var stops = new StopScanner(request.Stop);
        var generated = 0;
        var position = tokens.Length;
        var finish = FinishReason.Length;
        var predictWatch = Stopwatch.StartNew();
        try
        {
            while (generated < limit)
            {
                cancellationToken.ThrowIfCancellationRequested();
                var token = sampler.Sample(context.NativeHandle, batch.TokenCount - 1);
                if (token.IsEndOfGeneration(vocabulary))
                {
                    finish = FinishReason.Stop;
                    break;
                }

                generated++;
                decoder.Add(token);
                var (ready, stopped) = stops.Add(decoder.Read());
                if (ready.Length > 0)
                {
                    await emit(ready);
                }

                if (stopped)
                {
                    finish = FinishReason.Stop;
                    break;
                }

                if (generated >= limit)
                {
                    break;
                }

                batch.Clear();
                batch.Add(token, position++, LLamaSeqId.Zero, true);
                await DecodeAsync(context, batch, cancellationToken);
            }

            if (!stops.Stopped)
            {
                var rest = stops.Flush();
                if (rest.Length > 0)
                {
                    await emit(rest);
                }
            }
        }
        finally
        {
            _metrics.PredictDone(generated, predictWatch.Elapsed);
        }

        return new GenerationResult(tokens.Length, generated, finish);
    }

    private async Task DecodeAsync(LLamaContext context, LLamaBatch batch, CancellationToken cancellationToken)
    {
        var result = await context.DecodeAsync(batch, cancellationToken);
        _metrics.Decoded();
        if (result != DecodeResult.Ok)
        {
            throw new InvalidOperationException($"llama.cpp could not decode the batch ({result}).");
        }
    }

    private static bool TemplateWorks(LLamaWeights weights)
    {
        try
        {
            var probe = new LLamaTemplate(weights, strict: false) { AddAssistant = true };
            probe.Add("user", "x");
            return probe.Apply().Length > 0;
        }
#pragma warning disable CA1031 // llama.cpp recognises only its built-in templates; any other falls back to the plain one
        catch (Exception)
#pragma warning restore CA1031
        {
            return false;
        }
    }

    public void Dispose()
    {
        foreach (var context in _contexts)
        {
            context.Dispose();
        }

        _weights.Dispose();
    }
}

/// <summary>
/// Finds stop sequences in streamed text: releases text only once no stop sequence can still begin in it, and cuts the
/// output before the first stop sequence (which is not returned).
/// </summary>
internal sealed class StopScanner(IReadOnlyList<string> stops)
{
    private readonly StringBuilder _pending = new();
    private readonly int _holdBack = stops.Count == 0 ? 0 : stops.Max(s => s.Length) - 1;

    public bool Stopped { get; private set; }

    public (string Ready, bool Stopped) Add(string text)
    {
        _pending.Append(text);
        var pending = _pending.ToString();
        var cut = -1;
        foreach (var stop in stops)
        {
            var at = pending.IndexOf(stop, StringComparison.Ordinal);
            if (at >= 0 && (cut < 0 || at < cut))
            {
                cut = at;
            }
        }

        if (cut >= 0)
        {
            Stopped = true;
            _pending.Clear();
            return (pending[..cut], true);
        }

        var release = Math.Max(0, pending.Length - _holdBack);
        if (release > 0 && char.IsHighSurrogate(pending[release - 1]))
        {
            release--;
        }

        _pending.Remove(0, release);
        return (pending[..release], false);
    }

    public string Flush()
    {
        var rest = _pending.ToString();
        _pending.Clear();
        return rest;
    }
}
