using System.Diagnostics;
using Sluice.Identity;

namespace Sluice.Gateway.Pipeline;

/// <summary>
/// Runs one line of a batch through the <see cref="InferencePipeline"/> (model, key grants, data policy, routes,
/// fallback, holds, metering), without the key's real-time rate limits and at batch prices, its answer kept in memory.
/// The hold is left for the runner to settle (<see cref="BatchLine.Settle"/>) once the result is durably recorded, so a
/// line is never charged twice.
/// </summary>
public sealed class BatchLineAdapter(InferencePipeline pipeline, Billing.SpendGuard spend, TimeProvider time)
{
    public async Task<BatchLine> ExecuteAsync(
        InferenceEndpoint endpoint, byte[] body, VerifiedKey key, Guid batchId, string requestId, CancellationToken cancellationToken)
    {
        var started = Stopwatch.GetTimestamp();
        var startedAt = time.GetUtcNow();
        var line = new BatchLine(batchId, spend);
        using var sink = new BufferedResponseSink(cancellationToken);
        var call = new InferenceCall
        {
            Endpoint = endpoint,
            Key = key,
            EventId = Guid.CreateVersion7(startedAt),
            RequestId = requestId,
            Aborted = cancellationToken,
            Batch = line,
            ReadBody = _ => Task.FromResult(body),
        };
        await pipeline.RunAsync(call, new InferenceTrace(started, startedAt), sink);
        line.Body = await sink.ToArrayAsync();
        return line;
    }
}
