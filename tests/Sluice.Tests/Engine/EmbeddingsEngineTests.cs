using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Sluice.Tests.TestSupport;

namespace Sluice.Tests.Engine;

/// <summary>One <c>sluice engine embeddings</c> process (with an API key) shared by the tests of a class: loading the model is the slow part.</summary>
public sealed class EmbeddingsEngineFixture : IAsyncLifetime
{
    public const string ApiKey = "engine-test-key-0123456789";

    public SluiceProcess Process { get; private set; } = null!;

    public HttpClient Client { get; private set; } = null!;

    public async ValueTask InitializeAsync()
    {
        Process = SluiceProcess.Start(["engine", "embeddings", "--port", "0", "--exit-with-parent"], new Dictionary<string, string?> { ["SLUICE_ENGINE_API_KEY"] = ApiKey });
        var url = await EmbeddingsEngineTests.ReadyAsync(Process);
        Client = new HttpClient { BaseAddress = url };
        Client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", ApiKey);
    }

    public async ValueTask DisposeAsync()
    {
        Client.Dispose();
        await Process.DisposeAsync();
    }
}

/// <summary>
/// The built-in embeddings engine as a real process: OpenAI's embeddings API over real HTTP, with vectors that mean
/// something (all-MiniLM-L6-v2 on ONNX Runtime), checked against sentence-transformers' own output.
/// </summary>
[Collection(RealProcessLoad.Name)]
public sealed class EmbeddingsEngineTests(EmbeddingsEngineFixture engine) : IClassFixture<EmbeddingsEngineFixture>
{
    private const string Cat = "a cat sits on the mat";
    private const string Kitten = "a kitten is sitting on a rug";
    private const string Tax = "quarterly tax filing deadlines";

    /// <summary>Waits for the engine's "ready" line and returns the address from its "listening on" line.</summary>
    public static async Task<Uri> ReadyAsync(SluiceProcess process)
    {
        await process.WaitForOutputAsync("\nready", TimeSpan.FromSeconds(90));
        return Listening(process);
    }

    public static Uri Listening(SluiceProcess process)
    {
        var line = process.Stdout.Split('\n').First(l => l.StartsWith("listening on ", StringComparison.Ordinal));
        return new Uri(line["listening on ".Length..].Trim());
    }

    private static StringContent Json(string json) => new(json, Encoding.UTF8, "application/json");

    private async Task<JsonDocument> EmbedAsync(object body)
    {
        var response = await engine.Client.PostAsync("/v1/embeddings", Json(JsonSerializer.Serialize(body)));
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.OK, text);
        return JsonDocument.Parse(text);
    }

    private static float[] Floats(JsonElement item) => item.GetProperty("embedding").EnumerateArray().Select(v => v.GetSingle()).ToArray();

    private static double Cosine(float[] a, float[] b) => a.Zip(b, (x, y) => (double)x * y).Sum(); // unit vectors

    [Fact]
    public async Task Embeddings_are_meaningful_unit_vectors_of_384_dimensions_matching_sentence_transformers()
    {
        using var answer = await EmbedAsync(new { model = "all-MiniLM-L6-v2", input = new[] { Cat, Kitten, Tax, "This is an example sentence" } });
        var data = answer.RootElement.GetProperty("data").EnumerateArray().Select(Floats).ToList();

        Assert.All(data, v => Assert.Equal(384, v.Length));
        Assert.All(data, v => Assert.Equal(1.0, Math.Sqrt(v.Sum(x => (double)x * x)), 4));
        Assert.True(Cosine(data[0], data[1]) > Cosine(data[0], data[2]) + 0.2, $"cat~kitten {Cosine(data[0], data[1]):0.000}, cat~tax {Cosine(data[0], data[2]):0.000}");

        // sentence-transformers' all-MiniLM-L6-v2 for "This is an example sentence" begins with these values.
        float[] reference = [0.0676569f, 0.0634959f, 0.0487131f, 0.0793049f, 0.0374480f, 0.0026528f, 0.0393749f, -0.0070985f];
        Assert.All(reference.Select((value, i) => (value, i)), p => Assert.Equal(p.value, data[3][p.i], 0.0005f));
        Assert.Equal("list", answer.RootElement.GetProperty("object").GetString());
        Assert.Equal("all-MiniLM-L6-v2", answer.RootElement.GetProperty("model").GetString());
        Assert.Equal("embedding", answer.RootElement.GetProperty("data")[0].GetProperty("object").GetString());
    }

    [Fact]
    public async Task Base64_is_the_little_endian_float32_of_the_same_vector()
    {
        using var floats = await EmbedAsync(new { model = "all-MiniLM-L6-v2", input = Cat, encoding_format = "float" });
        using var base64 = await EmbedAsync(new { model = "all-MiniLM-L6-v2", input = Cat, encoding_format = "base64" });

        var expected = Floats(floats.RootElement.GetProperty("data")[0]);
        var bytes = Convert.FromBase64String(base64.RootElement.GetProperty("data")[0].GetProperty("embedding").GetString()!);
        var decoded = Enumerable.Range(0, bytes.Length / 4).Select(i => System.Buffers.Binary.BinaryPrimitives.ReadSingleLittleEndian(bytes.AsSpan(i * 4))).ToArray();
        Assert.Equal(expected, decoded);
    }

    [Fact]
    public async Task A_batch_keeps_its_order_and_usage_counts_the_models_tokens()
    {
        string[] inputs = [string.Join(' ', Enumerable.Repeat(Tax, 6)), Cat, Kitten, "hi"];
        using var batch = await EmbedAsync(new { model = "all-MiniLM-L6-v2", input = inputs });
        var singles = new List<float[]>();
        foreach (var input in inputs)
        {
            using var single = await EmbedAsync(new { model = "all-MiniLM-L6-v2", input });
            singles.Add(Floats(single.RootElement.GetProperty("data")[0]));
        }

        var data = batch.RootElement.GetProperty("data").EnumerateArray().ToList();
        Assert.Equal([0, 1, 2, 3], data.Select(d => d.GetProperty("index").GetInt32()));
        for (var i = 0; i < inputs.Length; i++)
        {
            Assert.True(Cosine(Floats(data[i]), singles[i]) > 0.9999, $"input {i} came back out of place");
        }

        // [CLS] a cat sits on the mat [SEP] = 8; [CLS] hi [SEP] = 3; the kitten 9; "quarterly tax filing deadline ##s" × 6 + 2 = 32.
        var usage = batch.RootElement.GetProperty("usage");
        Assert.Equal(32 + 8 + 9 + 3, usage.GetProperty("prompt_tokens").GetInt32());
        Assert.Equal(usage.GetProperty("prompt_tokens").GetInt32(), usage.GetProperty("total_tokens").GetInt32());
    }

    [Fact]
    public async Task Input_over_the_256_token_window_is_cut_as_sentence_transformers_does()
    {
        var words = Enumerable.Repeat("the cat sat on the mat", 200).SelectMany(s => s.Split(' ')).ToList(); // 1,200 one-token words
        using var whole = await EmbedAsync(new { model = "all-MiniLM-L6-v2", input = string.Join(' ', words) });
        using var cut = await EmbedAsync(new { model = "all-MiniLM-L6-v2", input = string.Join(' ', words.Take(254)) });

        Assert.Equal(256, whole.RootElement.GetProperty("usage").GetProperty("prompt_tokens").GetInt32());
        Assert.True(Cosine(Floats(whole.RootElement.GetProperty("data")[0]), Floats(cut.RootElement.GetProperty("data")[0])) > 0.9999);
    }

    public static TheoryData<string, int, string, string?> BadRequests => new()
    {
        { """{"model":"all-MiniLM-L6-v2","input":[101,102]}""", 400, "unsupported_input", "input" },
        { """{"model":"all-MiniLM-L6-v2","input":[[101,102]]}""", 400, "unsupported_input", "input" },
        { """{"model":"all-MiniLM-L6-v2","input":""}""", 400, "empty_input", "input" },
        { """{"model":"all-MiniLM-L6-v2","input":["ok",""]}""", 400, "empty_input", "input[1]" },
        { """{"model":"all-MiniLM-L6-v2","input":[]}""", 400, "empty_input", "input" },
        { """{"model":"all-MiniLM-L6-v2","input":["ok",{"text":"x"}]}""", 400, "invalid_type", "input[1]" },
        { """{"model":"all-MiniLM-L6-v2","input":42}""", 400, "invalid_type", "input" },
        { """{"model":"all-MiniLM-L6-v2"}""", 400, "missing_input", "input" },
        { """{"input":"x"}""", 400, "missing_model", "model" },
        { """{"model":"gpt-4","input":"x"}""", 404, "model_not_found", "model" },
        { """{"model":"all-MiniLM-L6-v2","input":"x","encoding_format":"int8"}""", 400, "invalid_value", "encoding_format" },
        { """{"model":"all-MiniLM-L6-v2","input":"x","dimensions":256}""", 400, "unsupported_dimensions", "dimensions" },
        { """{"model":"all-MiniLM-L6-v2","input":"x","dimensions":"384"}""", 400, "invalid_type", "dimensions" },
        { """{"model":"all-MiniLM-L6-v2","input":"x""", 400, "invalid_json", null },
        { """[1,2]""", 400, "invalid_json", null },
        { """{"model":"all-MiniLM-L6-v2","input":"\ud800"}""", 400, "invalid_encoding", null },
    };

    [Theory]
    [MemberData(nameof(BadRequests))]
    public async Task Bad_input_is_a_400_in_OpenAIs_error_shape(string body, int status, string code, string? param)
    {
        var response = await engine.Client.PostAsync("/v1/embeddings", Json(body));
        using var error = JsonDocument.Parse(await response.Content.ReadAsStringAsync());

        Assert.Equal(status, (int)response.StatusCode);
        var detail = error.RootElement.GetProperty("error");
        Assert.Equal(code, detail.GetProperty("code").GetString());
        Assert.Equal(param, detail.GetProperty("param").GetString());
        Assert.Equal("invalid_request_error", detail.GetProperty("type").GetString());
        Assert.False(string.IsNullOrWhiteSpace(detail.GetProperty("message").GetString()));
    }

    [Fact]
    public async Task More_inputs_than_OpenAI_allows_are_refused_and_dimensions_384_is_accepted()
    {
        var tooMany = await engine.Client.PostAsync("/v1/embeddings", Json(JsonSerializer.Serialize(new { model = "all-MiniLM-L6-v2", input = Enumerable.Repeat("x", 2049) })));
        using var fine = await EmbedAsync(new { model = "all-MiniLM-L6-v2", input = "x", dimensions = 384 });

        Assert.Equal(HttpStatusCode.BadRequest, tooMany.StatusCode);
        Assert.Contains("too_many_inputs", await tooMany.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        Assert.Equal(384, fine.RootElement.GetProperty("data")[0].GetProperty("embedding").GetArrayLength());
    }

    [Fact]
    public async Task Concurrent_requests_are_all_served_and_equal_to_sequential_answers()
    {
        var inputs = Enumerable.Range(0, 12).Select(i => $"request {i}: {Cat} while {Tax} number {i}").ToList();
        var expected = new List<float[]>();
        foreach (var input in inputs)
        {
            using var one = await EmbedAsync(new { model = "all-MiniLM-L6-v2", input });
            expected.Add(Floats(one.RootElement.GetProperty("data")[0]));
        }

        var answers = await Task.WhenAll(inputs.Select(async input =>
        {
            using var response = await engine.Client.PostAsync("/v1/embeddings", Json(JsonSerializer.Serialize(new { model = "all-MiniLM-L6-v2", input = new[] { input, Kitten } })));
            return (response.StatusCode, Body: await response.Content.ReadAsStringAsync());
        }));

        for (var i = 0; i < inputs.Count; i++)
        {
            Assert.True(answers[i].StatusCode == HttpStatusCode.OK, answers[i].Body);
            using var answer = JsonDocument.Parse(answers[i].Body);
            Assert.True(Cosine(Floats(answer.RootElement.GetProperty("data")[0]), expected[i]) > 0.9999);
        }

        var metrics = await engine.Client.GetStringAsync("/metrics");
        Assert.Contains("sluice_embeddings_requests_in_flight 0\n", metrics, StringComparison.Ordinal);
        Assert.Contains("sluice_embeddings_requests_waiting 0\n", metrics, StringComparison.Ordinal);
        Assert.Contains("sluice_embeddings_model_loaded 1\n", metrics, StringComparison.Ordinal);
        Assert.Matches(@"sluice_embeddings_requests_total\{status=""200""\} \d+", metrics);
        Assert.Matches(@"sluice_embeddings_prompt_tokens_total [1-9]\d*", metrics);
    }

    [Fact]
    public async Task Models_lists_the_engines_model_and_v1_needs_the_engines_key()
    {
        using var models = JsonDocument.Parse(await engine.Client.GetStringAsync("/v1/models"));
        using var anonymous = new HttpClient { BaseAddress = engine.Client.BaseAddress };
        var refused = await anonymous.PostAsync("/v1/embeddings", Json("""{"model":"all-MiniLM-L6-v2","input":"x"}"""));
        using var wrongKey = new HttpClient { BaseAddress = engine.Client.BaseAddress };
        wrongKey.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", EmbeddingsEngineFixture.ApiKey + "x");

        var model = Assert.Single(models.RootElement.GetProperty("data").EnumerateArray());
        Assert.Equal("all-MiniLM-L6-v2", model.GetProperty("id").GetString());
        Assert.Equal("model", model.GetProperty("object").GetString());
        Assert.Equal(HttpStatusCode.Unauthorized, refused.StatusCode);
        Assert.Contains("invalid_api_key", await refused.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.Unauthorized, (await wrongKey.GetAsync("/v1/models")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await anonymous.GetAsync("/health")).StatusCode); // probes need no key
    }

    [Fact]
    public async Task Inputs_never_reach_the_engines_output()
    {
        var canary = "canary-" + Guid.NewGuid().ToString("N");
        using (await EmbedAsync(new { model = "all-MiniLM-L6-v2", input = new[] { canary, "prefix " + canary } }))
        {
        }

        using (await EmbedAsync(new { model = "all-MiniLM-L6-v2", input = canary, encoding_format = "base64" }))
        {
        }

        await engine.Client.PostAsync("/v1/embeddings", Json(JsonSerializer.Serialize(new { model = "all-MiniLM-L6-v2", input = new object[] { canary, 1 } })));
        await engine.Client.PostAsync("/v1/embeddings", Json(JsonSerializer.Serialize(new { model = "all-MiniLM-L6-v2", input = canary, dimensions = 3 })));
        await engine.Client.PostAsync("/v1/embeddings", Json($$"""{"model":"all-MiniLM-L6-v2","input":"{{canary}}"""));

        var output = engine.Process.Stdout + engine.Process.Stderr;
        Assert.Contains("loaded", output, StringComparison.Ordinal); // the scan sees the engine's log
        Canary.AssertAbsent(output, canary, "the engine's output");
    }
}

/// <summary>The engine's life cycle as a process: loading, its command line, and following its parent.</summary>
[Collection(RealProcessLoad.Name)]
public sealed class EmbeddingsEngineProcessTests : IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("sluice-engine-").FullName;

    [Fact]
    public async Task Health_is_503_while_the_model_loads_and_200_once_it_serves()
    {
        var gate = Path.Combine(_directory, "load");
        await using var process = SluiceProcess.Start(["engine", "embeddings", "--port", "0", "--load-when-exists", gate]);
        await process.WaitForOutputAsync("listening on ", TimeSpan.FromSeconds(60));
        using var http = new HttpClient { BaseAddress = EmbeddingsEngineTests.Listening(process) };

        var loading = await http.GetAsync("/health");
        var early = await http.PostAsync("/v1/embeddings", new StringContent("""{"model":"all-MiniLM-L6-v2","input":"x"}""", Encoding.UTF8, "application/json"));
        var metrics = await http.GetStringAsync("/metrics");
        Assert.Equal(HttpStatusCode.ServiceUnavailable, loading.StatusCode);
        Assert.Equal("""{"status":"loading"}""", await loading.Content.ReadAsStringAsync());
        Assert.Equal(HttpStatusCode.ServiceUnavailable, early.StatusCode);
        Assert.Contains("model_loading", await early.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        Assert.NotNull(early.Headers.RetryAfter);
        Assert.Contains("sluice_embeddings_model_loaded 0\n", metrics, StringComparison.Ordinal);

        await File.WriteAllTextAsync(gate, "");
        await EmbeddingsEngineTests.ReadyAsync(process);
        var ready = await http.GetAsync("/health");
        Assert.Equal(HttpStatusCode.OK, ready.StatusCode);
        Assert.Equal("""{"status":"ok"}""", await ready.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task With_exit_with_parent_the_engine_stops_when_its_stdin_closes()
    {
        var gate = Path.Combine(_directory, "never"); // it need not load to follow its parent
        await using var process = SluiceProcess.Start(["engine", "embeddings", "--port", "0", "--exit-with-parent", "--load-when-exists", gate]);
        await process.WaitForOutputAsync("listening on ", TimeSpan.FromSeconds(60));

        process.CloseStandardInput();

        Assert.Equal(0, await process.WaitForExitAsync(TimeSpan.FromSeconds(30)));
        Assert.Contains("parent process is gone", process.Stderr, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("--port 70000", "--port must be from 0")]
    [InlineData("--port 0 --host example.com", "--host must be an IP address")]
    [InlineData("--port 0 --parallel 0", "--parallel must be from 1")]
    [InlineData("--port 0 --threads 0", "--threads must be from 1")]
    public async Task Bad_options_are_a_clear_error_and_exit_code_2(string options, string message)
    {
        var (code, _, stderr) = await SluiceProcess.RunAsync(["engine", "embeddings", .. options.Split(' ')]);

        Assert.Equal(2, code);
        Assert.Contains("error: " + message, stderr, StringComparison.Ordinal);
    }

    public void Dispose() => Directory.Delete(_directory, recursive: true);
}
