using System.Text.Json;
using Sluice.Tests.TestSupport;

namespace Sluice.Tests.Acceptance;

/// <summary>
/// The official npm <c>@anthropic-ai/sdk</c> (x-api-key, anthropic-version) against /v1/messages on the echo model,
/// which answers "Echo: " and the last user message: anthropic-cases.mjs, one run, each area asserted by its own test.
/// </summary>
[Collection(RealProcessLoad.Name)]
public sealed class AnthropicSdkAcceptanceTests(AnthropicNodeFixture node) : IClassFixture<AnthropicNodeFixture>
{
    private static void AssertMessage(JsonElement message, string text, string stopReason)
    {
        Assert.Equal(("message", "assistant", "echo", text, stopReason), (message.GetProperty("type").GetString(), message.GetProperty("role").GetString(),
            message.GetProperty("model").GetString(), message.GetProperty("text").GetString(), message.GetProperty("stopReason").GetString()));
        Assert.Equal(["text"], message.GetProperty("blockTypes").EnumerateArray().Select(t => t.GetString()));
    }

    [Fact]
    public void A_message_has_the_echo_text_end_turn_and_usage()
    {
        var plain = node.Case("plain");

        AssertMessage(plain, "Echo: Hello Claude", "end_turn");
        Assert.Equal((2, 4), (plain.GetProperty("inputTokens").GetInt32(), plain.GetProperty("outputTokens").GetInt32())); // "Echo", ":", " Hello", " Claude"
        AssertMessage(node.Case("systemAndBlocks"), "Echo: second one", "end_turn");
        AssertMessage(node.Case("maxTokens"), "Echo:", "max_tokens");
    }

    [Fact]
    public void A_streamed_message_sends_Anthropics_events_in_order_and_the_deltas_make_the_text()
    {
        var stream = node.Case("streaming");
        var types = stream.GetProperty("types").EnumerateArray().Select(t => t.GetString()).ToList();

        Assert.Equal(("message_start", "message_stop", "Echo: stream Claude", "end_turn", 4), (stream.GetProperty("first").GetString(), stream.GetProperty("last").GetString(),
            stream.GetProperty("text").GetString(), stream.GetProperty("stopReason").GetString(), stream.GetProperty("outputTokens").GetInt32()));
        string[] expected = ["message_start", "content_block_start", "content_block_delta", "content_block_stop", "message_delta", "message_stop"];
        Assert.Equal(expected, types.Where(expected.Contains));
    }

    [Fact]
    public void The_SDKs_stream_helper_assembles_the_final_message()
    {
        var helper = node.Case("streamHelper");

        Assert.Equal("Echo: helper Claude", helper.GetProperty("deltas").GetString());
        AssertMessage(helper.GetProperty("final"), "Echo: helper Claude", "end_turn");
    }

    [Fact]
    public void Count_tokens_counts_the_input()
    {
        Assert.True(node.Case("countTokens").GetProperty("inputTokens").GetInt32() > 0);
    }

    [Fact]
    public void Errors_arrive_in_Anthropics_shape_as_the_SDKs_error_classes()
    {
        var errors = node.Case("errors");
        (string? Class, int Status, string? Type) Error(string name) =>
            (errors.GetProperty(name).GetProperty("error").GetString(), errors.GetProperty(name).GetProperty("status").GetInt32(), errors.GetProperty(name).GetProperty("type").ToString());

        Assert.Equal(("AuthenticationError", 401, "authentication_error"), Error("unauthorized"));
        Assert.Equal(("NotFoundError", 404, "not_found_error"), Error("missingModel"));
        Assert.Equal(("BadRequestError", 400, "invalid_request_error"), Error("unknownBlock"));
        Assert.Equal(("BadRequestError", 400, "invalid_request_error"), Error("missingMaxTokens"));
        Assert.Contains("content", errors.GetProperty("unknownBlock").GetProperty("message").GetString(), StringComparison.Ordinal);
    }
}
