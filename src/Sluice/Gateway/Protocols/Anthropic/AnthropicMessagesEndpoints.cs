using System.Text.Json;
using Microsoft.Extensions.Options;
using Sluice.Gateway.Pipeline;
using Sluice.Identity;

namespace Sluice.Gateway.Protocols.Anthropic;

/// <summary><c>POST /v1/messages</c> and <c>POST /v1/messages/count_tokens</c>: Anthropic's Messages API.</summary>
internal static class AnthropicMessagesEndpoints
{
    private static readonly InboundProtocolMetadata Shape = new(AnthropicMessagesProtocol.ErrorShape, "request-id");

    /// <summary>Maps the endpoints on the <c>/v1</c> group (which requires an inference key).</summary>
    public static RouteGroupBuilder MapAnthropicMessages(this RouteGroupBuilder v1)
    {
        v1.MapPost("/messages", (HttpContext context, HttpInferenceAdapter handler) => handler.HandleAsync(context, FromHeaders(context)))
            .WithMetadata(Shape);
        v1.MapPost("/messages/count_tokens", CountTokensAsync).WithMetadata(Shape);
        return v1;
    }

    private static AnthropicMessagesProtocol FromHeaders(HttpContext context)
    {
        var headers = context.Request.Headers;
        var beta = headers["anthropic-beta"];
        return new AnthropicMessagesProtocol(headers["anthropic-version"].ToString(), beta.Count == 0 ? null : string.Join(',', beta.ToArray()));
    }

    /// <summary>
    /// Sluice's own count (o200k_base, <see cref="TokenCounter"/>) of the translated prompt and tool definitions, not the
    /// provider's tokenizer: an estimate. Not billed and not metered; the body is only read in memory.
    /// </summary>
    private static async Task CountTokensAsync(HttpContext context, Catalog catalog, IOptions<GatewayOptions> options, IOrganizationModels? organizationModels = null)
    {
        try
        {
            if (context.Items[typeof(VerifiedKey)] is not VerifiedKey key)
            {
                throw new OpenAiException(401, "The API key could not be read.", "invalid_request_error", "invalid_api_key");
            }

            var protocol = FromHeaders(context);
            protocol.CheckHeaders();
            var limit = options.Value.MaxRequestBytes;
            byte[] body;
            try
            {
                body = context.Request.ContentLength > limit
                    ? throw new InvalidDataException()
                    : await BodyReading.ReadAllAsync(context.Request.Body, context.Request.ContentLength, limit, context.RequestAborted);
            }
            catch (Exception ex) when (ex is InvalidDataException or BadHttpRequestException)
            {
                throw new OpenAiException(413, $"The request body is larger than the limit of {limit} bytes.", "invalid_request_error", "request_too_large");
            }

            InferenceRequest.CheckText(body);
            var chat = AnthropicRequestTranslation.Translate(body, countOnly: true);
            var modelName = chat["model"]!.GetValue<string>();
            var model = ModelLookup.Find(catalog, organizationModels, key.OrganizationId, modelName)
                ?? throw new OpenAiException(404, $"model: the model '{(modelName.Length > 100 ? modelName[..100] : modelName)}' does not exist or you do not have access to it.", "invalid_request_error", "model_not_found", "model");
            if (key.AllowedModels is { } allowed && !allowed.Split(' ').Contains(model.Id, StringComparer.Ordinal))
            {
                throw new OpenAiException(403, "model: this API key may not use this model.", "invalid_request_error", "model_not_allowed", "model");
            }

            var tokens = TokenCounter.CountPrompt(InferenceEndpoint.ChatCompletions, JsonSerializer.SerializeToUtf8Bytes(chat));
            if (chat["tools"] is { } tools)
            {
                tokens += TokenCounter.Count(tools.ToJsonString());
            }

            context.Response.ContentType = "application/json";
            await using var json = new Utf8JsonWriter(context.Response.Body);
            json.WriteStartObject();
            json.WriteNumber("input_tokens", tokens);
            json.WriteEndObject();
        }
        catch (OpenAiException failure)
        {
            await Shape.WriteErrorAsync(context, failure);
        }
        catch (Exception ex) when (ex is ArgumentException or InvalidOperationException or FormatException or JsonException)
        {
            // Whatever the translation lets through is still the caller's input: a 400 in Anthropic's shape, never a 500.
            await Shape.WriteErrorAsync(context, OpenAiException.Invalid("The request body could not be read: a property is repeated or a value has an unexpected shape."));
        }
    }
}
