using System.Buffers;
using System.Diagnostics;
using System.Globalization;
using System.Text;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Options;
using Sluice.Identity;

namespace Sluice.Gateway;

/// <summary>
/// The hot path for <c>/v1/chat/completions</c>, <c>/v1/completions</c> and <c>/v1/embeddings</c>: read and check the
/// body, resolve the model and its compliant routes, apply rate limits, try routes in order (falling back while nothing
/// has reached the client), relay the answer (SSE passed through as it arrives), and record exactly one usage event.
/// Request and response bodies live only in memory; nothing here logs or stores them.
/// </summary>
public sealed class GatewayHandler(
    Catalog catalog,
    Billing.SpendGuard spend,
    IOptions<Billing.BillingOptions> billing,
    RouteSelector selector,
    GatewayRateLimiter limiter,
    OrganizationPolicies policies,
    UsageMeter meter,
    ProviderConcurrency concurrency,
    IServiceProvider services,
    IOptions<GatewayOptions> options,
    TimeProvider time,
    ILogger<GatewayHandler> logger)
{
    private const int MaxBufferedResponseBytes = 64 * 1024 * 1024;

    public async Task HandleAsync(HttpContext context, InferenceEndpoint endpoint)
    {
        var started = Stopwatch.GetTimestamp();
        var startedAt = time.GetUtcNow();
        var eventId = Guid.CreateVersion7(startedAt);
        var requestId = RequestId(context, eventId);
        context.Response.Headers["x-request-id"] = requestId;
        var trace = new Trace(started);
        context.Response.OnStarting(() =>
        {
            context.Response.Headers["x-sluice-overhead-us"] = trace.OverheadMicros().ToString(CultureInfo.InvariantCulture);
            return Task.CompletedTask;
        });

        var caller = context.Caller();
        var batch = trace.Batch = context.Items.TryGetValue(typeof(BatchLine), out var line) ? (BatchLine?)line : null;
        var status = 200;
        string? errorType = null;
        try
        {
            await RunAsync(context, endpoint, caller, trace);
            status = trace.Status ?? context.Response.StatusCode;
            errorType = trace.ErrorType;
        }
        catch (OpenAiException error)
        {
            status = error.Status;
            errorType = error.Code ?? error.Type;
            if (!context.Response.HasStarted)
            {
                await OpenAiError.WriteAsync(context, error);
            }
        }
        catch (Exception ex) when (!context.Response.HasStarted && Storage.DatabaseFailures.IsUnavailable(ex))
        {
            // Not cached and the database is down (an organization's policy, a lease to renew): 503 with Retry-After.
            var error = OpenAiError.DatabaseUnavailable();
            (status, errorType) = (error.Status, error.Code);
            await OpenAiError.WriteAsync(context, error);
        }
        catch (OperationCanceledException) when (context.RequestAborted.IsCancellationRequested)
        {
            status = 499;
            errorType = "client_disconnected";
        }
        finally
        {
            meter.Record(new UsageEvent
            {
                Id = eventId,
                RequestId = requestId,
                OrganizationId = caller.KeyOrganizationId,
                KeyId = caller.KeyId,
                Endpoint = InferenceRequest.Name(endpoint),
                Model = trace.Model,
                RouteId = trace.Route?.Id is { } route && route != Guid.Empty ? route : null,
                Status = status,
                ErrorType = errorType,
                Stream = trace.Stream,
                Attempts = trace.Attempts,
                PromptTokens = trace.Usage.Prompt,
                CompletionTokens = trace.Usage.Completion,
                CachedTokens = trace.Usage.Cached,
                RequestBytes = trace.RequestBytes,
                ResponseBytes = trace.ResponseBytes,
                LatencyMicros = (long)Stopwatch.GetElapsedTime(started).TotalMicroseconds,
                TimeToFirstTokenMicros = trace.FirstTokenMicros,
                CostMicros = trace.CostMicros,
                BatchId = batch?.BatchId,
                StartedAt = startedAt,
            });
            if (batch is not null)
            {
                batch.Status = status;
                batch.Usage = trace.Usage;
            }
        }
    }

    /// <summary>
    /// Runs one line of a batch through the same path as a real-time request (model, key grants, data policy, routes,
    /// fallback, holds, metering), without the key's real-time rate limits and at batch prices. The hold is left for
    /// the caller to settle (<see cref="BatchLine.Settle"/>) once the result is durably recorded, so a line is never
    /// charged twice. The response stays in memory.
    /// </summary>
    public async Task<BatchLine> ExecuteBatchLineAsync(
        InferenceEndpoint endpoint, byte[] body, VerifiedKey key, Guid batchId, string requestId, CancellationToken cancellationToken)
    {
        var line = new BatchLine(batchId, spend);
        var context = new DefaultHttpContext { RequestAborted = cancellationToken };
        context.Request.Method = HttpMethods.Post;
        context.Request.ContentType = "application/json";
        context.Request.ContentLength = body.Length;
        context.Request.Body = new MemoryStream(body, writable: false);
        context.Request.Headers["x-request-id"] = requestId;
        var response = new MemoryStream();
        context.Response.Body = response;
        context.User = ApiKeyClaims.Principal(key, "batch");
        context.Items[typeof(VerifiedKey)] = key;
        context.Items[typeof(BatchLine)] = line;
        try
        {
            await HandleAsync(context, endpoint);
            line.Body = response.ToArray();
        }
        catch (Exception ex) when (ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            // The line still carries its hold (if one was taken), so the runner settles it like any other.
            GatewayLog.BatchLineFailed(logger, batchId, ex.GetType().Name);
            line.Status = 500;
            line.Body = """{"error":{"message":"The server had an error processing this request.","type":"server_error","param":null,"code":null}}"""u8.ToArray();
        }

        return line;
    }

    private async Task RunAsync(HttpContext context, InferenceEndpoint endpoint, Caller caller, Trace trace)
    {
        var body = await ReadBodyAsync(context, trace);
        var request = InferenceRequest.Parse(endpoint, body);
        trace.Stream = request.Stream;

        var model = catalog.Find(request.Model)
            ?? throw new OpenAiException(404, $"The model '{Truncate(request.Model)}' does not exist or you do not have access to it.", "invalid_request_error", "model_not_found", "model");

        // Only a catalog id is metered: an unknown model name is client input and could be anything.
        trace.Model = model.Id;
        var key = caller.KeyId!.Value;
        var grants = context.Items[typeof(VerifiedKey)] as VerifiedKey
            ?? throw new OpenAiException(401, "The API key could not be read.", "invalid_request_error", "invalid_api_key");
        if (grants.AllowedModels is { } allowed && !allowed.Split(' ').Contains(model.Id, StringComparer.Ordinal))
        {
            throw new OpenAiException(403, $"This API key may not use the model '{Truncate(model.Id)}'.", "invalid_request_error", "model_not_allowed", "model");
        }

        var org = await policies.OrganizationAsync(caller.KeyOrganizationId!.Value, context.RequestAborted);
        var routes = Eligible(model.Routes, r => r.Provider.Supports(endpoint));
        if (routes.Count == 0)
        {
            throw OpenAiException.Invalid($"The model '{Truncate(model.Id)}' does not support {InferenceRequest.Name(endpoint)}.", "model", "unsupported_endpoint");
        }

        routes = Eligible(routes, r => (!org.RequireZeroRetention || !r.RetainsData) && (org.AllowsTrainingRoutes || !r.TrainsOnData));
        if (routes.Count == 0)
        {
            // Fail closed: never fall back to a route that breaks the organization's data policy, and never send content
            // to a provider that trains on it without the organization's recorded opt-in (C04).
            var why = org.RequireZeroRetention || org.RequireNoTraining
                ? $"Your organization requires {(org.RequireZeroRetention && org.RequireNoTraining ? "zero-retention and no-training" : org.RequireZeroRetention ? "zero-retention" : "no-training")} providers"
                  + (org.RequireZeroRetention && !org.RequireNoTraining && !org.TrainingConsent ? " and has not consented to training" : "")
                : "Your organization has not consented to its content being used for training, so providers that train on data are excluded";
            throw new OpenAiException(403, $"{why}, and no provider of '{Truncate(model.Id)}' qualifies.", "invalid_request_error", "no_compliant_route", "model");
        }

        var batch = trace.Batch;
        var discount = batch is null ? 0 : billing.Value.BatchDiscountPercent;
        if (batch is not null)
        {
            // Batch lines are paced by the runner's concurrency limits, not by the key's real-time rate limits.
            trace.Model = model.Id;
            await HoldAndForwardAsync(context, request, routes, trace, org.Id, grants, body.Length, discount, batch);
            return;
        }

        var estimate = (body.Length / 4) + (request.MaxTokens ?? 256);
        var decision = limiter.TryAcquire(key, grants.RequestsPerMinute ?? options.Value.DefaultRequestsPerMinute, grants.TokensPerMinute ?? options.Value.DefaultTokensPerMinute,
            org.Id, org.RequestsPerMinute ?? options.Value.DefaultRequestsPerMinute, org.TokensPerMinute ?? options.Value.DefaultTokensPerMinute, estimate);
        WriteRateLimitHeaders(context, decision);
        if (!decision.Allowed)
        {
            throw new OpenAiException(429, $"Rate limit reached: {decision.Which}. Retry after {Math.Ceiling(decision.RetryAfter.TotalSeconds)} s.",
                "requests", "rate_limit_exceeded", retryAfter: decision.RetryAfter);
        }

        try
        {
            await HoldAndForwardAsync(context, request, routes, trace, org.Id, grants, body.Length, 0, null);
        }
        finally
        {
            limiter.Settle(key, org.Id, trace.Usage.Prompt + trace.Usage.Completion - estimate);
        }
    }

    private async Task HoldAndForwardAsync(
        HttpContext context, InferenceRequest request, IReadOnlyList<RouteInfo> routes, Trace trace, Guid orgId, VerifiedKey grants, int bodyLength, int discount, BatchLine? batch)
    {
        // Hold the worst case before forwarding, from this replica's lease of the wallet (no database round trip
        // unless the lease needs topping up); free routes need no hold.
        Billing.SpendGuard.Hold? hold = null;
        if (routes.Any(r => r.Pricing is not null))
        {
            var worst = new TokenUsage(bodyLength / 4, request.MaxTokens ?? billing.Value.DefaultMaxTokens, 0);
            var worstCost = routes.Max(r => r.Pricing?.Cost(worst, discount) ?? 0);
            var limits = grants.SpendLimitDailyMicros is null && grants.SpendLimitMonthlyMicros is null && grants.SpendLimitTotalMicros is null
                ? null
                : new Billing.SpendGuard.KeyLimits(grants.KeyId, grants.SpendLimitDailyMicros, grants.SpendLimitMonthlyMicros, grants.SpendLimitTotalMicros);
            (hold, var refusal) = await spend.TryHoldAsync(orgId, limits, worstCost, context.RequestAborted);
            if (hold is null)
            {
                throw new OpenAiException(402, $"You exceeded your current quota: {refusal} cannot cover this request.", "insufficient_quota", "insufficient_quota");
            }
        }

        try
        {
            await ForwardAsync(context, request, routes, trace, batch is not null);
        }
        finally
        {
            if (hold is not null)
            {
                // What was produced is charged (also when the client left mid-stream); a request that produced nothing is free.
                var produced = trace.Usage.Prompt + trace.Usage.Completion > 0;
                trace.CostMicros = Math.Min(hold.AmountMicros, produced ? trace.Route?.Pricing?.Cost(trace.Usage, discount) ?? 0 : 0);
                if (batch is null)
                {
                    spend.Settle(hold, trace.CostMicros);
                }
                else
                {
                    batch.Defer(hold, trace.CostMicros);
                }
            }
        }
    }

    private async Task ForwardAsync(HttpContext context, InferenceRequest request, IReadOnlyList<RouteInfo> routes, Trace trace, bool batch)
    {
        var settings = options.Value;
        using var total = CancellationTokenSource.CreateLinkedTokenSource(context.RequestAborted);
        total.CancelAfter(settings.TotalTimeout);
        var tried = new HashSet<Guid>();
        UpstreamFailure? lastFailure = null;
        while (trace.Attempts < settings.MaxAttempts && selector.Next(routes, tried) is { } route)
        {
            tried.Add(route.Id);
            trace.Attempts++;
            trace.Route = route;
            using var slot = batch ? await concurrency.AcquireAsync(route.Provider, context.RequestAborted) : null;
            if (slot is not null)
            {
                total.CancelAfter(settings.TotalTimeout); // waiting for a slot is not the provider's time
            }

            var upstreamStarted = Stopwatch.GetTimestamp();
            UpstreamResponse response;
            try
            {
                using var firstByte = CancellationTokenSource.CreateLinkedTokenSource(total.Token);
                firstByte.CancelAfter(settings.FirstByteTimeout);
                response = await Upstream(route).SendAsync(request, route, firstByte.Token);
            }
            catch (Exception ex) when (ex is HttpRequestException or OperationCanceledException && !context.RequestAborted.IsCancellationRequested)
            {
                trace.UpstreamTicks += Stopwatch.GetTimestamp() - upstreamStarted;
                selector.Completed(route, success: false);
                lastFailure = new UpstreamFailure(ex is OperationCanceledException ? 504 : 502, ex is OperationCanceledException ? "upstream_timeout" : "upstream_unreachable", null);
                GatewayLog.RouteFailed(logger, route.Id, route.Provider.Name, lastFailure.Code);
                continue;
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
                        await RelayErrorAsync(context, response, trace, total.Token);
                    }
                    else if (request.Stream)
                    {
                        await RelayStreamAsync(context, request, response, trace, total.Token);
                    }
                    else
                    {
                        await RelayWholeAsync(context, request, response, trace, total.Token);
                    }

                    selector.Completed(route, success: true);
                }
                catch
                {
                    // A client that leaves is not the route's fault.
                    selector.Completed(route, success: context.RequestAborted.IsCancellationRequested);
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

    private async Task RelayWholeAsync(HttpContext context, InferenceRequest request, UpstreamResponse response, Trace trace, CancellationToken cancellationToken)
    {
        var started = Stopwatch.GetTimestamp();
        var body = await ReadAllAsync(response.Body, response.Length, MaxBufferedResponseBytes, cancellationToken);
        if (response.Format == ResponseFormat.Anthropic)
        {
            body = AnthropicTranslation.Response(body, request.Model, time.GetUtcNow().ToUnixTimeSeconds());
        }

        trace.UpstreamTicks += Stopwatch.GetTimestamp() - started;
        if (TokenUsage.TryRead(body, out var usage))
        {
            trace.Usage = usage;
        }

        trace.FirstTokenMicros = (long)Stopwatch.GetElapsedTime(trace.Started).TotalMicroseconds;
        context.Response.StatusCode = 200;
        context.Response.ContentType = "application/json";
        context.Response.ContentLength = body.Length;
        trace.ResponseBytes = body.Length;
        await context.Response.Body.WriteAsync(body, cancellationToken);
    }

    private async Task RelayStreamAsync(HttpContext context, InferenceRequest request, UpstreamResponse response, Trace trace, CancellationToken cancellationToken)
    {
        context.Features.Get<IHttpResponseBodyFeature>()?.DisableBuffering();
        context.Response.StatusCode = 200;
        context.Response.ContentType = "text/event-stream";
        context.Response.Headers.CacheControl = "no-cache";
        var anthropic = response.Format == ResponseFormat.Anthropic
            ? new AnthropicTranslation.StreamTranslator(request.Model, time.GetUtcNow().ToUnixTimeSeconds())
            : null;
        long contentChunks = 0;
        var sawUsage = false;
        try
        {
            if (anthropic is null)
            {
                await SseRelay.RelayAsync(response.Body, context.Response.BodyWriter, data =>
                {
                    if (data.SequenceEqual("[DONE]"u8))
                    {
                        trace.ResponseBytes += SseRelay.EventLength(data);
                        return SseRelay.Verdict.WriteAndEnd;
                    }

                    if (data.IndexOf("\"usage\":{"u8) >= 0 && TokenUsage.TryRead(data, out var usage))
                    {
                        trace.Usage = usage;
                        sawUsage = true;
                        if (!request.ClientWantsUsage && TokenUsage.IsUsageOnlyChunk(data))
                        {
                            return SseRelay.Verdict.Skip; // asked for on the client's behalf; it did not ask for it
                        }
                    }
                    else
                    {
                        contentChunks++;
                    }

                    trace.ResponseBytes += SseRelay.EventLength(data);
                    return SseRelay.Verdict.Write;
                }, () => trace.FirstTokenMicros ??= (long)Stopwatch.GetElapsedTime(trace.Started).TotalMicroseconds, cancellationToken, context.RequestAborted);
                return;
            }

            await foreach (var (eventType, data) in Sse.ReadAsync(response.Body, cancellationToken))
            {
                if (eventType == "message_stop")
                {
                    if (request.ClientWantsUsage)
                    {
                        await WriteEventAsync(context, anthropic.UsageChunk(), trace, cancellationToken);
                    }

                    await WriteEventAsync(context, "[DONE]", trace, cancellationToken);
                    break;
                }

                foreach (var chunk in anthropic.Translate(eventType ?? "", data))
                {
                    contentChunks++;
                    await WriteEventAsync(context, chunk, trace, cancellationToken);
                }

                trace.Usage = new TokenUsage(anthropic.PromptTokens, anthropic.CompletionTokens, anthropic.CachedTokens);
                sawUsage = anthropic.CompletionTokens > 0;
            }
        }
        catch (Exception ex) when (ex is IOException or UpstreamStreamException or HttpRequestException or System.Text.Json.JsonException
            || (ex is OperationCanceledException && !context.RequestAborted.IsCancellationRequested))
        {
            // The client already has a 200 and part of the answer: end with an error event, never a silent success.
            trace.Status = ex is OperationCanceledException ? 504 : 502;
            trace.ErrorType = ex is OperationCanceledException ? "upstream_timeout" : "upstream_stream_error";
            await WriteEventAsync(context, """{"error":{"message":"The provider failed while streaming; the answer is incomplete.","type":"server_error","param":null,"code":"upstream_stream_error"}}""", trace, CancellationToken.None);
        }
        finally
        {
            if (!sawUsage)
            {
                // The stream ended early (client gone, upstream failed): meter what was produced.
                trace.Usage = new TokenUsage(Math.Max(trace.Usage.Prompt, request.Body.Length / 4), Math.Max(trace.Usage.Completion, contentChunks), trace.Usage.Cached);
            }
        }
    }

    private static async Task WriteEventAsync(HttpContext context, string data, Trace trace, CancellationToken cancellationToken)
    {
        trace.FirstTokenMicros ??= (long)Stopwatch.GetElapsedTime(trace.Started).TotalMicroseconds;
        var line = "data: " + data + "\n\n";
        var bytes = Encoding.UTF8.GetBytes(line);
        trace.ResponseBytes += bytes.Length;
        await context.Response.Body.WriteAsync(bytes, context.RequestAborted.IsCancellationRequested ? context.RequestAborted : cancellationToken);
        await context.Response.Body.FlushAsync(context.RequestAborted);
    }

    private static async Task RelayErrorAsync(HttpContext context, UpstreamResponse response, Trace trace, CancellationToken cancellationToken)
    {
        var body = await ReadAllAsync(response.Body, response.Length, 64 * 1024, cancellationToken);
        trace.Status = response.Status;
        trace.ErrorType = "upstream_rejected";
        if (response.Format == ResponseFormat.OpenAi && body.AsSpan().IndexOf("\"error\""u8) >= 0)
        {
            context.Response.StatusCode = response.Status;
            context.Response.ContentType = "application/json";
            trace.ResponseBytes = body.Length;
            await context.Response.Body.WriteAsync(body, cancellationToken);
            return;
        }

        var message = response.Format == ResponseFormat.Anthropic ? AnthropicTranslation.ErrorMessage(body) : null;
        await OpenAiError.WriteAsync(context, response.Status, message ?? $"The provider rejected the request (status {response.Status}).", "invalid_request_error", "upstream_rejected");
    }

    private async Task<byte[]> ReadBodyAsync(HttpContext context, Trace trace)
    {
        var limit = options.Value.MaxRequestBytes;
        if (context.Features.Get<IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } sizeFeature)
        {
            sizeFeature.MaxRequestBodySize = limit + 1;
        }

        if (context.Request.ContentLength > limit)
        {
            trace.RequestBytes = context.Request.ContentLength.Value;
            throw TooLarge(limit);
        }

        var reading = Stopwatch.GetTimestamp();
        try
        {
            var body = await ReadAllAsync(context.Request.Body, context.Request.ContentLength, limit, context.RequestAborted);
            trace.RequestBytes = body.Length;
            return body;
        }
        catch (InvalidDataException)
        {
            throw TooLarge(limit);
        }
        catch (BadHttpRequestException)
        {
            throw TooLarge(limit);
        }
        finally
        {
            // Waiting for the client to send its body is not time spent in Sluice.
            trace.ClientTicks += Stopwatch.GetTimestamp() - reading;
        }
    }

    private static OpenAiException TooLarge(long limit) =>
        new(413, $"The request body is larger than the limit of {limit} bytes.", "invalid_request_error", "request_too_large");

    /// <summary>
    /// Reads a whole body into one array of exactly its size. A declared length is read straight into its array; an
    /// undeclared one is gathered in pooled buffers first. (Growing a fresh 16 KiB buffer per read used to allocate and
    /// zero about 100 KiB per request.)
    /// </summary>
    private static async Task<byte[]> ReadAllAsync(Stream stream, long? declaredLength, long limit, CancellationToken cancellationToken)
    {
        if (declaredLength is { } length && length <= limit)
        {
            var exact = GC.AllocateUninitializedArray<byte>((int)length);
            await stream.ReadExactlyAsync(exact, cancellationToken);
            return exact;
        }

        var rented = ArrayPool<byte>.Shared.Rent(4096);
        var count = 0;
        try
        {
            while (true)
            {
                if (count == rented.Length)
                {
                    var larger = ArrayPool<byte>.Shared.Rent(rented.Length * 2);
                    rented.AsSpan(0, count).CopyTo(larger);
                    ArrayPool<byte>.Shared.Return(rented);
                    rented = larger;
                }

                var read = await stream.ReadAsync(rented.AsMemory(count), cancellationToken);
                if (read == 0)
                {
                    return rented.AsSpan(0, count).ToArray();
                }

                count += read;
                if (count > limit)
                {
                    throw new InvalidDataException("body over the limit");
                }
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(rented);
        }
    }

    /// <summary>The routes that pass; the list itself when all do (the usual case), so nothing is copied per request.</summary>
    private static IReadOnlyList<RouteInfo> Eligible(IReadOnlyList<RouteInfo> routes, Func<RouteInfo, bool> passes)
    {
        for (var i = 0; i < routes.Count; i++)
        {
            if (!passes(routes[i]))
            {
                return routes.Where(passes).ToList();
            }
        }

        return routes;
    }

    private IUpstream Upstream(RouteInfo route) => route.Provider.Kind switch
    {
        ProviderKind.Echo => services.GetRequiredService<EchoUpstream>(),
        ProviderKind.Anthropic => services.GetRequiredService<AnthropicUpstream>(),
        _ => services.GetRequiredService<OpenAiCompatibleUpstream>(),
    };

    private static void WriteRateLimitHeaders(HttpContext context, GatewayRateLimiter.Decision decision)
    {
        var headers = context.Response.Headers;
        if (decision.Requests is { } requests)
        {
            headers["x-ratelimit-limit-requests"] = requests.Limit.ToString(CultureInfo.InvariantCulture);
            headers["x-ratelimit-remaining-requests"] = requests.Remaining.ToString(CultureInfo.InvariantCulture);
            headers["x-ratelimit-reset-requests"] = $"{Math.Ceiling(requests.Reset.TotalSeconds)}s";
        }

        if (decision.Tokens is { } tokens)
        {
            headers["x-ratelimit-limit-tokens"] = tokens.Limit.ToString(CultureInfo.InvariantCulture);
            headers["x-ratelimit-remaining-tokens"] = tokens.Remaining.ToString(CultureInfo.InvariantCulture);
            headers["x-ratelimit-reset-tokens"] = $"{Math.Ceiling(tokens.Reset.TotalSeconds)}s";
        }
    }

    /// <summary>The client's own request id when it is a safe token, else one made from the usage event's id.</summary>
    private static string RequestId(HttpContext context, Guid eventId)
    {
        var given = context.Request.Headers["x-request-id"].ToString();
        return given.Length is > 0 and <= 64 && given.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.')
            ? given
            : "req_" + eventId.ToString("N");
    }

    private static string Truncate(string value) => value.Length > 100 ? value[..100] + "…" : value;

    private sealed record UpstreamFailure(int Status, string Code, TimeSpan? RetryAfter);

    /// <summary>What one request did, for its usage event and its overhead header.</summary>
    private sealed class Trace(long started)
    {
        public long Started { get; } = started;

        public long UpstreamTicks { get; set; }

        public long ClientTicks { get; set; }

        public long CostMicros { get; set; }

        /// <summary>The batch line this request runs, or null for real-time traffic.</summary>
        public BatchLine? Batch { get; set; }

        public string? Model { get; set; }

        public bool Stream { get; set; }

        public int Attempts { get; set; }

        public RouteInfo? Route { get; set; }

        public TokenUsage Usage { get; set; }

        public long RequestBytes { get; set; }

        public long ResponseBytes { get; set; }

        public long? FirstTokenMicros { get; set; }

        public int? Status { get; set; }

        public string? ErrorType { get; set; }

        public long OverheadMicros() =>
            (long)Math.Max(0, Stopwatch.GetElapsedTime(Started).TotalMicroseconds - Stopwatch.GetElapsedTime(0, UpstreamTicks + ClientTicks).TotalMicroseconds);
    }
}
