using System.Globalization;
using System.Security.Claims;
using Sluice.Gateway;

namespace Sluice.Identity;

/// <summary>Endpoint metadata: only an API key holding at least one of <see cref="AnyOf"/> may call the endpoint.</summary>
public sealed record ApiKeyRequirement(KeyScopes AnyOf);

public static class ApiKeyEndpointConventions
{
    /// <summary>The endpoint is part of the OpenAI-compatible API: <see cref="ApiKeyGate"/> authenticates and authorizes it.</summary>
    public static TBuilder RequireApiKey<TBuilder>(this TBuilder builder, KeyScopes anyOf)
        where TBuilder : IEndpointConventionBuilder => builder.WithMetadata(new ApiKeyRequirement(anyOf));
}

/// <summary>
/// Authenticates and authorizes the OpenAI-compatible API (the endpoints marked with <see cref="ApiKeyRequirement"/>)
/// in one step: the key from <c>Authorization: Bearer</c> or <c>x-api-key</c> through the verification cache, then its
/// scopes, with OpenAI's error shape for a missing, unknown or under-scoped key. Those endpoints take nothing else (no
/// session cookie, no organization membership), so the gate runs them itself: they skip the general authentication and
/// authorization middleware, whose per-request work (a handler per scheme, policy evaluation, every authorization
/// handler resolved) cost more than the gateway's own, and anything placed after the gate in the pipeline. Every other
/// endpoint goes on through the pipeline as before.
/// </summary>
internal sealed class ApiKeyGate(RequestDelegate next, ApiKeyVerifier verifier, ApiKeyUsageRecorder usage, TimeProvider time)
{
    // Worded for API clients, as OpenAI words them: a /v1 caller has no session to sign in to. The key is never quoted.
    private const string MissingKeyMessage =
        "You didn't provide an API key. Provide your API key in an Authorization header using Bearer auth (Authorization: Bearer YOUR_KEY), or in an x-api-key header. An organization's owner or admin creates keys in the console or with POST /api/v1/orgs/{orgId}/keys.";

    private const string InvalidKeyMessage =
        "Incorrect API key provided: the key is unknown, revoked or expired. Check the key you send in the Authorization (Bearer) or x-api-key header.";

    public async Task InvokeAsync(HttpContext context)
    {
        var endpoint = context.GetEndpoint();
        if (endpoint?.Metadata.GetMetadata<ApiKeyRequirement>() is not { } requirement || endpoint.RequestDelegate is not { } handler)
        {
            await next(context);
            return;
        }

        // An endpoint in another protocol (Anthropic Messages) has its refusals in that protocol's shape.
        var shape = endpoint.Metadata.GetMetadata<Gateway.Protocols.InboundProtocolMetadata>();
        if (shape?.RequestIdHeader is { } requestIdHeader)
        {
            context.Response.Headers[requestIdHeader] = Hosting.RequestIds.Of(context, time).RequestId;
        }

        var presented = AuthenticationSchemes.PresentedKey(context.Request);
        var key = string.IsNullOrEmpty(presented) ? null : await verifier.VerifyAsync(presented, context.RequestAborted);
        if (key is null)
        {
            await RefuseAsync(context, shape, new OpenAiException(401, string.IsNullOrEmpty(presented) ? MissingKeyMessage : InvalidKeyMessage, "invalid_request_error", "invalid_api_key"));
            return;
        }

        if ((key.Scopes & requirement.AnyOf) == 0)
        {
            await RefuseAsync(context, shape, new OpenAiException(403,
                $"This API key lacks the scope this endpoint needs ({Scopes(requirement.AnyOf)}).", "invalid_request_error", "insufficient_scope"));
            return;
        }

        usage.Touch(key.KeyId);
        context.User = ApiKeyClaims.Principal(key, AuthenticationSchemes.ApiKey);
        context.Items[typeof(VerifiedKey)] = key; // the gateway reads the key's limits and models from here, without I/O
        await handler(context);
    }

    private static Task RefuseAsync(HttpContext context, Gateway.Protocols.InboundProtocolMetadata? shape, OpenAiException refusal) =>
        shape is null
            ? OpenAiError.WriteAsync(context, refusal)
            : shape.WriteErrorAsync(context, refusal);

    private static string Scopes(KeyScopes anyOf) => string.Join(" or ", KeyScopeNames.Format(anyOf).Select(name => $"'{name}'"));
}

/// <summary>The claims an authenticated API key carries, whichever way it was authenticated.</summary>
internal static class ApiKeyClaims
{
    public static ClaimsPrincipal Principal(VerifiedKey key, string authenticationType)
    {
        var claims = new List<Claim>(4)
        {
            new(Caller.KeyClaim, key.KeyId.ToString()),
            new(Caller.KeyOrganizationClaim, key.OrganizationId.ToString()),
            new(Caller.KeyScopesClaim, ((int)key.Scopes).ToString(CultureInfo.InvariantCulture)),
        };
        if (key.CreatedByUserId is { } creator)
        {
            claims.Add(new Claim(Caller.KeyCreatorClaim, creator.ToString()));
        }

        return new ClaimsPrincipal(new ClaimsIdentity(claims, authenticationType));
    }
}
