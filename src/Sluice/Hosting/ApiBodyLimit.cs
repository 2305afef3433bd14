using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Http.Metadata;
using Microsoft.Extensions.Options;

namespace Sluice.Hosting;

/// <summary>
/// Bounds request bodies on the management API (<c>/api</c>), which is read anonymously on sign-up, sign-in and the
/// Stripe webhook: <see cref="ServerOptions.ApiMaxBodyBytes"/>, or what the endpoint declares with
/// <see cref="IRequestSizeLimitMetadata"/>. A declared <c>Content-Length</c> over the limit is answered 413 as
/// ProblemDetails before a byte of the body is read, and the connection is closed rather than drained; a chunked body
/// is cut off by the server when it passes the limit (also 413).
/// </summary>
internal sealed class ApiBodyLimit(RequestDelegate next, IOptions<ServerOptions> options)
{
    public Task InvokeAsync(HttpContext context)
    {
        if (!context.Request.Path.StartsWithSegments("/api", StringComparison.OrdinalIgnoreCase))
        {
            return next(context);
        }

        var limit = context.GetEndpoint()?.Metadata.GetMetadata<IRequestSizeLimitMetadata>()?.MaxRequestBodySize ?? options.Value.ApiMaxBodyBytes;
        if (context.Features.Get<IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } size)
        {
            size.MaxRequestBodySize = limit;
        }

        if (context.Request.ContentLength > limit)
        {
            context.Response.Headers.Connection = "close";
            throw TooLarge(limit);
        }

        return next(context);
    }

    public static ApiProblemException TooLarge(long? limit) => new(
        StatusCodes.Status413PayloadTooLarge,
        "The request body is too large.",
        limit is { } bytes
            ? $"This endpoint takes bodies of at most {bytes} bytes; send less."
            : "The body is larger than this endpoint takes; send less.");
}

/// <summary>Declares an endpoint's own body limit for <see cref="ApiBodyLimit"/>.</summary>
internal sealed record BodyLimit(long? MaxRequestBodySize) : IRequestSizeLimitMetadata;
