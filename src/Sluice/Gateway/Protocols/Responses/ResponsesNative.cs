using System.Buffers;
using System.Text.Json;

namespace Sluice.Gateway.Protocols.Responses;

/// <summary>A <c>/v1/responses</c> call as it goes to a provider that speaks the Responses API itself.</summary>
internal static class ResponsesNative
{
    /// <summary>Whether this call goes to the route's provider in the Responses API rather than as a chat completion.</summary>
    public static bool Applies(InferenceRequest request, RouteInfo route) =>
        request.Protocol?.Protocol == InferenceProtocol.Responses && route.Provider.SupportsResponses && !request.NativeBody.IsEmpty;

    /// <summary>
    /// The caller's own body with <c>model</c> replaced by the route's upstream name, <c>max_output_tokens</c> set to the
    /// limit Sluice held for (added when the caller sent none) and <c>store</c> forced false (Sluice keeps no content,
    /// and neither may the provider on its behalf). Everything else is copied byte for byte.
    /// </summary>
    public static byte[] RewriteFor(InferenceRequest request, string upstreamModel)
    {
        var body = request.NativeBody.Span;
        var limit = request.CompletionLimit;
        var output = new ArrayBufferWriter<byte>(body.Length + 64);
        using (var writer = new Utf8JsonWriter(output))
        {
            var reader = new Utf8JsonReader(body);
            reader.Read();
            writer.WriteStartObject();
            var wroteLimit = false;
            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                if (reader.ValueTextEquals("model"u8) || reader.ValueTextEquals("store"u8))
                {
                    reader.Read();
                    reader.Skip();
                    continue;
                }

                if (limit > 0 && reader.ValueTextEquals("max_output_tokens"u8))
                {
                    reader.Read();
                    reader.Skip();
                    writer.WriteNumber("max_output_tokens"u8, limit);
                    wroteLimit = true;
                    continue;
                }

                if (reader.ValueIsEscaped)
                {
                    writer.WritePropertyName(reader.GetString()!);
                }
                else
                {
                    writer.WritePropertyName(reader.ValueSpan);
                }

                reader.Read();
                var valueStart = (int)reader.TokenStartIndex;
                reader.Skip();
                writer.WriteRawValue(body[valueStart..(int)reader.BytesConsumed], skipInputValidation: true);
            }

            writer.WriteString("model"u8, upstreamModel);
            writer.WriteBoolean("store"u8, false);
            if (limit > 0 && !wroteLimit)
            {
                writer.WriteNumber("max_output_tokens"u8, limit);
            }

            writer.WriteEndObject();
        }

        return output.WrittenSpan.ToArray();
    }
}
