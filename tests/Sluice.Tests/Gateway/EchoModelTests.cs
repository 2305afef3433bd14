using System.Buffers.Binary;
using System.Net;
using System.Text.Json;
using Sluice.Storage;
using Sluice.Tests.TestSupport;
using static Sluice.Tests.TestSupport.GatewayKit;

namespace Sluice.Tests.Gateway;

/// <summary>The echo test model honours what SDKs send (n, stop, completion limits, base64 embeddings) and refuses what it cannot do.</summary>
public sealed class EchoModelTests
{
    private static string Text(JsonElement choice) => choice.TryGetProperty("message", out var message) ? message.GetProperty("content").GetString()! : choice.GetProperty("text").GetString()!;

    private static async Task<JsonElement> PostAsync(HttpClient client, string path, string json)
    {
        var response = await client.PostAsync(path, Json(json));
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.OK, body);
        return JsonDocument.Parse(body).RootElement.Clone();
    }

    [Fact]
    public async Task N_gives_n_choices_indexed_from_zero_whole_and_streamed_and_usage_counts_them_all()
    {
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Sqlite);
        await using var sluice = new SluiceFactory(database);
        var (_, _, key) = await TenantAsync(sluice);
        using var client = sluice.WithKey(key);

        var whole = await PostAsync(client, "/v1/chat/completions", """{"model":"echo","n":3,"messages":[{"role":"user","content":"one two"}]}""");
        var completions = await PostAsync(client, "/v1/completions", """{"model":"echo","n":2,"prompt":"one two"}""");
        var streamed = await client.PostAsync("/v1/chat/completions", Json("""{"model":"echo","n":2,"stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"one two"}]}"""));

        var choices = whole.GetProperty("choices").EnumerateArray().ToList();
        Assert.Equal([0, 1, 2], choices.Select(c => c.GetProperty("index").GetInt32()));
        Assert.All(choices, c => Assert.Equal(("Echo: one two", "stop"), (Text(c), c.GetProperty("finish_reason").GetString())));
        Assert.Equal(3 * 4, whole.GetProperty("usage").GetProperty("completion_tokens").GetInt32()); // "Echo", ":", " one", " two" per choice
        Assert.Equal(2, completions.GetProperty("choices").GetArrayLength());
        Assert.Equal("Echo: one two", Text(completions.GetProperty("choices")[1]));

        var texts = new Dictionary<int, string>();
        var finishes = new Dictionary<int, string>();
        JsonElement? usage = null;
        foreach (var data in Events(await streamed.Content.ReadAsStringAsync()).Where(d => d != "[DONE]"))
        {
            var chunk = JsonDocument.Parse(data).RootElement;
            foreach (var choice in chunk.GetProperty("choices").EnumerateArray())
            {
                var index = choice.GetProperty("index").GetInt32();
                if (choice.GetProperty("delta").TryGetProperty("content", out var content))
                {
                    texts[index] = texts.GetValueOrDefault(index, "") + content.GetString();
                }

                if (choice.GetProperty("finish_reason").GetString() is { } finish)
                {
                    finishes[index] = finish;
                }
            }

            if (chunk.TryGetProperty("usage", out var u) && u.ValueKind == JsonValueKind.Object)
            {
                usage = u.Clone();
            }
        }

        Assert.Equal(new Dictionary<int, string> { [0] = "Echo: one two", [1] = "Echo: one two" }, texts);
        Assert.Equal(new Dictionary<int, string> { [0] = "stop", [1] = "stop" }, finishes);
        Assert.Equal(2 * 4, usage?.GetProperty("completion_tokens").GetInt32());
    }

    [Fact]
    public async Task Stop_ends_the_answer_before_the_first_stop_sequence_and_max_tokens_ends_it_with_length()
    {
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Sqlite);
        await using var sluice = new SluiceFactory(database);
        var (_, _, key) = await TenantAsync(sluice);
        using var client = sluice.WithKey(key);

        var one = await PostAsync(client, "/v1/chat/completions", """{"model":"echo","stop":",","messages":[{"role":"user","content":"Hello there, world"}]}""");
        var many = await PostAsync(client, "/v1/chat/completions", """{"model":"echo","stop":[" world","there"],"messages":[{"role":"user","content":"Hello there, world"}]}""");
        var prompt = await PostAsync(client, "/v1/completions", """{"model":"echo","stop":["lo"],"prompt":"Hello there"}""");
        var limited = await PostAsync(client, "/v1/chat/completions", """{"model":"echo","max_tokens":3,"stop":"world","messages":[{"role":"user","content":"Hello there, world"}]}""");
        var limitedNew = await PostAsync(client, "/v1/chat/completions", """{"model":"echo","max_completion_tokens":2,"messages":[{"role":"user","content":"Hello there"}]}""");
        var streamed = await client.PostAsync("/v1/chat/completions", Json("""{"model":"echo","stream":true,"stop":"there","messages":[{"role":"user","content":"Hello there, world"}]}"""));

        Assert.Equal(("Echo: Hello there", "stop", 4), (Text(one.GetProperty("choices")[0]), one.GetProperty("choices")[0].GetProperty("finish_reason").GetString(), one.GetProperty("usage").GetProperty("completion_tokens").GetInt32()));
        Assert.Equal(("Echo: Hello ", "stop"), (Text(many.GetProperty("choices")[0]), many.GetProperty("choices")[0].GetProperty("finish_reason").GetString()));
        Assert.Equal("Echo: Hel", Text(prompt.GetProperty("choices")[0]));
        Assert.Equal(("Echo: Hello", "length", 3), (Text(limited.GetProperty("choices")[0]), limited.GetProperty("choices")[0].GetProperty("finish_reason").GetString(), limited.GetProperty("usage").GetProperty("completion_tokens").GetInt32()));
        Assert.Equal(("Echo:", "length", 2), (Text(limitedNew.GetProperty("choices")[0]), limitedNew.GetProperty("choices")[0].GetProperty("finish_reason").GetString(), limitedNew.GetProperty("usage").GetProperty("completion_tokens").GetInt32()));
        var chunks = Events(await streamed.Content.ReadAsStringAsync()).Where(d => d != "[DONE]").Select(d => JsonDocument.Parse(d).RootElement)
            .SelectMany(c => c.GetProperty("choices").EnumerateArray()).ToList();
        Assert.Equal("Echo: Hello ", string.Concat(chunks.Select(c => c.GetProperty("delta").TryGetProperty("content", out var t) ? t.GetString() : "")));
        Assert.Equal("stop", chunks[^1].GetProperty("finish_reason").GetString());
    }

    [Fact]
    public async Task Base64_embeddings_are_the_float_vector_as_little_endian_float32_and_dimensions_shortens_it()
    {
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Sqlite);
        await using var sluice = new SluiceFactory(database);
        var (_, _, key) = await TenantAsync(sluice);
        using var client = sluice.WithKey(key);

        var floats = await PostAsync(client, "/v1/embeddings", """{"model":"echo","input":["embed me","and me"]}""");
        var base64 = await PostAsync(client, "/v1/embeddings", """{"model":"echo","input":["embed me","and me"],"encoding_format":"base64"}""");
        var explicitFloat = await PostAsync(client, "/v1/embeddings", """{"model":"echo","input":"embed me","encoding_format":"float"}""");
        var shorter = await PostAsync(client, "/v1/embeddings", """{"model":"echo","input":"embed me","dimensions":4,"encoding_format":"base64"}""");

        for (var i = 0; i < 2; i++)
        {
            var expected = floats.GetProperty("data")[i].GetProperty("embedding").EnumerateArray().Select(v => v.GetSingle()).ToArray();
            var bytes = Convert.FromBase64String(base64.GetProperty("data")[i].GetProperty("embedding").GetString()!);
            Assert.Equal(16 * sizeof(float), bytes.Length);
            var decoded = Enumerable.Range(0, bytes.Length / 4).Select(d => BinaryPrimitives.ReadSingleLittleEndian(bytes.AsSpan(d * 4))).ToArray();
            Assert.Equal(expected, decoded);
            Assert.Contains(decoded, v => v != 0);
        }

        Assert.Equal(16, explicitFloat.GetProperty("data")[0].GetProperty("embedding").GetArrayLength());
        var short4 = Convert.FromBase64String(shorter.GetProperty("data")[0].GetProperty("embedding").GetString()!);
        var values = Enumerable.Range(0, 4).Select(d => BinaryPrimitives.ReadSingleLittleEndian(short4.AsSpan(d * 4))).ToArray();
        Assert.Equal(16, short4.Length);
        Assert.Equal(1.0, Math.Sqrt(values.Sum(v => (double)v * v)), 4);
    }

    [Fact]
    public async Task Logprobs_and_bad_parameters_are_a_400_naming_the_field_and_nothing_is_metered_as_success()
    {
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Sqlite);
        await using var sluice = new SluiceFactory(database);
        var (_, _, key) = await TenantAsync(sluice);
        using var client = sluice.WithKey(key);
        (string Path, string Body, string Param)[] cases =
        [
            ("/v1/chat/completions", """{"model":"echo","logprobs":true,"messages":[{"role":"user","content":"hi"}]}""", "logprobs"),
            ("/v1/chat/completions", """{"model":"echo","logprobs":true,"top_logprobs":3,"stream":true,"messages":[{"role":"user","content":"hi"}]}""", "logprobs"),
            ("/v1/chat/completions", """{"model":"echo","top_logprobs":2,"messages":[{"role":"user","content":"hi"}]}""", "top_logprobs"),
            ("/v1/completions", """{"model":"echo","logprobs":1,"prompt":"hi"}""", "logprobs"),
            ("/v1/chat/completions", """{"model":"echo","stop":7,"messages":[{"role":"user","content":"hi"}]}""", "stop"),
            ("/v1/chat/completions", """{"model":"echo","stop":["a","b","c","d","e"],"messages":[{"role":"user","content":"hi"}]}""", "stop"),
            ("/v1/embeddings", """{"model":"echo","input":"hi","encoding_format":"hex"}""", "encoding_format"),
            ("/v1/embeddings", """{"model":"echo","input":"hi","dimensions":17}""", "dimensions"),
        ];

        foreach (var (path, body, param) in cases)
        {
            var response = await client.PostAsync(path, Json(body));
            var text = await response.Content.ReadAsStringAsync();
            Assert.True(response.StatusCode == HttpStatusCode.BadRequest, $"{param}: {(int)response.StatusCode} {text}");
            var error = JsonDocument.Parse(text).RootElement.GetProperty("error");
            Assert.Equal(("invalid_request_error", param), (error.GetProperty("type").GetString(), error.GetProperty("param").GetString()));
            Assert.Contains($"'{param}'", error.GetProperty("message").GetString(), StringComparison.Ordinal);
        }

        var logprobs = JsonDocument.Parse(await (await client.PostAsync("/v1/chat/completions", Json("""{"model":"echo","logprobs":true,"messages":[{"role":"user","content":"hi"}]}"""))).Content.ReadAsStringAsync());
        Assert.Contains("not supported by this model", logprobs.RootElement.GetProperty("error").GetProperty("message").GetString(), StringComparison.Ordinal);
        var allowed = await PostAsync(client, "/v1/chat/completions", """{"model":"echo","logprobs":false,"stop":null,"messages":[{"role":"user","content":"hi"}]}""");
        Assert.Equal("Echo: hi", Text(allowed.GetProperty("choices")[0]));

        var usage = await UsageAsync(database, cases.Length + 2);
        Assert.Single(usage, u => u.Status == 200);
    }

    [Fact]
    public async Task Without_a_limit_an_answer_stops_at_4096_tokens_and_64_KiB_so_memory_stays_bounded()
    {
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Sqlite);
        await using var sluice = new SluiceFactory(database);
        var (_, _, key) = await TenantAsync(sluice);
        using var client = sluice.WithKey(key);
        var words = string.Join(' ', Enumerable.Repeat("a", 10_000));
        var word = new string('b', 100_000);

        var many = await PostAsync(client, "/v1/chat/completions", $$"""{"model":"echo","n":2,"messages":[{"role":"user","content":"{{words}}"}]}""");
        var one = await PostAsync(client, "/v1/chat/completions", $$"""{"model":"echo","messages":[{"role":"user","content":"{{word}}"}]}""");

        Assert.Equal(2 * 4096, many.GetProperty("usage").GetProperty("completion_tokens").GetInt32());
        Assert.All(many.GetProperty("choices").EnumerateArray(), c => Assert.Equal("length", c.GetProperty("finish_reason").GetString()));
        Assert.Equal(65536, Text(one.GetProperty("choices")[0]).Length);
        Assert.Equal("length", one.GetProperty("choices")[0].GetProperty("finish_reason").GetString());
    }
}
