using System.Text.Json;
using Sluice.Tests.TestSupport;

namespace Sluice.Tests.Acceptance;

/// <summary>
/// The npm <c>openai</c> SDK's Responses API (<c>client.responses.create</c>, <c>stream: true</c>,
/// <c>client.responses.stream</c>) against /v1/responses on the echo model, which answers "Echo: " and the last user
/// message: responses-cases.mjs, one run, each area asserted by its own test.
/// </summary>
[Collection(RealProcessLoad.Name)]
public sealed class ResponsesSdkAcceptanceTests(ResponsesNodeFixture node) : IClassFixture<ResponsesNodeFixture>
{
    private static void AssertCompleted(JsonElement response, string text)
    {
        Assert.Equal(("response", "completed", "echo", false, text), (response.GetProperty("object").GetString(), response.GetProperty("status").GetString(),
            response.GetProperty("model").GetString(), response.GetProperty("store").GetBoolean(), response.GetProperty("text").GetString()));
        Assert.Equal(["message"], response.GetProperty("outputTypes").EnumerateArray().Select(t => t.GetString()));
    }

    [Fact]
    public void A_plain_response_has_the_echo_text_store_false_and_usage()
    {
        var plain = node.Case("plain");

        AssertCompleted(plain, "Echo: Hello responses");
        Assert.Equal((2, 4), (plain.GetProperty("inputTokens").GetInt32(), plain.GetProperty("outputTokens").GetInt32())); // "Echo", ":", " Hello", " responses"
        AssertCompleted(node.Case("instructionsAndMessages"), "Echo: second one");
    }

    [Fact]
    public void A_streamed_response_sends_the_typed_events_in_order_and_the_deltas_make_the_text()
    {
        var stream = node.Case("streaming");
        var types = stream.GetProperty("types").EnumerateArray().Select(t => t.GetString()).ToList();

        Assert.Equal(("response.created", "response.completed", "Echo: stream responses"), (stream.GetProperty("first").GetString(), stream.GetProperty("last").GetString(), stream.GetProperty("text").GetString()));
        string[] expected = ["response.created", "response.output_item.added", "response.content_part.added", "response.output_text.delta", "response.output_text.done", "response.content_part.done", "response.output_item.done", "response.completed"];
        Assert.Equal(expected, types.Where(expected.Contains));
        AssertCompleted(stream.GetProperty("completed"), "Echo: stream responses");
        Assert.Equal(4, stream.GetProperty("completed").GetProperty("outputTokens").GetInt32());
    }

    [Fact]
    public void The_SDKs_stream_helper_assembles_the_final_response()
    {
        var helper = node.Case("streamHelper");

        Assert.Equal("Echo: helper responses", helper.GetProperty("deltas").GetString());
        AssertCompleted(helper.GetProperty("final"), "Echo: helper responses");
    }

    [Fact]
    public void Store_previous_response_id_built_in_tools_and_unknown_models_are_errors_the_SDK_classifies()
    {
        var errors = node.Case("errors");
        (string? Class, int Status, string? Param) Error(string name) =>
            (errors.GetProperty(name).GetProperty("error").GetString(), errors.GetProperty(name).GetProperty("status").GetInt32(), errors.GetProperty(name).GetProperty("param").ToString());

        Assert.Equal(("BadRequestError", 400, "store"), Error("store"));
        Assert.Equal(("BadRequestError", 400, "previous_response_id"), Error("previousResponse"));
        Assert.Equal(("BadRequestError", 400), (Error("webSearch").Class, Error("webSearch").Status));
        Assert.StartsWith("tools", Error("webSearch").Param, StringComparison.Ordinal);
        Assert.Equal(("NotFoundError", 404), (Error("missingModel").Class, Error("missingModel").Status));
    }
}
