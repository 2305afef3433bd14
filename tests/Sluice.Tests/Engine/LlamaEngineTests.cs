using System.ClientModel;
using System.Globalization;
using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using OpenAI;
using OpenAI.Chat;
using Sluice.Tests.TestSupport;

namespace Sluice.Tests.Engine;

/// <summary>
/// <c>sluice engine llama</c> as a real process, serving the tiny random-weight GGUF through llama.cpp. Random weights
/// produce gibberish: the tests assert shapes, token counts and behaviour, never text.
/// </summary>
[Collection(RealProcessLoad.Name)]
public sealed partial class LlamaEngineTests(LlamaEngineFixture engine) : IClassFixture<LlamaEngineFixture>
{
    private HttpClient Http => engine.Http;

    private Uri Url(string path) => new(engine.BaseAddress, path);

    [Fact]
    public async Task Health_is_ok_once_loaded_and_models_lists_the_model_id()
    {
        using var health = await Http.GetAsync(Url("/health"));
        Assert.Equal(HttpStatusCode.OK, health.StatusCode);
        Assert.Equal("""{"status":"ok"}""", await health.Content.ReadAsStringAsync());

        using var models = await Http.GetFromJsonAsync<JsonDocument>(Url("/v1/models"));
        Assert.Equal("list", models!.RootElement.GetProperty("object").GetString());
        var model = Assert.Single(models.RootElement.GetProperty("data").EnumerateArray());
        Assert.Equal(LlamaEngineFixture.ModelId, model.GetProperty("id").GetString());
        Assert.Equal("model", model.GetProperty("object").GetString());
    }

    [Fact]
    public async Task The_official_SDK_chats_plain_and_streaming_with_usage_counted_by_the_models_tokenizer()
    {
        var client = new OpenAIClient(new ApiKeyCredential("unused"), new OpenAIClientOptions { Endpoint = Url("/v1") }).GetChatClient(LlamaEngineFixture.ModelId);
#pragma warning disable OPENAI001 // Seed is marked experimental in the SDK
        var options = new ChatCompletionOptions { MaxOutputTokenCount = 12, Seed = 7, Temperature = 1f };
#pragma warning restore OPENAI001

        ChatCompletion completion = await client.CompleteChatAsync([new UserChatMessage("Hello")], options);
        var expectedPrompt = TinyGguf.TokenCount(TinyGguf.ChatPrompt(("user", "Hello")));
        Assert.Equal(ChatMessageRole.Assistant, completion.Role);
        Assert.Equal(expectedPrompt, completion.Usage.InputTokenCount);
        Assert.InRange(completion.Usage.OutputTokenCount, 0, 12);
        Assert.Equal(completion.Usage.InputTokenCount + completion.Usage.OutputTokenCount, completion.Usage.TotalTokenCount);
        Assert.Equal(completion.Usage.OutputTokenCount == 12 ? ChatFinishReason.Length : ChatFinishReason.Stop, completion.FinishReason);

        var streamed = new StringBuilder();
        ChatTokenUsage? usage = null;
        ChatFinishReason? finish = null;
        await foreach (var update in client.CompleteChatStreamingAsync([new UserChatMessage("Hello")], options))
        {
            foreach (var part in update.ContentUpdate)
            {
                streamed.Append(part.Text);
            }

            usage ??= update.Usage;
            finish ??= update.FinishReason;
        }

        // The same seed on the same model: the stream carries the same completion, and the final chunk its usage.
        Assert.NotNull(usage);
        Assert.Equal(completion.Usage.InputTokenCount, usage.InputTokenCount);
        Assert.Equal(completion.Usage.OutputTokenCount, usage.OutputTokenCount);
        Assert.Equal(completion.FinishReason, finish);
        Assert.Equal(completion.Content.Count == 0 ? string.Empty : completion.Content[0].Text, streamed.ToString());
    }

    [Fact]
    public async Task Completions_honour_max_tokens_and_end_with_finish_reason_length()
    {
        var lengths = 0;
        for (var seed = 1; seed <= 4; seed++)
        {
            using var body = await PostAsync("/v1/completions", new { model = "x", prompt = "Once", max_tokens = 5, seed, temperature = 1.0 });
            var root = body.RootElement;
            Assert.Equal("text_completion", root.GetProperty("object").GetString());
            Assert.StartsWith("cmpl-", root.GetProperty("id").GetString(), StringComparison.Ordinal);
            var choice = Assert.Single(root.GetProperty("choices").EnumerateArray());
            Assert.Equal(JsonValueKind.String, choice.GetProperty("text").ValueKind);
            var usage = root.GetProperty("usage");
            Assert.Equal(TinyGguf.TokenCount("Once"), usage.GetProperty("prompt_tokens").GetInt32());
            var completionTokens = usage.GetProperty("completion_tokens").GetInt32();
            Assert.InRange(completionTokens, 0, 5);
            Assert.Equal(usage.GetProperty("prompt_tokens").GetInt32() + completionTokens, usage.GetProperty("total_tokens").GetInt32());
            var finish = choice.GetProperty("finish_reason").GetString();
            Assert.Equal(completionTokens == 5 ? "length" : "stop", finish);
            lengths += finish == "length" ? 1 : 0;
        }

        Assert.True(lengths >= 3, "with an end-of-sequence token 1 in 260, most 5-token completions run to max_tokens");

        // max_completion_tokens is the newer name for the same limit.
        using var chat = await PostAsync("/v1/chat/completions", new { messages = new[] { new { role = "user", content = "Hi" } }, max_completion_tokens = 3, seed = 3 });
        Assert.InRange(chat.RootElement.GetProperty("usage").GetProperty("completion_tokens").GetInt32(), 0, 3);
    }

    [Fact]
    public async Task A_stop_sequence_ends_the_completion_before_it_and_is_not_returned()
    {
        // First learn what seed 11 produces, then ask again with a stop sequence cut from the middle of it.
        var request = new Dictionary<string, object> { ["prompt"] = "Stop", ["max_tokens"] = 40, ["seed"] = 11, ["temperature"] = 1.0 };
        using var free = await PostAsync("/v1/completions", request);
        var text = free.RootElement.GetProperty("choices")[0].GetProperty("text").GetString()!;
        var freeTokens = free.RootElement.GetProperty("usage").GetProperty("completion_tokens").GetInt32();
        Assert.True(text.Length >= 6, $"seed 11 should produce some text (got {text.Length} characters)");
        var stop = text.Substring(text.Length / 2, 2);
        var expected = text[..text.IndexOf(stop, StringComparison.Ordinal)];

        request["stop"] = new[] { "\u0001never", stop };
        using var stopped = await PostAsync("/v1/completions", request);
        var choice = stopped.RootElement.GetProperty("choices")[0];
        Assert.Equal(expected, choice.GetProperty("text").GetString());
        Assert.Equal("stop", choice.GetProperty("finish_reason").GetString());
        Assert.InRange(stopped.RootElement.GetProperty("usage").GetProperty("completion_tokens").GetInt32(), 1, freeTokens);

        // Streaming: the same cut, the stop sequence never sent even when it spans chunks.
        request["stream"] = true;
        var (chunks, streamedUsage) = await StreamAsync("/v1/completions", request);
        Assert.Equal(expected, string.Concat(chunks.Select(c => c.GetProperty("choices")[0].GetProperty("text").GetString())));
        Assert.Equal("stop", chunks[^1].GetProperty("choices")[0].GetProperty("finish_reason").GetString());
        Assert.Null(streamedUsage); // not asked for
    }

    [Fact]
    public async Task A_stream_with_include_usage_ends_with_a_usage_chunk_and_done()
    {
        var (chunks, usage) = await StreamAsync("/v1/chat/completions", new
        {
            messages = new[] { new { role = "system", content = "Be brief" }, new { role = "user", content = "Go" } },
            max_tokens = 6,
            seed = 5,
            stream = true,
            stream_options = new { include_usage = true },
        });

        Assert.All(chunks, c => Assert.Equal("chat.completion.chunk", c.GetProperty("object").GetString()));
        Assert.All(chunks, c => Assert.Equal(JsonValueKind.Null, c.GetProperty("usage").ValueKind));
        Assert.Equal("assistant", chunks[0].GetProperty("choices")[0].GetProperty("delta").GetProperty("role").GetString());
        Assert.Single(chunks.Select(c => c.GetProperty("id").GetString()).Distinct());
        Assert.NotNull(usage);
        var prompt = TinyGguf.TokenCount(TinyGguf.ChatPrompt(("system", "Be brief"), ("user", "Go")));
        Assert.Equal(prompt, usage.Value.GetProperty("prompt_tokens").GetInt32());
        var completionTokens = usage.Value.GetProperty("completion_tokens").GetInt32();
        Assert.InRange(completionTokens, 0, 6);
        var finish = chunks[^1].GetProperty("choices")[0].GetProperty("finish_reason").GetString();
        Assert.Equal(completionTokens == 6 ? "length" : "stop", finish);
    }

    [Theory]
    [InlineData("/v1/chat/completions", """{"model":"x"}""", "messages")]
    [InlineData("/v1/chat/completions", """{"messages":"hello"}""", "messages")]
    [InlineData("/v1/chat/completions", """{"messages":[]}""", "messages")]
    [InlineData("/v1/chat/completions", """{"messages":[{"role":"wizard","content":"x"}]}""", "messages[0].role")]
    [InlineData("/v1/chat/completions", """{"messages":[{"role":"user","content":42}]}""", "messages[0].content")]
    [InlineData("/v1/chat/completions", """{"messages":[{"role":"user","content":"x"}],"n":2}""", "n")]
    [InlineData("/v1/chat/completions", """{"messages":[{"role":"user","content":"x"}],"max_tokens":"ten"}""", "max_tokens")]
    [InlineData("/v1/chat/completions", """{"messages":[{"role":"user","content":"x"}],"max_tokens":0}""", "max_tokens")]
    [InlineData("/v1/chat/completions", """{"messages":[{"role":"user","content":"x"}],"temperature":"hot"}""", "temperature")]
    [InlineData("/v1/chat/completions", """{"messages":[{"role":"user","content":"x"}],"temperature":3}""", "temperature")]
    [InlineData("/v1/chat/completions", """{"messages":[{"role":"user","content":"x"}],"stop":["a","b","c","d","e"]}""", "stop")]
    [InlineData("/v1/chat/completions", """{"messages":[{"role":"user","content":"x"}],"stop":7}""", "stop")]
    [InlineData("/v1/chat/completions", """{"messages":[{"role":"user","content":"x"}],"stream":"yes"}""", "stream")]
    [InlineData("/v1/chat/completions", """{"messages":[{"role":"user","content":"x"}],"stream_options":{"include_usage":true}}""", "stream_options")]
    [InlineData("/v1/chat/completions", """{"messages":[{"role":"user","content":"x"}],"tools":[{"type":"function","function":{"name":"f"}}]}""", "tools")]
    [InlineData("/v1/chat/completions", """{"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"x"}}]}]}""", "messages[0].content")]
    [InlineData("/v1/completions", """{"max_tokens":3}""", "prompt")]
    [InlineData("/v1/completions", """{"prompt":["a","b"]}""", "prompt")]
    [InlineData("/v1/completions", """{"prompt":"x","n":0}""", "n")]
    [InlineData("/v1/completions", """{"prompt":{"text":"x"}}""", "prompt")]
    [InlineData("/v1/completions", """{"prompt":"x","seed":"s"}""", "seed")]
    public async Task Bad_input_is_a_400_in_OpenAIs_error_shape_naming_the_parameter(string path, string json, string param)
    {
        var error = await BadRequestAsync(path, json);
        Assert.Equal(param, error.GetProperty("param").GetString());
    }

    [Fact]
    public async Task A_body_that_is_not_JSON_or_not_an_object_is_a_400()
    {
        var notJson = await BadRequestAsync("/v1/chat/completions", "{not json");
        Assert.Contains("not valid JSON", notJson.GetProperty("message").GetString(), StringComparison.Ordinal);
        await BadRequestAsync("/v1/completions", "[1,2]");
        await BadRequestAsync("/v1/completions", string.Empty);
    }

    [Fact]
    public async Task A_prompt_longer_than_the_context_is_a_clear_400_and_the_engine_serves_on()
    {
        var tooLong = new string('x', 300); // 301 tokens with BOS; the context holds 256
        var error = await BadRequestAsync("/v1/completions", JsonSerializer.Serialize(new { prompt = tooLong, max_tokens = 4 }));
        Assert.Equal("context_length_exceeded", error.GetProperty("code").GetString());
        Assert.Contains("256", error.GetProperty("message").GetString(), StringComparison.Ordinal);

        var chatError = await BadRequestAsync("/v1/chat/completions", JsonSerializer.Serialize(new { messages = new[] { new { role = "user", content = tooLong } }, stream = true }));
        Assert.Equal("messages", chatError.GetProperty("param").GetString());

        // A prompt that fits but leaves little room generates up to the end of the context, then stops with "length".
        var nearlyFull = new string('y', 250); // 251 tokens: room for 5
        using var body = await PostAsync("/v1/completions", new { prompt = nearlyFull, max_tokens = 50, seed = 2 });
        Assert.InRange(body.RootElement.GetProperty("usage").GetProperty("completion_tokens").GetInt32(), 0, 5);

        using var health = await Http.GetAsync(Url("/health"));
        Assert.Equal(HttpStatusCode.OK, health.StatusCode);
    }

    [Fact]
    public async Task Requests_beyond_parallel_wait_counted_as_deferred_then_all_are_served()
    {
        var before = await MetricsAsync();
        const int Requests = 6;
        var prompt = string.Concat(Enumerable.Repeat("word", 45)); // 181 tokens each: prompt work that keeps the one slot busy
        var sent = Enumerable.Range(0, Requests).Select(i => PostRawAsync("/v1/completions",
            JsonSerializer.Serialize(new { prompt, max_tokens = 60, seed = i + 100 }))).ToList();

        var sawDeferred = 0.0;
        var all = Task.WhenAll(sent);
        while (!all.IsCompleted)
        {
            var metrics = await MetricsAsync();
            sawDeferred = Math.Max(sawDeferred, metrics["llamacpp:requests_deferred"]);
            Assert.InRange(metrics["llamacpp:requests_processing"], 0, 1); // --parallel 1
            await Task.WhenAny(all, Task.Delay(10));
        }

        var responses = await all;
        Assert.All(responses, r => Assert.Equal(HttpStatusCode.OK, r.StatusCode));
        Assert.True(sawDeferred >= 1, "some requests waited for the one slot while /metrics was read");

        var after = await MetricsAsync();
        Assert.Equal(0, after["llamacpp:requests_deferred"]);
        Assert.Equal(0, after["llamacpp:requests_processing"]);
        Assert.Equal(Requests * TinyGguf.TokenCount(prompt), after["llamacpp:prompt_tokens_total"] - before["llamacpp:prompt_tokens_total"]);
        var predicted = 0;
        foreach (var response in responses)
        {
            using var body = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
            predicted += body.RootElement.GetProperty("usage").GetProperty("completion_tokens").GetInt32();
            response.Dispose();
        }

        Assert.Equal(predicted, after["llamacpp:tokens_predicted_total"] - before["llamacpp:tokens_predicted_total"]);
    }

    [Fact]
    public async Task A_canary_prompt_never_reaches_the_engines_output_even_at_trace_level()
    {
        var canary = "CANARY-llama-" + Guid.NewGuid().ToString("N")[..12];
        using (await PostAsync("/v1/chat/completions", new { messages = new[] { new { role = "user", content = canary } }, max_tokens = 4 }))
        {
        }

        using (await PostAsync("/v1/completions", new { prompt = canary, max_tokens = 4, stop = canary }))
        {
        }

        await StreamAsync("/v1/chat/completions", new { messages = new[] { new { role = "user", content = canary } }, max_tokens = 4, stream = true });
        using (await Http.GetAsync(Url("/v1/models?q=" + canary)))
        using (await Http.GetAsync(Url("/no/such/" + canary)))
        using (await PostRawAsync("/v1/completions?user=" + canary, "{\"prompt\":\"x\",\"max_tokens\":1}"))
        {
        }

        await BadRequestAsync("/v1/chat/completions", JsonSerializer.Serialize(new { messages = new[] { new { role = canary, content = canary } } }));
        await BadRequestAsync("/v1/completions", JsonSerializer.Serialize(new { prompt = canary + new string('z', 300) }));

        // The engine logs each request (at Information and below): wait for the last one's line, then read everything.
        await Eventually.TrueAsync(() => CountOf(engine.Engine.Stdout, "refused (prompt: context_length_exceeded)") > 0, "the engine's log line for the last request");
        Assert.Contains("prompt tokens", engine.Engine.Stdout, StringComparison.Ordinal);
        Canary.AssertAbsent(engine.Engine.Stdout, canary, "the engine's stdout");
        Canary.AssertAbsent(engine.Engine.Stderr, canary, "the engine's stderr");
    }

    [Fact]
    public async Task A_client_that_disconnects_mid_stream_cancels_its_generation_and_frees_the_slot()
    {
        // Find a seed whose completion runs to max_tokens (no end-of-sequence token), so the generation is long.
        var seed = 0;
        for (var candidate = 20; candidate < 40 && seed == 0; candidate++)
        {
            using var probe = await PostAsync("/v1/completions", new { prompt = "Run", max_tokens = 230, seed = candidate });
            if (probe.RootElement.GetProperty("choices")[0].GetProperty("finish_reason").GetString() == "length")
            {
                seed = candidate;
            }
        }

        Assert.NotEqual(0, seed);
        var before = await MetricsAsync();
        // A client of its own that closes the connection on dispose (the shared one would drain the rest of the stream).
        using (var client = new HttpClient(new SocketsHttpHandler { MaxResponseDrainSize = 0 }))
        using (var request = new HttpRequestMessage(HttpMethod.Post, Url("/v1/completions")))
        {
            request.Content = JsonContent.Create(new { prompt = "Run", max_tokens = 230, seed, stream = true });
            using var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
            Assert.StartsWith("data: {", await reader.ReadLineAsync(), StringComparison.Ordinal);
        } // disconnects after the first chunk

        await Eventually.TrueAsync(() => engine.Engine.Stdout.Contains("cancelled by the client", StringComparison.Ordinal), "the engine to log the cancelled generation");
        var after = await MetricsAsync();
        Assert.Equal(0, after["llamacpp:requests_processing"]);
        Assert.InRange(after["llamacpp:tokens_predicted_total"] - before["llamacpp:tokens_predicted_total"], 1, 229);
        using var next = await PostAsync("/v1/completions", new { prompt = "Next", max_tokens = 2 });
        Assert.Equal(2, next.RootElement.GetProperty("usage").GetProperty("completion_tokens").GetInt32());
    }

    [Fact]
    public async Task The_llama_cpp_build_for_this_CPU_is_loaded_from_the_trimmed_runtimes()
    {
        // The build keeps every x64 CPU variant (Directory.Build.targets); LLamaSharp picks the best one the CPU has.
        var expected = System.Runtime.Intrinsics.X86.Avx512F.IsSupported ? "avx512"
            : System.Runtime.Intrinsics.X86.Avx2.IsSupported ? "avx2"
            : System.Runtime.Intrinsics.X86.Avx.IsSupported ? "avx" : "noavx";
        Assert.SkipUnless(System.Runtime.InteropServices.RuntimeInformation.ProcessArchitecture == System.Runtime.InteropServices.Architecture.X64, "x64 only");
        Assert.Matches($"Successfully loaded '[^']*runtimes/linux-x64/native/{expected}/libllama\\.so'", engine.Engine.Stdout);
        var runtimes = Path.Combine(AppContext.BaseDirectory, "runtimes");
        Assert.False(Directory.Exists(Path.Combine(runtimes, "android")), "android natives are not copied");
        Assert.False(Directory.Exists(Path.Combine(runtimes, "linux-musl-x64", "native", "avx2")), "musl llama.cpp builds are not copied");
        await Task.CompletedTask;
    }

    private static int CountOf(string text, string what) => Regex.Count(text, Regex.Escape(what));

    private async Task<JsonDocument> PostAsync(string path, object body)
    {
        using var response = await Http.PostAsJsonAsync(Url(path), body);
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.OK, $"{path} answered {(int)response.StatusCode}: {text}");
        return JsonDocument.Parse(text);
    }

    private Task<HttpResponseMessage> PostRawAsync(string path, string json) =>
        Http.PostAsync(Url(path), new StringContent(json, Encoding.UTF8, "application/json"));

    private async Task<JsonElement> BadRequestAsync(string path, string json)
    {
        using var response = await PostRawAsync(path, json);
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.BadRequest, $"{path} {json} answered {(int)response.StatusCode}: {text}");
        using var body = JsonDocument.Parse(text);
        var error = body.RootElement.GetProperty("error");
        Assert.Equal("invalid_request_error", error.GetProperty("type").GetString());
        Assert.False(string.IsNullOrEmpty(error.GetProperty("message").GetString()));
        return error.Clone();
    }

    /// <summary>Reads an SSE stream: the chunks with choices, the usage chunk if any; asserts it ends with [DONE].</summary>
    private async Task<(List<JsonElement> Chunks, JsonElement? Usage)> StreamAsync(string path, object body)
    {
        using var response = await Http.PostAsJsonAsync(Url(path), body);
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.OK, $"{path} answered {(int)response.StatusCode}: {text}");
        Assert.Equal("text/event-stream", response.Content.Headers.ContentType?.MediaType);
        var events = text.Split("\n\n", StringSplitOptions.RemoveEmptyEntries).Select(e => e.Trim()).ToList();
        Assert.All(events, e => Assert.StartsWith("data: ", e, StringComparison.Ordinal));
        Assert.Equal("data: [DONE]", events[^1]);
        var chunks = new List<JsonElement>();
        JsonElement? usage = null;
        foreach (var e in events[..^1])
        {
            using var chunk = JsonDocument.Parse(e["data: ".Length..]);
            if (chunk.RootElement.GetProperty("choices").GetArrayLength() == 0)
            {
                usage = chunk.RootElement.GetProperty("usage").Clone();
            }
            else
            {
                Assert.Null(usage); // the usage chunk is the last before [DONE]
                chunks.Add(chunk.RootElement.Clone());
            }
        }

        return (chunks, usage);
    }

    private async Task<Dictionary<string, double>> MetricsAsync()
    {
        var text = await Http.GetStringAsync(Url("/metrics"));
        return text.Split('\n')
            .Where(l => l.StartsWith("llamacpp:", StringComparison.Ordinal))
            .Select(l => l.Split(' '))
            .ToDictionary(p => p[0], p => double.Parse(p[1], CultureInfo.InvariantCulture));
    }
}
