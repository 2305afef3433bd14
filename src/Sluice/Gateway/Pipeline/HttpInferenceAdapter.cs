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
            return await BodyReading.ReadAllAsync(context.Request.Body, context.Request.ContentLength, limit, context.RequestAborted);
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
}
