using System.Text.Json.Nodes;

namespace Sluice.Gateway;

internal static partial class AnthropicTranslation
{
    /// <summary>
    /// Turns Anthropic stream events into OpenAI chunks, keeping the usage they report: text and thinking deltas,
    /// tool_use blocks as tool_calls deltas (id and name first, argument fragments after), the stop reason as the
    /// finish reason. Pings and signature deltas carry nothing for a chat client; an <c>error</c> event throws.
    /// </summary>
    internal sealed class StreamTranslator(string model, long created, bool answeredAsJson = false)
    {
        private readonly Dictionary<int, int> _toolIndexByBlock = [];
        private readonly HashSet<int> _jsonBlocks = [];
        private string _id = "chatcmpl-anthropic";
        private AnthropicUsage _usage;
        private string? _finish;

        public long PromptTokens => _usage.PromptTokens;

        public long CompletionTokens => _usage.Output;

        public long CachedTokens => _usage.CacheRead;

        /// <summary>The OpenAI chunks for one Anthropic event; an error event throws.</summary>
        public IEnumerable<string> Translate(string eventType, string data)
        {
            var node = JsonNode.Parse(data);
            switch (eventType)
            {
                case "message_start":
                    var message = node?["message"];
                    _id = message?["id"]?.GetValue<string>() ?? _id;
                    _usage = AnthropicUsage.Read(message?["usage"], _usage);
                    yield return Chunk(new JsonObject { ["role"] = "assistant", ["content"] = "" }, null);
                    break;
                case "content_block_start":
                    var index = node?["index"]?.GetValue<int>() ?? 0;
                    var block = node?["content_block"];
                    switch (block?["type"]?.GetValue<string>())
                    {
                        case "tool_use" when answeredAsJson && block["name"]?.GetValue<string>() == JsonTool:
                            _jsonBlocks.Add(index);
                            break;
                        case "tool_use":
                            var toolIndex = _toolIndexByBlock.Count;
                            _toolIndexByBlock[index] = toolIndex;
                            yield return Chunk(new JsonObject
                            {
                                ["tool_calls"] = new JsonArray(new JsonObject
                                {
                                    ["index"] = toolIndex,
                                    ["id"] = block["id"]?.GetValue<string>(),
                                    ["type"] = "function",
                                    ["function"] = new JsonObject { ["name"] = block["name"]?.GetValue<string>(), ["arguments"] = "" },
                                }),
                            }, null);
                            break;
                        case "text" when block["text"]?.GetValue<string>() is { Length: > 0 } text:
                            yield return Chunk(new JsonObject { ["content"] = text }, null);
                            break;
                        default:
                            break;
                    }

                    break;
                case "content_block_delta":
                    var at = node?["index"]?.GetValue<int>() ?? 0;
                    var delta = node?["delta"];
                    switch (delta?["type"]?.GetValue<string>())
                    {
                        case "text_delta":
                            yield return Chunk(new JsonObject { ["content"] = delta["text"]?.GetValue<string>() ?? "" }, null);
                            break;
                        case "thinking_delta":
                            yield return Chunk(new JsonObject { ["reasoning_content"] = delta["thinking"]?.GetValue<string>() ?? "" }, null);
                            break;
                        case "input_json_delta" when _jsonBlocks.Contains(at):
                            yield return Chunk(new JsonObject { ["content"] = delta["partial_json"]?.GetValue<string>() ?? "" }, null);
                            break;
                        case "input_json_delta" when _toolIndexByBlock.TryGetValue(at, out var tool):
                            yield return Chunk(new JsonObject
                            {
                                ["tool_calls"] = new JsonArray(new JsonObject
                                {
                                    ["index"] = tool,
                                    ["function"] = new JsonObject { ["arguments"] = delta["partial_json"]?.GetValue<string>() ?? "" },
                                }),
                            }, null);
                            break;
                        default:
                            break; // signature_delta (only for sending thinking back to Anthropic), citations
                    }

                    break;
                case "message_delta":
                    _usage = AnthropicUsage.Read(node?["usage"], _usage);
                    _finish = FinishReason(node?["delta"]?["stop_reason"]?.GetValue<string>(), answeredAsJson);
                    yield return Chunk(new JsonObject(), _finish);
                    break;
                case "error":
                    // A fixed message: the provider's own text could quote content, and exception messages carry none.
                    throw new UpstreamStreamException("The provider reported an error in its stream.");
                default:
                    break; // ping, content_block_stop
            }
        }

        public string UsageChunk()
        {
            var chunk = Base();
            chunk["choices"] = new JsonArray();
            chunk["usage"] = Usage(_usage);
            return chunk.ToJsonString();
        }

        private string Chunk(JsonObject delta, string? finish)
        {
            var chunk = Base();
            chunk["choices"] = new JsonArray(new JsonObject { ["index"] = 0, ["delta"] = delta, ["logprobs"] = null, ["finish_reason"] = finish });
            chunk["usage"] = null;
            return chunk.ToJsonString();
        }

        private JsonObject Base() => new() { ["id"] = _id, ["object"] = "chat.completion.chunk", ["created"] = created, ["model"] = model };
    }
}
