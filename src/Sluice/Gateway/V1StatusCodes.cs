using Microsoft.AspNetCore.Diagnostics;

namespace Sluice.Gateway;

/// <summary>
/// An error on <c>/v1</c> that no endpoint wrote a body for gets one in OpenAI's shape instead of the ProblemDetails the
/// status-code pages give <c>/api</c>: an unknown path is OpenAI's own <c>404 unknown_url</c> ("Invalid URL (POST
/// /v1/chat/completion)"), a known path with the wrong method a <c>405 method_not_allowed</c> (routing's <c>Allow</c>
/// header kept). Runs inside the status-code pages, so once it has written a body they leave the answer alone.
/// </summary>
internal sealed class V1StatusCodes(RequestDelegate next)
{
    /// <summary>How much of the path an error message quotes (it is the caller's own URL, as OpenAI quotes it).</summary>
    private const int MaxQuotedPath = 200;

    public async Task InvokeAsync(HttpContext context)
    {
        await next(context);
        var response = context.Response;
        if (response.StatusCode < 400 || response.HasStarted || response.ContentLength.HasValue || !string.IsNullOrEmpty(response.ContentType)
            || !OpenAiError.IsV1(context) || context.Features.Get<IStatusCodePagesFeature>() is { Enabled: false })
        {
            return;
        }

        var request = context.Request;
        var path = request.Path.Value ?? "/";
        var quoted = $"{request.Method} {(path.Length > MaxQuotedPath ? path[..MaxQuotedPath] + "…" : path)}";
        var (message, code) = response.StatusCode switch
        {
            StatusCodes.Status404NotFound when context.GetEndpoint() is null => ($"Invalid URL ({quoted})", "unknown_url"),
            StatusCodes.Status404NotFound => ("Not found.", "not_found"),
            StatusCodes.Status405MethodNotAllowed => (
                response.Headers.Allow.Count > 0
                    ? $"Method not allowed ({quoted}): this path takes {response.Headers.Allow}."
                    : $"Method not allowed ({quoted}).",
                "method_not_allowed"),
            StatusCodes.Status413PayloadTooLarge => ("The request body is too large.", "request_too_large"),
            StatusCodes.Status415UnsupportedMediaType => ("The request's Content-Type is not supported here; send application/json.", "unsupported_media_type"),
            >= 500 => ("The server had an error processing your request; retry later.", (string?)null),
            _ => ("The request could not be served.", null),
        };
        await OpenAiError.WriteAsync(context, response.StatusCode, message, response.StatusCode >= 500 ? "server_error" : "invalid_request_error", code);
    }
}
