using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net.Http.Headers;
using Microsoft.Extensions.Options;
using Sluice.Compute.Serving;
using Sluice.Gateway;
using Sluice.Gateway.Pipeline;

namespace Sluice.Deployments.Routing;

/// <summary>
/// The target behind a deployment's route (<see cref="ProviderKind.Deployment"/>): its ready replicas, reached through
/// their agents' authenticated endpoints (<see cref="IMachineTransport"/>). Before each attempt it admits the request:
/// a failed or suspended deployment is answered at once; one with no ready replica is woken from zero if it is there
/// (<see cref="ColdStarts"/>) and the request waits in a bounded per-deployment queue until the directory sees a replica
/// ready (bounded in time; a streaming client gets SSE comments meanwhile). Then it sends to the replica with the fewest
/// requests in flight from this server (<see cref="DeploymentLoad"/>, random tie-break); a replica that cannot be reached
/// or answers 5xx or 429 is left for another replica of the same deployment (never another model), within the gateway's
/// attempt limit, and a replica that keeps failing is skipped for a while (a small per-replica circuit breaker).
/// </summary>
internal sealed class DeploymentUpstream(
    DeploymentDirectory directory,
    DeploymentLoad load,
    ColdStarts coldStarts,
    ReplicaBreakers breakers,
    IMachineTransport transport,
    IOptions<DeploymentRoutingOptions> options,
    IOptions<GatewayOptions> gateway,
    ILogger<DeploymentUpstream> logger) : IAdmittingUpstream
{
    /// <summary>What a client is told to wait before retrying when the queue is full, and when a wait timed out.</summary>
    internal static readonly TimeSpan QueueFullRetryAfter = TimeSpan.FromSeconds(5);

    internal static readonly TimeSpan NotReadyRetryAfter = TimeSpan.FromSeconds(30);

    private static readonly byte[] KeepAlive = ": waiting for a replica to start\n\n"u8.ToArray();

    public ProviderKind Kind => ProviderKind.Deployment;

    public async Task AdmitAsync(InferenceRequest request, RouteInfo route, InferenceTrace trace, IResponseSink sink, CancellationToken cancellationToken)
    {
        trace.DeploymentId = route.Id;
        trace.QueueWaitMicros ??= 0;
        trace.ColdStart ??= false;
        var target = Admissible(route);
        if (target.Replicas.Count > 0)
        {
            return;
        }

        var settings = options.Value;
        load.Queued(target.Id);
        var started = Stopwatch.GetTimestamp();
        try
        {
            var waiting = load.Waiting(target.Id);
            if (waiting > settings.QueueCapacity)
            {
                DeploymentRoutingLog.QueueFull(logger, target.Id, settings.QueueCapacity);
                throw new OpenAiException(503,
                    $"Too many requests are waiting for the deployment '{Name(route)}' to start ({settings.QueueCapacity} at most); retry shortly.",
                    "server_error", "deployment_queue_full", retryAfter: QueueFullRetryAfter);
            }

            trace.ColdStart = true;
            using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            deadline.CancelAfter(settings.QueueTimeout);
            try
            {
                await WaitForReplicaAsync(request, route, trace, sink, waiting, deadline.Token);
            }
            catch (OperationCanceledException) when (!sink.ClientGone.IsCancellationRequested)
            {
                // The queue's bound (or the gateway's total timeout) ran out: a clear 503, never a hang.
                DeploymentRoutingLog.QueueTimedOut(logger, target.Id, Stopwatch.GetElapsedTime(started).TotalSeconds);
                throw new OpenAiException(503,
                    $"The deployment '{Name(route)}' did not become ready in time (waited {Math.Round(Stopwatch.GetElapsedTime(started).TotalSeconds)} s for a replica to start); retry shortly.",
                    "server_error", "deployment_not_ready", retryAfter: NotReadyRetryAfter);
            }
        }
        finally
        {
            load.Dequeued(target.Id);
            trace.QueueWaitMicros = (long)Stopwatch.GetElapsedTime(started).TotalMicroseconds;
            trace.UpstreamTicks += Stopwatch.GetTimestamp() - started; // waiting for the target is not Sluice's overhead (x-sluice-overhead-us)
        }
    }

    private async Task WaitForReplicaAsync(InferenceRequest request, RouteInfo route, InferenceTrace trace, IResponseSink sink, int waiting, CancellationToken cancellationToken)
    {
        var keepAlive = options.Value.KeepAliveInterval;
        var nextComment = Stopwatch.GetTimestamp() + (long)(keepAlive.TotalSeconds * Stopwatch.Frequency);
        while (true)
        {
            var changed = directory.Changed(route.Id); // before looking: a refresh in between still wakes us
            var target = Admissible(route);
            if (target.Replicas.Count > 0)
            {
                return;
            }

            if (target.Deployment.DesiredReplicas == 0)
            {
                await coldStarts.WakeAsync(target.Deployment, waiting, cancellationToken);
            }

            if (!request.Stream)
            {
                await changed.WaitAsync(cancellationToken);
                continue;
            }

            // A streaming client gets a comment every KeepAliveInterval while it waits, so neither it nor a proxy gives up.
            while (!changed.IsCompleted)
            {
                var untilComment = Stopwatch.GetElapsedTime(Stopwatch.GetTimestamp(), nextComment);
                if (untilComment > TimeSpan.Zero)
                {
                    await Task.WhenAny(changed, Task.Delay(untilComment, cancellationToken));
                    cancellationToken.ThrowIfCancellationRequested();
                    if (changed.IsCompleted)
                    {
                        break;
                    }
                }

                if (!sink.HasStarted)
                {
                    sink.Start(200, "text/event-stream", null, streaming: true);
                    trace.StreamOpenedEarly = true;
                }

                await sink.Body.WriteAsync(KeepAlive, cancellationToken);
                nextComment = Stopwatch.GetTimestamp() + (long)(keepAlive.TotalSeconds * Stopwatch.Frequency);
            }
        }
    }

    /// <summary>The deployment if a request may go to it or wait for it; otherwise the refusal, at once.</summary>
    private DeploymentTarget Admissible(RouteInfo route)
    {
        var target = directory.Get(route.Id) ?? throw NotFound(route);
        var deployment = target.Deployment;
        return deployment.Status switch
        {
            DeploymentStatuses.Failed => throw new OpenAiException(503,
                $"The deployment '{Name(route)}' failed to start: {deployment.StatusReason ?? "its replicas could not start"}. Fix the deployment and update it to try again.",
                "server_error", "deployment_failed"),
            DeploymentStatuses.Suspended => throw new OpenAiException(503,
                $"The deployment '{Name(route)}' is suspended: its organization's wallet could not cover its GPU time. Its owner can add funds and update it to start it again.",
                "server_error", "deployment_suspended"),
            _ => target,
        };
    }

    public async Task<UpstreamResponse> SendAsync(InferenceRequest request, RouteInfo route, CancellationToken cancellationToken)
    {
        var target = directory.Get(route.Id) ?? throw NotFound(route);
        var body = request.RewriteFor(target.ServedModel);
        var path = request.Endpoint switch
        {
            InferenceEndpoint.ChatCompletions => "/v1/chat/completions",
            InferenceEndpoint.Completions => "/v1/completions",
            _ => "/v1/embeddings",
        };

        var attempts = Math.Max(1, gateway.Value.MaxAttempts);
        var tried = new List<Guid>(Math.Min(attempts, target.Replicas.Count));
        Exception? unreachable = null;
        for (var attempt = 0; attempt < attempts; attempt++)
        {
            if (breakers.Pick(target, tried) is not { } replica)
            {
                break;
            }

            tried.Add(replica.ReplicaId);
            load.Enter(target.Id, replica.ReplicaId);
            HttpResponseMessage response;
            try
            {
                using var message = new HttpRequestMessage(HttpMethod.Post, MachineTransportPaths.TaskUri(replica.Machine, replica.TaskId.ToString(), path))
                {
                    Content = new ByteArrayContent(body),
                };
                message.Content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
                response = await transport.Invoker(replica.Machine).SendAsync(message, cancellationToken);
            }
            catch (HttpRequestException ex) when (!cancellationToken.IsCancellationRequested)
            {
                load.Leave(target.Id, replica.ReplicaId);
                breakers.Failed(target.Id, replica.ReplicaId);
                DeploymentRoutingLog.ReplicaFailed(logger, replica.ReplicaId, target.Id, "unreachable");
                unreachable = ex;
                continue;
            }
            catch
            {
                load.Leave(target.Id, replica.ReplicaId);
                throw;
            }

            var status = (int)response.StatusCode;
            var failed = status >= 500 || status == 429;
            if (failed)
            {
                breakers.Failed(target.Id, replica.ReplicaId);
            }
            else
            {
                breakers.Succeeded(replica.ReplicaId);
            }

            // The agent answers 404 for a task it no longer runs (a stale replica): like a failure, another replica is tried.
            if ((failed || status == 404) && attempt + 1 < attempts && breakers.Pick(target, tried) is not null)
            {
                DeploymentRoutingLog.ReplicaFailed(logger, replica.ReplicaId, target.Id, $"status {status}");
                response.Dispose();
                load.Leave(target.Id, replica.ReplicaId);
                continue;
            }

            try
            {
                var stream = await response.Content.ReadAsStreamAsync(cancellationToken);
                return new UpstreamResponse(status, stream, ResponseFormat.OpenAi, response.Headers.RetryAfter?.Delta,
                    new InFlight(response, load, target.Id, replica.ReplicaId), response.Content.Headers.ContentLength);
            }
            catch
            {
                response.Dispose();
                load.Leave(target.Id, replica.ReplicaId);
                throw;
            }
        }

        if (unreachable is not null)
        {
            throw new HttpRequestException("No replica of the deployment could be reached.", unreachable); // the forwarder's 502 upstream_unreachable
        }

        throw new OpenAiException(503, $"No replica of the deployment '{Name(route)}' can take the request now; retry shortly.",
            "server_error", "no_replica_available", retryAfter: gateway.Value.CircuitBreakerOpenDuration);
    }

    private static string Name(RouteInfo route) => InferencePipeline.Truncate(route.ModelId);

    private static OpenAiException NotFound(RouteInfo route) =>
        new(404, $"The model '{Name(route)}' does not exist or you do not have access to it.", "invalid_request_error", "model_not_found", "model");

    /// <summary>Ends the replica's in-flight count when the answer has been relayed (or dropped), whatever the outcome.</summary>
    private sealed class InFlight(HttpResponseMessage response, DeploymentLoad load, Guid deploymentId, Guid replicaId) : IDisposable
    {
        private int _disposed;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _disposed, 1) == 0)
            {
                response.Dispose();
                load.Leave(deploymentId, replicaId);
            }
        }
    }
}

/// <summary>
/// Per-replica failure tracking (the gateway's circuit breaker is per route, and a deployment is one route): a replica
/// with <see cref="GatewayOptions.CircuitBreakerFailures"/> consecutive failures is skipped for
/// <see cref="GatewayOptions.CircuitBreakerOpenDuration"/>, then tried again; a success closes it. Also picks the
/// replica: the fewest requests in flight from this server, random among equals.
/// </summary>
internal sealed class ReplicaBreakers(DeploymentLoad load, IOptions<GatewayOptions> options, TimeProvider time, ILogger<ReplicaBreakers> logger)
{
    private readonly ConcurrentDictionary<Guid, State> _states = new();

    public ReplicaTarget? Pick(DeploymentTarget target, List<Guid> tried)
    {
        var now = time.GetUtcNow();
        ReplicaTarget? best = null;
        var bestLoad = int.MaxValue;
        var ties = 0;
        foreach (var replica in target.Replicas)
        {
            if (tried.Contains(replica.ReplicaId) || (_states.TryGetValue(replica.ReplicaId, out var state) && !state.Admits(now)))
            {
                continue;
            }

            var inFlight = load.InFlight(replica.ReplicaId);
            if (inFlight < bestLoad)
            {
                best = replica;
                bestLoad = inFlight;
                ties = 1;
            }
            else if (inFlight == bestLoad && Random.Shared.Next(++ties) == 0)
            {
                best = replica; // reservoir sampling: each of the equally loaded replicas with the same chance
            }
        }

        return best;
    }

    public void Failed(Guid deploymentId, Guid replicaId)
    {
        var settings = options.Value;
        if (_states.GetOrAdd(replicaId, _ => new State()).Fail(time.GetUtcNow(), settings.CircuitBreakerFailures, settings.CircuitBreakerOpenDuration))
        {
            DeploymentRoutingLog.ReplicaCircuitOpened(logger, replicaId, deploymentId, settings.CircuitBreakerFailures);
        }
    }

    public void Succeeded(Guid replicaId)
    {
        if (_states.TryGetValue(replicaId, out var state))
        {
            state.Succeed();
        }
    }

    public bool IsOpen(Guid replicaId) => _states.TryGetValue(replicaId, out var state) && !state.Admits(time.GetUtcNow());

    private sealed class State
    {
        private readonly Lock _gate = new();
        private int _failures;
        private DateTimeOffset? _openUntil;

        public bool Admits(DateTimeOffset now)
        {
            lock (_gate)
            {
                return _openUntil is not { } until || now >= until;
            }
        }

        /// <summary>True when this failure opened the circuit.</summary>
        public bool Fail(DateTimeOffset now, int threshold, TimeSpan openFor)
        {
            lock (_gate)
            {
                _failures++;
                if (_failures < threshold)
                {
                    return false;
                }

                var opened = _openUntil is null || now >= _openUntil;
                _openUntil = now + openFor;
                return opened;
            }
        }

        public void Succeed()
        {
            lock (_gate)
            {
                _failures = 0;
                _openUntil = null;
            }
        }
    }
}
