using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Sluice.Gateway;

internal static partial class AnthropicTranslation
{
    /// <summary>A Messages API response as a chat completion.</summary>
    public static byte[] Response(ReadOnlySpan<byte> body, string model, long created, bool answeredAsJson = false)
    {
        var message = JsonNode.Parse(body)!.AsObject();
        var text = new StringBuilder();
        var reasoning = new StringBuilder();
        var calls = new JsonArray();
        foreach (var block in message["content"] as JsonArray ?? [])
        {
            switch (block?["type"]?.GetValue<string>())
            {
                case "text":
                    text.Append(block["text"]?.GetValue<string>());
                    break;
                case "thinking":
                    reasoning.Append(block["thinking"]?.GetValue<string>());
                    break;
                case "tool_use" when answeredAsJson && block["name"]?.GetValue<string>() == JsonTool:
                    text.Append((block["input"] ?? new JsonObject()).ToJsonString());
                    break;
                case "tool_use":
                    calls.Add(new JsonObject
                    {
                        ["id"] = block["id"]?.GetValue<string>(),
                        ["type"] = "function",
                        ["function"] = new JsonObject
                        {
                            ["name"] = block["name"]?.GetValue<string>(),
                            ["arguments"] = (block["input"] ?? new JsonObject()).ToJsonString(),
                        },
                    });
                    break;
                default:
                    break; // redacted thinking (encrypted, nothing to show), server tool blocks (never asked for)
            }
        }

        var answer = new JsonObject
        {
            ["role"] = "assistant",
            ["content"] = text.Length == 0 && calls.Count > 0 ? null : text.ToString(),
            ["refusal"] = null,
        };
        if (calls.Count > 0)
        {
            answer["tool_calls"] = calls;
        }

        if (reasoning.Length > 0)
        {
            answer["reasoning_content"] = reasoning.ToString();
        }

        var usage = message["usage"];
        var completion = new JsonObject
        {
            ["id"] = message["id"]?.GetValue<string>() ?? "chatcmpl-anthropic",
            ["object"] = "chat.completion",
            ["created"] = created,
            ["model"] = message["model"]?.GetValue<string>() ?? model,
            ["choices"] = new JsonArray(new JsonObject
            {
                ["index"] = 0,
                ["message"] = answer,
                ["logprobs"] = null,
                ["finish_reason"] = FinishReason(message["stop_reason"]?.GetValue<string>(), answeredAsJson),
            }),
            ["usage"] = usage is null ? null : Usage(AnthropicUsage.Read(usage)), // none reported: Sluice counts
        };
        return JsonSerializer.SerializeToUtf8Bytes(completion);
    }
}
