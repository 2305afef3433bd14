using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Sluice.Tests.TestSupport;

namespace Sluice.Tests.Engine;

/// <summary><c>sluice engine llama</c>'s life as a process: 503 while loading, bad model files, SIGTERM.</summary>
[Collection(RealProcessLoad.Name)]
public sealed class LlamaEngineProcessTests : IDisposable
{
    private readonly string _directory = Path.Combine(Path.GetTempPath(), "sluice-llama-" + Guid.NewGuid().ToString("N"));
    private readonly HttpClient _http = new() { Timeout = TimeSpan.FromSeconds(30) };

    public LlamaEngineProcessTests() => Directory.CreateDirectory(_directory);

    [Fact]
    public async Task Health_is_503_Loading_model_while_the_model_cannot_be_read_and_a_non_GGUF_file_then_exits_1()
    {
        // A FIFO as the model: the engine listens first, then blocks opening it until this test writes, so every
        // probe before that sees the engine still loading.
        var fifo = Path.Combine(_directory, "model.gguf");
        using (var mkfifo = Process.Start("mkfifo", [fifo]))
        {
            await mkfifo.WaitForExitAsync();
            Assert.Equal(0, mkfifo.ExitCode);
        }

        var port = SluiceProcess.FreePort();
        await using var engine = LlamaEngineFixture.Start(fifo, port);
        var baseAddress = new Uri($"http://127.0.0.1:{port}");
        HttpResponseMessage? health = null;
        await Eventually.TrueAsync(async () =>
        {
            try
            {
                health = await _http.GetAsync(new Uri(baseAddress, "/health"));
                return true;
            }
            catch (HttpRequestException)
            {
                return false;
            }
        }, "the engine to listen", TimeSpan.FromSeconds(30));

        Assert.Equal(HttpStatusCode.ServiceUnavailable, health!.StatusCode);
        Assert.Equal("""{"error":{"code":503,"message":"Loading model","type":"unavailable_error"}}""", await health.Content.ReadAsStringAsync());
        using var chat = await _http.PostAsync(new Uri(baseAddress, "/v1/chat/completions"), new StringContent("""{"messages":[{"role":"user","content":"x"}]}"""));
        Assert.Equal(HttpStatusCode.ServiceUnavailable, chat.StatusCode);
        using var models = await _http.GetAsync(new Uri(baseAddress, "/v1/models"));
        Assert.Equal(HttpStatusCode.ServiceUnavailable, models.StatusCode);
        using var metrics = await _http.GetAsync(new Uri(baseAddress, "/metrics"));
        Assert.Equal(HttpStatusCode.OK, metrics.StatusCode);
        health.Dispose();

        await File.WriteAllTextAsync(fifo, "this is not a model\n");
        Assert.Equal(1, await engine.WaitForExitAsync(TimeSpan.FromSeconds(30)));
        Assert.Contains("error: ", engine.Stderr, StringComparison.Ordinal);
        Assert.Contains("is not a GGUF model file", engine.Stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", engine.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_non_GGUF_or_truncated_or_missing_model_file_is_an_error_line_and_exit_1()
    {
        var text = Path.Combine(_directory, "notes.gguf");
        await File.WriteAllTextAsync(text, "hello, I am not a model");
        var (code, _, stderr) = await SluiceProcess.RunAsync(["engine", "llama", "--model", text, "--port", SluiceProcess.FreePort().ToString(System.Globalization.CultureInfo.InvariantCulture)]);
        Assert.Equal(1, code);
        Assert.Contains("error: ", stderr, StringComparison.Ordinal);
        Assert.Contains("is not a GGUF model file", stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", stderr, StringComparison.Ordinal);

        // A real GGUF cut short: the header passes, llama.cpp refuses the rest.
        var model = await File.ReadAllBytesAsync(TinyGguf.Write(_directory));
        var truncated = Path.Combine(_directory, "truncated.gguf");
        await File.WriteAllBytesAsync(truncated, model[..(model.Length / 2)]);
        (code, _, stderr) = await SluiceProcess.RunAsync(["engine", "llama", "--model", truncated, "--port", SluiceProcess.FreePort().ToString(System.Globalization.CultureInfo.InvariantCulture)]);
        Assert.Equal(1, code);
        Assert.Contains("error: llama.cpp could not load the model", stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", stderr, StringComparison.Ordinal);

        (code, _, stderr) = await SluiceProcess.RunAsync(["engine", "llama", "--model", Path.Combine(_directory, "absent.gguf"), "--port", "8080"]);
        Assert.Equal(1, code);
        Assert.Contains("error: the model file", stderr, StringComparison.Ordinal);

        (code, _, stderr) = await SluiceProcess.RunAsync(["engine", "llama", "--model", text, "--port", "8080", "--parallel", "0"]);
        Assert.Equal(2, code);
        Assert.Contains("error: --parallel", stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task SIGTERM_cancels_a_generation_in_progress_and_stops_the_engine_with_exit_code_0()
    {
        var port = SluiceProcess.FreePort();
        var baseAddress = new Uri($"http://127.0.0.1:{port}");
        await using var engine = LlamaEngineFixture.Start(TinyGguf.Write(_directory), port);
        await LlamaEngineFixture.WaitHealthyAsync(_http, baseAddress, engine);
        var seed = await LongSeedAsync(baseAddress);

        using var request = new HttpRequestMessage(HttpMethod.Post, new Uri(baseAddress, "/v1/completions"))
        {
            Content = JsonContent.Create(new { prompt = "Run", max_tokens = 230, seed, stream = true }),
        };
        using var response = await _http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
        Assert.StartsWith("data: {", await reader.ReadLineAsync(), StringComparison.Ordinal); // generating now

        engine.SendSignal(Signals.Terminate);
        Assert.Equal(0, await engine.WaitForExitAsync(TimeSpan.FromSeconds(30)));
        Assert.Contains("the engine is stopping", engine.Stdout, StringComparison.Ordinal);
        Assert.DoesNotContain("data: [DONE]", await ReadRestAsync(reader), StringComparison.Ordinal); // cut off, not completed
    }

    [Fact]
    public async Task A_full_queue_answers_503_queue_full_with_retry_after_and_the_rest_are_served()
    {
        var port = SluiceProcess.FreePort();
        var baseAddress = new Uri($"http://127.0.0.1:{port}");
        await using var engine = LlamaEngineFixture.Start(TinyGguf.Write(_directory), port, parallel: 1, maxQueue: 1);
        await LlamaEngineFixture.WaitHealthyAsync(_http, baseAddress, engine);
        var seed = await LongSeedAsync(baseAddress);

        // One decodes, one may wait; of 6 sent at once, at least 4 find the queue full.
        var responses = await Task.WhenAll(Enumerable.Range(0, 6).Select(_ => _http.PostAsJsonAsync(
            new Uri(baseAddress, "/v1/completions"), new { prompt = "Run", max_tokens = 230, seed })));
        var refused = responses.Where(r => r.StatusCode == HttpStatusCode.ServiceUnavailable).ToList();
        Assert.Equal(6, refused.Count + responses.Count(r => r.StatusCode == HttpStatusCode.OK));
        Assert.InRange(refused.Count, 4, 5);
        foreach (var response in refused)
        {
            Assert.Equal("1", response.Headers.RetryAfter?.ToString());
            using var body = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
            Assert.Equal("queue_full", body.RootElement.GetProperty("error").GetProperty("code").GetString());
            Assert.Equal("server_error", body.RootElement.GetProperty("error").GetProperty("type").GetString());
        }

        foreach (var response in responses)
        {
            response.Dispose();
        }
    }

    [Fact]
    public async Task Parallel_slots_decode_at_once_without_disturbing_each_other()
    {
        var port = SluiceProcess.FreePort();
        var baseAddress = new Uri($"http://127.0.0.1:{port}");
        await using var engine = LlamaEngineFixture.Start(TinyGguf.Write(_directory), port, parallel: 2);
        await LlamaEngineFixture.WaitHealthyAsync(_http, baseAddress, engine);
        var seed = await LongSeedAsync(baseAddress);
        using var alone = await _http.PostAsJsonAsync(new Uri(baseAddress, "/v1/completions"), new { prompt = "Run", max_tokens = 230, seed });
        var expected = JsonDocument.Parse(await alone.Content.ReadAsStringAsync()).RootElement.GetProperty("choices")[0].GetProperty("text").GetString();

        // Eight at once for two slots: on a loaded machine, four could trickle in slowly enough that none ever waited.
        var sent = Task.WhenAll(Enumerable.Range(0, 8).Select(_ => _http.PostAsJsonAsync(
            new Uri(baseAddress, "/v1/completions"), new { prompt = "Run", max_tokens = 230, seed })));
        double maxProcessing = 0, maxDeferred = 0;
        while (!sent.IsCompleted)
        {
            var metrics = (await _http.GetStringAsync(new Uri(baseAddress, "/metrics"))).Split('\n');
            maxProcessing = Math.Max(maxProcessing, Gauge(metrics, "llamacpp:requests_processing"));
            maxDeferred = Math.Max(maxDeferred, Gauge(metrics, "llamacpp:requests_deferred"));
            await Task.WhenAny(sent, Task.Delay(10));
        }

        Assert.Equal(2, maxProcessing); // two slots decoding at once, never more
        Assert.InRange(maxDeferred, 1, 6);
        foreach (var response in await sent)
        {
            // The same seed gives the same text in either slot, decoded beside another request.
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            using var body = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
            Assert.Equal(expected, body.RootElement.GetProperty("choices")[0].GetProperty("text").GetString());
            response.Dispose();
        }
    }

    private static double Gauge(string[] metrics, string name) =>
        double.Parse(metrics.Single(l => l.StartsWith(name + " ", StringComparison.Ordinal))[(name.Length + 1)..], System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>A seed whose 230-token completion of "Run" meets no end-of-sequence token: a generation that runs a while.</summary>
    private async Task<int> LongSeedAsync(Uri baseAddress)
    {
        for (var seed = 20; seed < 40; seed++)
        {
            using var response = await _http.PostAsJsonAsync(new Uri(baseAddress, "/v1/completions"), new { prompt = "Run", max_tokens = 230, seed });
            using var body = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
            if (body.RootElement.GetProperty("choices")[0].GetProperty("finish_reason").GetString() == "length")
            {
                return seed;
            }
        }

        Assert.Fail("no seed in 20..39 ran to max_tokens");
        return 0;
    }

    private static async Task<string> ReadRestAsync(StreamReader reader)
    {
        try
        {
            return await reader.ReadToEndAsync();
        }
        catch (IOException)
        {
            return string.Empty; // the connection was cut
        }
        catch (HttpRequestException)
        {
            return string.Empty;
        }
    }

    public void Dispose()
    {
        _http.Dispose();
        Directory.Delete(_directory, recursive: true);
    }
}
