using System.Text.Json;
using System.Text.Json.Nodes;
using Sluice.Tests.TestSupport;

namespace Sluice.Tests.Acceptance;

/// <summary>
/// The official npm <c>openai</c> SDK (the version in tests/acceptance/node/package-lock.json), unmodified, against a
/// Sluice server on loopback: one script run (openai-cases.mjs), each area's observations asserted by its own test.
/// </summary>
[Collection(RealProcessLoad.Name)]
public sealed class OpenAiNodeSdkAcceptanceTests(OpenAiNodeFixture node) : IClassFixture<OpenAiNodeFixture>
{
    private static List<string?> Strings(JsonElement array) => array.EnumerateArray().Select(e => e.ValueKind == JsonValueKind.Null ? null : e.ToString()).ToList();

    [Fact]
    public void Chat_answers_with_echo_text_finish_reason_and_usage_and_honours_n_and_stop()
    {
        var chat = node.Case("chat");
        var options = node.Case("chatOptions");

        Assert.Equal(("chat.completion", "Echo: Hello SDK", "stop", 4, 2), (chat.GetProperty("object").GetString(), chat.GetProperty("text").GetString(),
            chat.GetProperty("finish").GetString(), chat.GetProperty("completionTokens").GetInt32(), chat.GetProperty("promptTokens").GetInt32()));
        Assert.Equal(["Echo: stop", "Echo: stop"], Strings(options.GetProperty("texts")));
        Assert.Equal(["0", "1"], Strings(options.GetProperty("indexes")));
        Assert.Equal(["stop", "stop"], Strings(options.GetProperty("finishes")));
    }

    [Fact]
    public void Streaming_delivers_the_text_and_the_usage_chunk_it_asked_for_and_the_stream_helper_assembles_it()
    {
        var stream = node.Case("streaming");
        var helper = node.Case("streamingHelper");

        Assert.Equal(("Echo: stream me", "stop", 4), (stream.GetProperty("text").GetString(), stream.GetProperty("finish").GetString(), stream.GetProperty("completionTokens").GetInt32()));
        Assert.True(stream.GetProperty("chunks").GetInt32() >= 6); // role, 4 tokens, finish, usage
        Assert.Equal(("Echo: helper stream", "stop"), (helper.GetProperty("text").GetString(), helper.GetProperty("finish").GetString()));
    }

    [Fact]
    public void Tool_calls_round_trip_whole_and_streamed_and_the_provider_receives_the_tools_and_the_result()
    {
        var tools = node.Case("tools");
        var streamed = node.Case("toolsStreaming");

        Assert.Equal(("tool_calls", "get_weather", "call_1", "Paris", "Tool said: sunny"), (tools.GetProperty("finish").GetString(), tools.GetProperty("name").GetString(),
            tools.GetProperty("id").GetString(), tools.GetProperty("arguments").GetProperty("city").GetString(), tools.GetProperty("answer").GetString()));
        Assert.Equal(("tool_calls", "get_weather", "Paris"), (streamed.GetProperty("finish").GetString(), streamed.GetProperty("name").GetString(), streamed.GetProperty("arguments").GetProperty("city").GetString()));
        var sent = node.Fake.Requests.Select(r => JsonNode.Parse(r.Body)!).Where(b => b["tools"] is not null).ToList();
        Assert.Contains(sent, b => b["tools"]![0]!["function"]!["name"]!.GetValue<string>() == "get_weather" && b["tool_choice"]?.GetValue<string>() == "auto");
        Assert.Contains(sent, b => b["messages"]!.AsArray().Any(m => m!["role"]!.GetValue<string>() == "tool" && m["tool_call_id"]!.GetValue<string>() == "call_1"));
    }

    [Fact]
    public void Structured_output_passes_the_json_schema_to_the_provider_and_returns_parseable_json()
    {
        var structured = node.Case("structured");

        Assert.Equal("42", structured.GetProperty("parsed").GetProperty("answer").GetString());
        Assert.Contains(node.Fake.Requests.Select(r => JsonNode.Parse(r.Body)!), b => b["response_format"]?["type"]?.GetValue<string>() == "json_schema"
            && b["response_format"]!["json_schema"]!["schema"]!["required"]![0]!.GetValue<string>() == "answer");
    }

    [Fact]
    public void Embeddings_as_floats_and_as_the_SDKs_default_base64_are_the_same_nonzero_vectors()
    {
        var embeddings = node.Case("embeddings");

        Assert.Equal((16, 16, true, true), (embeddings.GetProperty("dimensions").GetInt32(), embeddings.GetProperty("defaultDimensions").GetInt32(),
            embeddings.GetProperty("same").GetBoolean(), embeddings.GetProperty("nonZero").GetBoolean()));
    }

    [Fact]
    public void Models_are_listed_and_retrieved()
    {
        var models = node.Case("models");

        Assert.Contains("echo", Strings(models.GetProperty("ids")));
        Assert.Contains("m", Strings(models.GetProperty("ids")));
        Assert.Equal(("echo", "model"), (models.GetProperty("echo").GetProperty("id").GetString(), models.GetProperty("echo").GetProperty("object").GetString()));
    }

    /// <summary>The SDK URL-encodes the id (models/meta-llama%2FLlama-3.1-8B-Instruct): issue 18 item 5.</summary>
    [Fact]
    public void A_model_id_with_a_slash_is_retrieved()
    {
        Assert.Equal(SdkServerFixture.SlashModel, node.Case("models").GetProperty("slash").GetString());
    }

    [Fact]
    public void Files_upload_list_retrieve_download_and_delete()
    {
        var files = node.Case("files");

        Assert.Equal(("file", "batch", "input.jsonl", true, true, true, "NotFoundError"), (files.GetProperty("object").GetString(), files.GetProperty("purpose").GetString(),
            files.GetProperty("filename").GetString(), files.GetProperty("listed").GetBoolean(), files.GetProperty("sameContent").GetBoolean(),
            files.GetProperty("deleted").GetBoolean(), files.GetProperty("afterDelete").GetString()));
        Assert.True(files.GetProperty("bytes").GetInt32() > 100);
    }

    [Fact]
    public void A_batch_from_an_uploaded_file_completes_with_each_lines_answer()
    {
        var batches = node.Case("batches");

        Assert.Equal(("batch", "completed"), (batches.GetProperty("object").GetString(), batches.GetProperty("status").GetString()));
        Assert.Equal((2, 2, 0), (batches.GetProperty("counts").GetProperty("total").GetInt32(), batches.GetProperty("counts").GetProperty("completed").GetInt32(), batches.GetProperty("counts").GetProperty("failed").GetInt32()));
        Assert.Equal(("Echo: one", "Echo: two"), (batches.GetProperty("answers").GetProperty("one").GetString(), batches.GetProperty("answers").GetProperty("two").GetString()));
    }

    [Fact]
    public void Errors_map_to_the_SDKs_error_classes_with_status_code_and_param()
    {
        var errors = node.Case("errors");
        (string? Class, int? Status, string? Code, string? Param) Error(string name)
        {
            var e = errors.GetProperty(name);
            string? Text(string field) => e.TryGetProperty(field, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString() : null;
            return (Text("error"), e.TryGetProperty("status", out var s) && s.ValueKind == JsonValueKind.Number ? s.GetInt32() : null, Text("code"), Text("param"));
        }

        Assert.Equal(("AuthenticationError", 401), (Error("unauthorized").Class, Error("unauthorized").Status));
        Assert.Equal(("NotFoundError", 404, "model_not_found", "model"), Error("missingModel"));
        Assert.Equal(("BadRequestError", 400, "logprobs"), (Error("badRequest").Class, Error("badRequest").Status, Error("badRequest").Param));
        Assert.Equal(("BadRequestError", 400, "n"), (Error("badRequestStreaming").Class, Error("badRequestStreaming").Status, Error("badRequestStreaming").Param));
        Assert.Equal(("RateLimitError", 429), (Error("rateLimited").Class, Error("rateLimited").Status));
    }
}
