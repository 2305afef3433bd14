using System.Diagnostics;
using System.Globalization;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Options;
using Sluice.Hosting;
using Sluice.Identity;

namespace Sluice.Gateway.Pipeline;

/// <summary>
/// The <c>/v1/chat/completions</c>, <c>/v1/completions</c> and <c>/v1/embeddings</c> adapter: the request's verified key,
/// its id, its body (size-checked as it is read) and its response, handed to the <see cref="InferencePipeline"/>.
/// </summary>
public sealed class HttpInferenceAdapter(InferencePipeline pipeline, IOptions<GatewayOptions> options, TimeProvider time)
{
    /// <summary>How long an oversize body is drained before the connection is given up.</summary>
    private static readonly TimeSpan DrainTimeout = TimeSpan.FromSeconds(30);

    public Task HandleAsync(HttpContext context, InferenceEndpoint endpoint) => HandleAsync(context, endpoint, null);

    /// <summary>A call in another inbound protocol (the Responses API, Anthropic Messages), run as a chat completion.</summary>
    public Task HandleAsync(HttpContext context, Protocols.IInboundProtocol protocol) => HandleAsync(context, InferenceEndpoint.ChatCompletions, protocol);

    private Task HandleAsync(HttpContext context, InferenceEndpoint endpoint, Protocols.IInboundProtocol? protocol)
    {
        var started = Stopwatch.GetTimestamp();
        var (eventId, requestId) = RequestIds.Of(context, time);
        if (context.Items[typeof(VerifiedKey)] is not VerifiedKey key)
        {
            return new HttpResponseSink(context, protocol).WriteErrorAsync(new OpenAiException(401, "The API key could not be read.", "invalid_request_error", "invalid_api_key"));
        }

        var trace = new InferenceTrace(started, time.GetUtcNow());
        context.Response.OnStarting(static state =>
        {
            var (response, trace) = ((HttpResponse, InferenceTrace))state;
            response.Headers["x-sluice-overhead-us"] = trace.OverheadMicros().ToString(CultureInfo.InvariantCulture);
            return Task.CompletedTask;
        }, (context.Response, trace));

        var call = new InferenceCall
        {
            Endpoint = endpoint,
            Key = key,
            EventId = eventId,
            RequestId = requestId,
            Aborted = context.RequestAborted,
            ReadBody = t => ReadBodyAsync(context, t),
            Protocol = protocol,
        };
        return pipeline.RunAsync(call, trace, new HttpResponseSink(context, protocol));
    }

    private async Task<byte[]> ReadBodyAsync(HttpContext context, InferenceTrace trace)
    {
        var settings = options.Value;
        var limit = settings.MaxRequestBytes;

        // The server's own cap is past the drain allowance: Sluice enforces the limit itself (BodyReading) and can then
        // read the rest of an oversize body before it answers.
        if (context.Features.Get<IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } sizeFeature)
        {
            sizeFeature.MaxRequestBodySize = limit + settings.OversizeDrainBytes + 1;
        }

        if (context.Request.ContentLength > limit)
        {
            trace.RequestBytes = context.Request.ContentLength.Value;
            await DrainAsync(context, trace, limit);
            throw TooLarge(limit);
        }

        var reading = Stopwatch.GetTimestamp();
        try
        {
            return await BodyReading.ReadAllAsync(context.Request.Body, context.Request.ContentLength, limit, context.RequestAborted);
        }
        catch (InvalidDataException)
        {
            await DrainAsync(context, trace, limit);
            throw TooLarge(limit);
        }
        catch (BadHttpRequestException)
        {
            context.Response.Headers.Connection = "close";
            throw TooLarge(limit);
        }
        finally
        {
            // Waiting for the client to send its body is not time spent in Sluice.
            trace.ClientTicks += Stopwatch.GetTimestamp() - reading;
        }
    }

    /// <summary>
    /// Reads and discards the rest of an oversize body, up to <see cref="GatewayOptions.OversizeDrainBytes"/> and for at
    /// most <see cref="DrainTimeout"/>, so the 413 reaches a client that sends its whole body before it reads: answered
    /// with the body unread, the server's close would reset the connection under the client's writes, and the client
    /// would see a broken connection (and an SDK would retry it). Past the allowance the answer closes the connection.
    /// </summary>
    private async Task DrainAsync(HttpContext context, InferenceTrace trace, long limit)
    {
        var allowance = options.Value.OversizeDrainBytes;
        if (allowance == 0 || context.Request.ContentLength > limit + allowance)
        {
            context.Response.Headers.Connection = "close";
            return;
        }

        var started = Stopwatch.GetTimestamp();
        var buffer = System.Buffers.ArrayPool<byte>.Shared.Rent(64 * 1024);
        using var timeout = new CancellationTokenSource(DrainTimeout, time);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(timeout.Token, context.RequestAborted);
        long drained = 0;
        try
        {
            int read;
            while ((read = await context.Request.Body.ReadAsync(buffer, linked.Token)) > 0)
            {
                drained += read;
                if (drained > limit + allowance)
                {
                    context.Response.Headers.Connection = "close";
                    return;
                }
            }
        }
        catch (Exception ex) when (ex is BadHttpRequestException or IOException or OperationCanceledException)
        {
            context.Response.Headers.Connection = "close"; // too slow, cut off or too long: stop reading
        }
        finally
        {
            System.Buffers.ArrayPool<byte>.Shared.Return(buffer);
            trace.ClientTicks += Stopwatch.GetTimestamp() - started;
        }
    }

    private static OpenAiException TooLarge(long limit) =>
        new(413, $"The request body is larger than the limit of {limit} bytes.", "invalid_request_error", "request_too_large");
}
