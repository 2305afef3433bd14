using System.Diagnostics;
using Microsoft.Extensions.Options;

namespace Sluice.Gateway.Pipeline;

/// <summary>
/// The inference pipeline, for every way a call arrives (<c>/v1</c> HTTP, batch lines; the Responses API and Anthropic
/// Messages next): parse → policy (model, key grants, data policy) → limits (real-time only) → hold → route and
/// upstream (<see cref="RouteForwarder"/>) → meter. It knows nothing about HTTP: the adapter hands it an
/// <see cref="InferenceCall"/> and an <see cref="IResponseSink"/>, and it writes exactly one answer and records exactly one
/// usage event whose status is the one the receiver got. Bodies live only in memory; nothing here logs or stores them.
/// </summary>
public sealed class InferencePipeline(
    Catalog catalog,
    Billing.SpendGuard spend,
    IOptions<Billing.BillingOptions> billing,
    GatewayRateLimiter limiter,
    OrganizationPolicies policies,
    UsageMeter meter,
    RouteForwarder forwarder,
    IOptions<GatewayOptions> options,
    ILogger<InferencePipeline> logger,
    IOrganizationModels? organizationModels = null)
{
    /// <summary>Runs one call to its end. Never throws: every failure becomes an answer (or, once one started, an abort) and a usage event.</summary>
    public async Task RunAsync(InferenceCall call, InferenceTrace trace, IResponseSink sink)
    {
        int status;
        string? errorType = null;
        try
        {
            await ServeAsync(call, trace, sink);
            status = trace.Status ?? sink.Status;
            errorType = trace.ErrorType;
        }
        catch (Exception ex) when (PipelineFailures.ClientLeft(ex, call.Aborted))
        {
            status = 499;
            errorType = "client_disconnected";
        }
        catch (Exception ex)
        {
            // The one place a failure becomes an answer (see PipelineFailures.Map).
            var error = PipelineFailures.Map(ex, logger);
            status = error.Status;
            errorType = error.Code ?? error.Type;
            if (!sink.HasStarted)
            {
                await sink.WriteErrorAsync(error);
            }
            else if (trace.StreamOpenedEarly && trace.ResponseBytes == 0)
            {
                // Only keep-alive comments went out (the call waited for a deployment's replica): the error is an event.
                await sink.WriteErrorEventAsync(error);
            }
            else
            {
                sink.Abort(); // half an answer must not pass for a whole one
            }
        }

        var batch = call.Batch;
        meter.Record(new UsageEvent
        {
            Id = call.EventId,
            RequestId = call.RequestId,
            OrganizationId = call.Key.OrganizationId,
            KeyId = call.Key.KeyId,
            Endpoint = call.Protocol?.EndpointName ?? InferenceRequest.Name(call.Endpoint),
            Model = trace.Model,
            RouteId = trace.Route is { Provider.IsBuiltIn: false, Provider.Kind: not ProviderKind.Deployment } route ? route.Id : null, // a deployment is DeploymentId
            Status = status,
            ErrorType = errorType,
            Stream = trace.Stream,
            Attempts = trace.Attempts,
            PromptTokens = trace.Usage.Prompt,
            CompletionTokens = trace.Usage.Completion,
            CachedTokens = trace.Usage.Cached,
            TokensCountedLocally = trace.CountedLocally,
            RequestBytes = trace.RequestBytes,
            ResponseBytes = trace.ResponseBytes,
            LatencyMicros = (long)Stopwatch.GetElapsedTime(trace.Started).TotalMicroseconds,
            TimeToFirstTokenMicros = trace.FirstTokenMicros,
            CostMicros = trace.CostMicros,
            BatchId = batch?.BatchId,
            DeploymentId = trace.DeploymentId,
            QueueWaitMicros = trace.QueueWaitMicros,
            ColdStart = trace.ColdStart,
            StartedAt = trace.StartedAt,
        });
        if (batch is not null)
        {
            batch.Status = status;
            batch.Usage = trace.Usage;
        }
    }

    private async Task ServeAsync(InferenceCall call, InferenceTrace trace, IResponseSink sink)
    {
        var body = await call.ReadBody(trace);
        trace.RequestBytes = body.Length;
        if (call.Protocol is not null)
        {
            InferenceRequest.CheckText(body.AsSpan()); // before translation decodes any of it
        }

        var request = call.Protocol is { } protocol
            ? InferenceRequest.Parse(InferenceEndpoint.ChatCompletions, protocol.ToChatCompletions(body)) with { Protocol = protocol, NativeBody = body }
            : InferenceRequest.Parse(call.Endpoint, body);
        trace.Stream = request.Stream;

        // Policy: the model, the key's grants and the organization's data policy.
        // The organization's own deployments first, then the catalog, then published deployments (ModelLookup).
        var model = ModelLookup.Find(catalog, organizationModels, call.Key.OrganizationId, request.Model)
            ?? throw new OpenAiException(404, $"The model '{Truncate(request.Model)}' does not exist or you do not have access to it.", "invalid_request_error", "model_not_found", "model");

        // Only a catalog id is metered: an unknown model name is client input and could be anything.
        trace.Model = model.Id;
        var grants = call.Key;
        // A key's grant of a model covers the model by any name; a grant of an alias covers calls by that alias.
        if (grants.AllowedModels is { } allowed && !IsAllowed(allowed, model.Id) && !(request.Model != model.Id && IsAllowed(allowed, request.Model)))
        {
            throw new OpenAiException(403, $"This API key may not use the model '{Truncate(model.Id)}'.", "invalid_request_error", "model_not_allowed", "model");
        }

        var org = await policies.OrganizationAsync(grants.OrganizationId, call.Aborted);
        trace.Stamp = new AnswerStamp(model.Id, org.UsageCostInResponses);
        var routes = Eligible(model.Routes, call.Endpoint, static (r, endpoint) => r.Provider.Supports(endpoint));
        if (routes.Count == 0)
        {
            throw OpenAiException.Invalid($"The model '{Truncate(model.Id)}' does not support {InferenceRequest.Name(call.Endpoint)}.", "model", "unsupported_endpoint");
        }

        routes = Eligible(routes, org, static (r, org) => (!org.RequireZeroRetention || !r.RetainsData) && (org.AllowsTrainingRoutes || !r.TrainsOnData));
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

        // The completion limit the provider gets is the one held for (item: every answer is charged for what it used):
        // the larger of the client's limits, or, on priced routes, Billing:DefaultMaxTokens when it set none.
        var priced = AnyPriced(routes);
        var limit = call.Endpoint == InferenceEndpoint.Embeddings ? 0 : request.MaxTokens ?? (priced ? billing.Value.DefaultMaxTokens : 0);
        if (limit > 0)
        {
            request = request with { CompletionLimit = limit };
        }

        if (call.Batch is { } batch)
        {
            // Batch lines are paced by the runner's concurrency limits, not by the key's real-time rate limits.
            await HoldAndForwardAsync(call, request, routes, trace, sink, org.Id, billing.Value.BatchDiscountPercent, batch);
            return;
        }

        // Limits: the key's and the organization's real-time rate limits.
        var settings = options.Value;
        var estimate = TokenCounter.PromptBound(body.Length) + ((long)(request.MaxTokens ?? 256) * request.Choices);
        var decision = limiter.TryAcquire(grants.KeyId, grants.RequestsPerMinute ?? settings.DefaultRequestsPerMinute, grants.TokensPerMinute ?? settings.DefaultTokensPerMinute,
            org.Id, org.RequestsPerMinute ?? settings.DefaultRequestsPerMinute, org.TokensPerMinute ?? settings.DefaultTokensPerMinute, estimate);
        WriteRateLimitHeaders(sink, decision);
        if (!decision.Allowed)
        {
            throw new OpenAiException(429, $"Rate limit reached: {decision.Which}. Retry after {Math.Ceiling(decision.RetryAfter.TotalSeconds)} s.",
                "requests", "rate_limit_exceeded", retryAfter: decision.RetryAfter);
        }

        try
        {
            await HoldAndForwardAsync(call, request, routes, trace, sink, org.Id, 0, null);
        }
        finally
        {
            limiter.Settle(grants.KeyId, org.Id, trace.Usage.Prompt + trace.Usage.Completion - estimate);
        }
    }

    private async Task HoldAndForwardAsync(
        InferenceCall call, InferenceRequest request, IReadOnlyList<RouteInfo> routes, InferenceTrace trace, IResponseSink sink, Guid orgId, int discount, BatchLine? batch)
    {
        // Hold the worst case before forwarding, from this replica's lease of the wallet (no database round trip
        // unless the lease needs topping up); free routes need no hold.
        Billing.SpendGuard.Hold? hold = null;
        if (AnyPriced(routes))
        {
            // The worst case: a prompt bound provably at or above the provider's count, and every choice at the limit
            // the provider is told (RewriteFor writes it), so the charge is never capped below what was delivered.
            var worst = new TokenUsage(TokenCounter.PromptBound(request.Body.Length), (long)request.CompletionLimit * request.Choices, 0);
            long worstCost = 0;
            for (var i = 0; i < routes.Count; i++)
            {
                worstCost = Math.Max(worstCost, routes[i].Pricing?.Cost(worst, discount) ?? 0);
            }

            var grants = call.Key;
            var limits = grants.SpendLimitDailyMicros is null && grants.SpendLimitMonthlyMicros is null && grants.SpendLimitTotalMicros is null
                ? null
                : new Billing.SpendGuard.KeyLimits(grants.KeyId, grants.SpendLimitDailyMicros, grants.SpendLimitMonthlyMicros, grants.SpendLimitTotalMicros);
            (hold, var refusal) = await spend.TryHoldAsync(orgId, limits, worstCost, call.Aborted);
            if (hold is null)
            {
                throw new OpenAiException(402, $"You exceeded your current quota: {refusal} cannot cover this request.", "insufficient_quota", "insufficient_quota");
            }
        }

        // The charge is a function of the usage, known to the relay too: it stamps usage.cost with what is settled here.
        trace.HeldMicros = hold?.AmountMicros;
        trace.DiscountPercent = discount;
        try
        {
            await forwarder.ForwardAsync(request, routes, trace, sink, batch is not null, call.Aborted);
        }
        finally
        {
            if (hold is not null)
            {
                // What was produced is charged (also when the client left mid-stream); a request that produced nothing is free.
                trace.CostMicros = trace.ChargeFor(trace.Usage);
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

    private static bool AnyPriced(IReadOnlyList<RouteInfo> routes)
    {
        for (var i = 0; i < routes.Count; i++)
        {
            if (routes[i].Pricing is not null)
            {
                return true;
            }
        }

        return false;
    }

    private static bool IsAllowed(string allowed, string model)
    {
        foreach (var range in allowed.AsSpan().Split(' '))
        {
            if (allowed.AsSpan()[range].SequenceEqual(model))
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>The routes that pass; the list itself when all do (the usual case), so nothing is copied per request.</summary>
    private static IReadOnlyList<RouteInfo> Eligible<TState>(IReadOnlyList<RouteInfo> routes, TState state, Func<RouteInfo, TState, bool> passes)
    {
        for (var i = 0; i < routes.Count; i++)
        {
            if (!passes(routes[i], state))
            {
                var kept = new List<RouteInfo>(routes.Count);
                foreach (var route in routes)
                {
                    if (passes(route, state))
                    {
                        kept.Add(route);
                    }
                }

                return kept;
            }
        }

        return routes;
    }

    private static void WriteRateLimitHeaders(IResponseSink sink, GatewayRateLimiter.Decision decision)
    {
        var invariant = System.Globalization.CultureInfo.InvariantCulture;
        if (decision.Requests is { } requests)
        {
            sink.SetHeader("x-ratelimit-limit-requests", requests.Limit.ToString(invariant));
            sink.SetHeader("x-ratelimit-remaining-requests", requests.Remaining.ToString(invariant));
            sink.SetHeader("x-ratelimit-reset-requests", $"{Math.Ceiling(requests.Reset.TotalSeconds)}s");
        }

        if (decision.Tokens is { } tokens)
        {
            sink.SetHeader("x-ratelimit-limit-tokens", tokens.Limit.ToString(invariant));
            sink.SetHeader("x-ratelimit-remaining-tokens", tokens.Remaining.ToString(invariant));
            sink.SetHeader("x-ratelimit-reset-tokens", $"{Math.Ceiling(tokens.Reset.TotalSeconds)}s");
        }
    }

    internal static string Truncate(string value) => value.Length > 100 ? value[..100] + "…" : value;
}
