using System.Net;
using Sluice.Tests.TestSupport;

namespace Sluice.Tests.Engine;

/// <summary>
/// One <c>sluice engine llama</c> process on the tiny random-weight GGUF, shared by a test class: one decoding slot, a
/// context of 256 tokens, and logging at its most verbose (Trace, ASP.NET Core's categories too) so the canary test reads everything it could print.
/// </summary>
public sealed class LlamaEngineFixture : IAsyncLifetime
{
    public const string ModelId = "tiny-llama";

    private readonly string _directory = Path.Combine(Path.GetTempPath(), "sluice-llama-" + Guid.NewGuid().ToString("N"));

    public SluiceProcess Engine { get; private set; } = null!;

    public int Port { get; private set; }

    public HttpClient Http { get; } = new() { Timeout = TimeSpan.FromSeconds(60) };

    public Uri BaseAddress => new($"http://127.0.0.1:{Port}");

    public async ValueTask InitializeAsync()
    {
        var model = TinyGguf.Write(_directory);
        Port = SluiceProcess.FreePort();
        Engine = Start(model, Port, parallel: 1, ModelId);
        await WaitHealthyAsync(Http, BaseAddress, Engine);
    }

    public static SluiceProcess Start(string model, int port, int parallel = 1, string? modelId = null, int maxQueue = 64) =>
        SluiceProcess.Start(
            ["engine", "llama", "--model", model, "--port", port.ToString(System.Globalization.CultureInfo.InvariantCulture),
             "--context-size", "256", "--parallel", parallel.ToString(System.Globalization.CultureInfo.InvariantCulture),
             "--max-queue", maxQueue.ToString(System.Globalization.CultureInfo.InvariantCulture), "--threads", "2",
             .. modelId is null ? Array.Empty<string>() : ["--model-id", modelId]],
            new Dictionary<string, string?> { ["Logging__LogLevel__Default"] = "Trace", ["Logging__LogLevel__Microsoft"] = "Trace" });

    public static async Task WaitHealthyAsync(HttpClient http, Uri baseAddress, SluiceProcess engine)
    {
        await Eventually.TrueAsync(async () =>
        {
            try
            {
                using var response = await http.GetAsync(new Uri(baseAddress, "/health"));
                return response.StatusCode == HttpStatusCode.OK;
            }
            catch (HttpRequestException)
            {
                return false;
            }
        }, $"the engine to load the model\nstdout:\n{engine.Stdout}\nstderr:\n{engine.Stderr}", TimeSpan.FromSeconds(60));
    }

    public async ValueTask DisposeAsync()
    {
        Http.Dispose();
        if (Engine is not null)
        {
            await Engine.DisposeAsync();
        }

        Directory.Delete(_directory, recursive: true);
    }
}
