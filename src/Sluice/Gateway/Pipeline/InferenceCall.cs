using System.Diagnostics;
using Sluice.Identity;

namespace Sluice.Gateway.Pipeline;

/// <summary>
/// One inference call as the pipeline sees it, whatever brought it: the verified key it runs under, the endpoint, the
/// way to read its raw body (size-checked by the adapter; a failure to read is answered and metered like any other) and
/// the ids it is known by. No HTTP here.
/// </summary>
public sealed class InferenceCall
{
    public required InferenceEndpoint Endpoint { get; init; }

    public required VerifiedKey Key { get; init; }

    /// <summary>Reads the whole body (recording the bytes and the time spent waiting for them in the trace).</summary>
    public required Func<InferenceTrace, Task<byte[]>> ReadBody { get; init; }

    /// <summary>The usage event's id (a v7 Guid, so it sorts by time).</summary>
    public required Guid EventId { get; init; }

    public required string RequestId { get; init; }

    /// <summary>Signalled when the receiver of the answer has gone.</summary>
    public CancellationToken Aborted { get; init; }

    /// <summary>The protocol the caller spoke, when not OpenAI's own endpoints (<see cref="Endpoint"/> is then chat completions).</summary>
    public Protocols.IInboundProtocol? Protocol { get; init; }

    /// <summary>The batch line this call runs, or null for real-time traffic.</summary>
    public BatchLine? Batch { get; init; }
}

/// <summary>What one call did, for its usage event and its overhead header.</summary>
public sealed class InferenceTrace(long started, DateTimeOffset startedAt)
{
    public long Started { get; } = started;

    public DateTimeOffset StartedAt { get; } = startedAt;

    public long UpstreamTicks { get; set; }

    /// <summary>Time spent waiting for the client (its body), which is not time spent in Sluice.</summary>
    public long ClientTicks { get; set; }

    /// <summary>What the ledger is charged for this call (<see cref="ChargeFor"/> of the final usage).</summary>
    public long CostMicros { get; set; }

    /// <summary>The amount held before forwarding; null when nothing was held (free routes), and then every charge is 0.</summary>
    public long? HeldMicros { get; set; }

    /// <summary>The discount on the token part of the charge, in percent (batch lines).</summary>
    public int DiscountPercent { get; set; }

    /// <summary>What the answer is stamped with (public model id, <c>usage.cost</c>); set once the model is known.</summary>
    public AnswerStamp? Stamp { get; set; }

    /// <summary>
    /// The charge for <paramref name="usage"/> on the route that answered: its price (with the discount), capped at the
    /// hold; nothing when nothing was held or nothing was produced. The one function both settlement and the answer's
    /// <c>usage.cost</c> use, so the two cannot differ.
    /// </summary>
    public long ChargeFor(TokenUsage usage) =>
        HeldMicros is not { } held || usage.Prompt + usage.Completion <= 0 ? 0 : Math.Min(held, Route?.Pricing?.Cost(usage, DiscountPercent) ?? 0);

    public string? Model { get; set; }

    public bool Stream { get; set; }

    public int Attempts { get; set; }

    public RouteInfo? Route { get; set; }

    public TokenUsage Usage { get; set; }

    /// <summary>True when the provider reported no usage and Sluice counted the tokens itself.</summary>
    public bool CountedLocally { get; set; }

    public long RequestBytes { get; set; }

    public long ResponseBytes { get; set; }

    public long? FirstTokenMicros { get; set; }

    /// <summary>A status to record instead of the one committed (a stream that failed after its 200).</summary>
    public int? Status { get; set; }

    public string? ErrorType { get; set; }

    /// <summary>The deployment the call went to (<see cref="ProviderKind.Deployment"/> routes); null for every other target.</summary>
    public Guid? DeploymentId { get; set; }

    /// <summary>How long the call waited for a deployment's replica to become ready (0: one was ready); null when not a deployment.</summary>
    public long? QueueWaitMicros { get; set; }

    /// <summary>Whether the call met a cold start: no replica of its deployment was ready, so it waited for one.</summary>
    public bool? ColdStart { get; set; }

    /// <summary>
    /// The answer was committed as an event stream before the upstream answered (comments kept a streaming client's
    /// connection alive while it waited for a replica); a failure before any answer byte is then sent as an SSE error event.
    /// </summary>
    public bool StreamOpenedEarly { get; set; }

    public void MarkFirstToken() => FirstTokenMicros ??= (long)Stopwatch.GetElapsedTime(Started).TotalMicroseconds;

    public long OverheadMicros() =>
        (long)Math.Max(0, Stopwatch.GetElapsedTime(Started).TotalMicroseconds - Stopwatch.GetElapsedTime(0, UpstreamTicks + ClientTicks).TotalMicroseconds);
}
