using System.Diagnostics;
using Microsoft.Extensions.Options;

namespace Sluice.Gateway.Pipeline;

/// <summary>
/// The route and upstream stages: try the compliant routes in order (falling back while nothing has reached the
/// receiver), send through the route's <see cref="IUpstream"/> (chosen by provider kind in <see cref="UpstreamRegistry"/>)
/// and relay its answer (<see cref="AnswerRelay"/>).
/// </summary>
public sealed class RouteForwarder(
    RouteSelector selector,
    ProviderConcurrency concurrency,
    UpstreamRegistry upstreams,
    AnswerRelay relay,
    IOptions<GatewayOptions> options,
    ILogger<RouteForwarder> logger)
{
    public async Task ForwardAsync(
        InferenceRequest request, IReadOnlyList<RouteInfo> routes, InferenceTrace trace, IResponseSink sink, bool batch, CancellationToken aborted)
    {
        var settings = options.Value;
        using var total = CancellationTokenSource.CreateLinkedTokenSource(aborted);
        total.CancelAfter(settings.TotalTimeout);
        var tried = new HashSet<Guid>();
        UpstreamFailure? lastFailure = null;
        while (trace.Attempts < settings.MaxAttempts && selector.Next(routes, tried) is { } route)
        {
            tried.Add(route.Id);
            trace.Attempts++;
            trace.Route = route;
            IDisposable? slot;
            try
            {
                slot = batch ? await concurrency.AcquireAsync(route.Provider, aborted) : null;
            }
            catch
            {
                selector.Released(route); // the route is not left marked in use
                throw;
            }

            using var slotHeld = slot;
            if (slot is not null)
            {
                total.CancelAfter(settings.TotalTimeout); // waiting for a slot is not the provider's time
            }

            var upstream = upstreams.For(route.Provider.Kind);
            if (upstream is IAdmittingUpstream admitting)
            {
                try
                {
                    // Waiting for a target to start (a deployment's cold start) is bounded by the upstream, not the first-byte deadline.
                    await admitting.AdmitAsync(request, route, trace, sink, total.Token);
                }
                catch
                {
                    selector.Released(route);
                    throw;
                }
            }

            var upstreamStarted = Stopwatch.GetTimestamp();
            UpstreamResponse response;
            try
            {
                using var firstByte = CancellationTokenSource.CreateLinkedTokenSource(total.Token);
                firstByte.CancelAfter(settings.FirstByteTimeout);
                response = await upstream.SendAsync(request, route, firstByte.Token);
            }
            catch (Exception ex) when (ex is HttpRequestException or OperationCanceledException && !aborted.IsCancellationRequested)
            {
                trace.UpstreamTicks += Stopwatch.GetTimestamp() - upstreamStarted;
                selector.Completed(route, success: false);
                lastFailure = new UpstreamFailure(ex is OperationCanceledException ? 504 : 502, ex is OperationCanceledException ? "upstream_timeout" : "upstream_unreachable", null);
                GatewayLog.RouteFailed(logger, route.Id, route.Provider.Name, lastFailure.Code);
                continue;
            }
            catch
            {
                // The receiver left, or the request cannot be translated for this provider: not the route's failure, but
                // the route must not stay marked in use (nor keep its recovery probe).
                selector.Released(route);
                throw;
            }

            await using (response)
            {
                trace.UpstreamTicks += Stopwatch.GetTimestamp() - upstreamStarted;
                if (response.IsRetryable)
                {
                    selector.Completed(route, success: false);
                    lastFailure = new UpstreamFailure(response.Status == 429 ? 429 : 502, response.Status == 429 ? "upstream_rate_limited" : "upstream_error", response.RetryAfter);
                    GatewayLog.RouteFailed(logger, route.Id, route.Provider.Name, $"status {response.Status}");
                    continue;
                }

                try
                {
                    if (!response.IsSuccess)
                    {
                        await relay.ErrorAsync(sink, response, trace, total.Token);
                    }
                    else if (request.Stream)
                    {
                        await relay.StreamAsync(sink, request, response, trace, total.Token);
                    }
                    else
                    {
                        await relay.WholeAsync(sink, request, response, trace, total.Token);
                    }

                    selector.Completed(route, success: true);
                }
                catch (UpstreamAnswerException failure) when (!sink.HasStarted && !aborted.IsCancellationRequested)
                {
                    // Nothing reached the receiver: like a provider error, the route failed and the next one is tried.
                    trace.Usage = default;
                    selector.Completed(route, success: false);
                    lastFailure = new UpstreamFailure(failure.Status, failure.Code, null);
                    GatewayLog.RouteFailed(logger, route.Id, route.Provider.Name, failure.Code);
                    continue;
                }
                catch
                {
                    // A receiver that leaves is not the route's fault.
                    selector.Completed(route, success: aborted.IsCancellationRequested);
                    throw;
                }

                return;
            }
        }

        throw lastFailure is null
            ? new OpenAiException(503, "Every provider of this model is temporarily unavailable; retry shortly.", "server_error", "no_route_available")
            : new OpenAiException(lastFailure.Status, lastFailure.Status == 429
                ? "The model's providers are rate limiting requests; retry shortly."
                : "The model's providers failed to answer; retry shortly.", lastFailure.Status == 429 ? "requests" : "server_error", lastFailure.Code, retryAfter: lastFailure.RetryAfter);
    }

    private sealed record UpstreamFailure(int Status, string Code, TimeSpan? RetryAfter);
}
