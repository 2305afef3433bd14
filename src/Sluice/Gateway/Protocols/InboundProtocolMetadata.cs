using System.Text.Json;

namespace Sluice.Gateway.Protocols;

/// <summary>
/// Endpoint metadata: the endpoint speaks <paramref name="Protocol"/>, so the API-key gate's refusals (401, 403) take its
/// error shape, and every answer carries the request id under <paramref name="RequestIdHeader"/> as well as x-request-id.
/// </summary>
public sealed record InboundProtocolMetadata(IInboundProtocol Protocol, string? RequestIdHeader = null)
{
    /// <summary>An error in the protocol's shape, straight to the response.</summary>
    public async Task WriteErrorAsync(HttpContext context, OpenAiException failure)
    {
        context.Response.StatusCode = failure.Status;
        context.Response.ContentType = "application/json";
        await using var json = new Utf8JsonWriter(context.Response.Body);
        Protocol.WriteError(json, failure);
    }
}
