using System.IO.Pipelines;
using System.Text;
using BenchmarkDotNet.Attributes;
using Sluice.Gateway;
using Sluice.Gateway.Pipeline;

namespace Sluice.Benchmarks;

/// <summary>
/// Relaying one streamed answer (20 content chunks, a usage chunk, <c>[DONE]</c>) from the upstream's bytes to the
/// client's pipe: the byte relay the gateway uses for OpenAI-format streams against the event-by-event string path it
/// replaced (still used for Anthropic's, which are translated).
/// </summary>
[MemoryDiagnoser]
public class StreamRelayBenchmarks
{
    private static readonly byte[] Upstream = Encoding.UTF8.GetBytes(string.Concat(
        Enumerable.Range(0, 20).Select(i => $"data: {{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\" word{i}\"}},\"finish_reason\":null}}]}}\n\n"))
        + "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[],\"usage\":{\"prompt_tokens\":31,\"completion_tokens\":20,\"total_tokens\":51}}\n\n"
        + "data: [DONE]\n\n");

    [Benchmark(Baseline = true, Description = "relay a 22-event stream as strings, event by event")]
    public async Task<long> Strings()
    {
        var writer = PipeWriter.Create(Stream.Null);
        long usage = 0;
        await foreach (var (_, data) in Sse.ReadAsync(new MemoryStream(Upstream, writable: false), CancellationToken.None))
        {
            var bytes = Encoding.UTF8.GetBytes(data);
            if (bytes.AsSpan().IndexOf("\"usage\":{"u8) >= 0 && TokenUsage.TryRead(bytes, out var read))
            {
                usage += read.Completion;
            }

            await writer.WriteAsync(Encoding.UTF8.GetBytes("data: " + data + "\n\n"));
            await writer.FlushAsync();
        }

        await writer.CompleteAsync();
        return usage;
    }

    [Benchmark(Description = "relay a 22-event stream as bytes (SseRelay)")]
    public async Task<long> Bytes()
    {
        var writer = PipeWriter.Create(Stream.Null);
        long usage = 0;
        await SseRelay.RelayAsync(new MemoryStream(Upstream, writable: false), writer, data =>
        {
            if (data.SequenceEqual("[DONE]"u8))
            {
                return SseRelay.Verdict.WriteAndEnd;
            }

            if (data.IndexOf("\"usage\":{"u8) >= 0 && TokenUsage.TryRead(data, out var read))
            {
                usage += read.Completion;
            }

            return SseRelay.Verdict.Write;
        }, () => { }, CancellationToken.None, CancellationToken.None);
        await writer.CompleteAsync();
        return usage;
    }

    [Benchmark(Description = "relay as bytes, model checked in every chunk and cost stamped (the provider names the public id)")]
    public Task<long> StampedSameModel() => Stamped(new AnswerStamp("m", cost: true));

    [Benchmark(Description = "relay as bytes, model rewritten in every chunk and cost stamped (the provider names another model)")]
    public Task<long> StampedOtherModel() => Stamped(new AnswerStamp("public-model-id", cost: true));

    /// <summary>What <c>AnswerRelay.StreamAsync</c> does per event: the usage check, the model check or rewrite, the cost.</summary>
    private static async Task<long> Stamped(AnswerStamp stamp)
    {
        var writer = PipeWriter.Create(Stream.Null);
        var rewritten = new System.Buffers.ArrayBufferWriter<byte>(512);
        long usage = 0;
        await SseRelay.RelayAsync(new MemoryStream(Upstream, writable: false), writer, data =>
        {
            if (data.SequenceEqual("[DONE]"u8))
            {
                return SseRelay.Verdict.WriteAndEnd;
            }

            long? cost = null;
            if (data.IndexOf("\"usage\":{"u8) >= 0 && TokenUsage.TryRead(data, out var read))
            {
                usage += read.Completion;
                cost = read.Prompt + read.Completion;
            }

            return stamp.Rewrite(data, cost, rewritten) ? SseRelay.Verdict.WriteRewritten : SseRelay.Verdict.Write;
        }, () => { }, CancellationToken.None, CancellationToken.None, rewritten);
        await writer.CompleteAsync();
        return usage;
    }
}
