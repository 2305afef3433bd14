using System.Diagnostics;
using System.Text.Json;
using Sluice.Storage;
using Sluice.Tests.TestSupport;

namespace Sluice.Tests.Acceptance;

/// <summary>
/// Runs one case script of the Node.js acceptance project (tests/acceptance/node, the official npm SDKs at the versions
/// of its package-lock.json, installed by scripts/node-deps.sh, which ./test.sh runs) and returns the JSON object it
/// prints: each case's observations, or <c>{"thrown": …}</c> when a case threw. The C# tests assert the observations.
/// </summary>
public static class NodeSdk
{
    public static string ProjectDirectory
    {
        get
        {
            for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            {
                var candidate = Path.Combine(dir.FullName, "tests", "acceptance", "node");
                if (File.Exists(Path.Combine(candidate, "package.json")))
                {
                    return candidate;
                }
            }

            throw new InvalidOperationException("tests/acceptance/node is not above the test assembly.");
        }
    }

    /// <summary>Why the node side cannot run (no node, no installed SDKs), or null.</summary>
    public static string? Unavailable()
    {
        if (!File.Exists(Path.Combine(ProjectDirectory, "node_modules", ".package-lock.json")))
        {
            return "The npm SDKs are not installed in tests/acceptance/node; run scripts/node-deps.sh (./test.sh does).";
        }

        return FindNode() is null ? "node is not installed; scripts/node-deps.sh installs it (as root or with sudo)." : null;
    }

    private static string? FindNode() =>
        (Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries)
            .Select(dir => Path.Combine(dir, "node")).FirstOrDefault(File.Exists);

    public static async Task<JsonElement> RunAsync(string script, IReadOnlyDictionary<string, string> environment, TimeSpan? timeout = null)
    {
        var start = new ProcessStartInfo(FindNode() ?? "node")
        {
            WorkingDirectory = ProjectDirectory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        start.ArgumentList.Add(script);
        foreach (var (name, value) in environment)
        {
            start.Environment[name] = value;
        }

        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var limit = new CancellationTokenSource(timeout ?? TimeSpan.FromSeconds(120));
        try
        {
            await process.WaitForExitAsync(limit.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            Assert.Fail($"{script} did not finish in time: {await stderr}");
        }

        var output = await stdout;
        var errors = await stderr;
        Assert.True(process.ExitCode == 0, $"{script} exited with {process.ExitCode}: {errors}");
        var last = output.Split('\n', StringSplitOptions.RemoveEmptyEntries).LastOrDefault();
        Assert.True(last is not null, $"{script} printed nothing: {errors}");
        return JsonDocument.Parse(last).RootElement.Clone();
    }
}

/// <summary>
/// A Sluice server on a real loopback port (SluiceFactory with Kestrel) with a tenant key, the echo model, a stand-in
/// provider <c>p</c> (FakeUpstream: tool calls, JSON answers) serving <c>m</c> and <c>meta-llama/Llama-3.1-8B-Instruct</c>,
/// and a provider that always answers 429 serving <c>busy</c>; then, when <see cref="Script"/> names one, that node case
/// script run against it.
/// </summary>
public abstract class SdkServerFixture : IAsyncLifetime
{
    public const string SlashModel = "meta-llama/Llama-3.1-8B-Instruct";

    private TestDatabase? _database;
    private SluiceFactory? _sluice;
    private FakeUpstream? _fake;
    private FakeUpstream? _busy;

    protected abstract string? Script { get; }

    public string RootUrl { get; private set; } = "";

    public string Key { get; private set; } = "";

    public string? Skipped { get; private set; }

    public JsonElement Results { get; private set; }

    public FakeUpstream Fake => _fake!;

    public TestDatabase Database => _database!;

    public SluiceFactory Sluice => _sluice!;

    /// <summary>One case's observations; a case that threw fails the test with what it threw.</summary>
    public JsonElement Case(string name)
    {
        if (Skipped is { } why)
        {
            CrossCheck.Unavailable(why);
        }

        Assert.True(Results.TryGetProperty(name, out var result), $"{Script} reported no case '{name}'");
        Assert.False(result.TryGetProperty("thrown", out var thrown), $"{Script} case '{name}' threw: {thrown}");
        return result;
    }

    public async ValueTask InitializeAsync()
    {
        Skipped = Script is null ? null : NodeSdk.Unavailable();
        if (Skipped is not null)
        {
            return;
        }

        _database = await TestDatabase.CreateAsync(DatabaseProvider.Sqlite);
        var port = SluiceProcess.FreePort();
        _sluice = new SluiceFactory(_database, new Dictionary<string, string?>
        {
            ["Batches:PollInterval"] = "00:00:00.050",
        });
        _sluice.UseKestrel(port);
        _sluice.StartServer();
        var root = $"http://127.0.0.1:{port}";
        _fake = await FakeUpstream.StartAsync();
        _busy = await FakeUpstream.StartAsync();
        _busy.FailWith = 429;

        var @operator = await GatewayKit.OperatorAsync(_sluice);
        await GatewayKit.ProviderAsync(@operator, "p", _fake.BaseUrl);
        await GatewayKit.ProviderAsync(@operator, "busy-provider", _busy.BaseUrl);
        foreach (var (model, provider) in new[] { ("m", "p"), (SlashModel, "p"), ("busy", "busy-provider") })
        {
            await GatewayKit.ModelAsync(@operator, model);
            await GatewayKit.RouteAsync(@operator, model, provider, model);
            await GatewayKit.CatalogSeesAsync(model, false, _sluice);
        }

        var (_, _, key) = await GatewayKit.TenantAsync(_sluice);
        (RootUrl, Key) = (root, key);
        if (Script is null)
        {
            return;
        }

        Results = await NodeSdk.RunAsync(Script, new Dictionary<string, string>
        {
            ["SLUICE_ROOT_URL"] = root,
            ["SLUICE_BASE_URL"] = root + "/v1",
            ["SLUICE_KEY"] = key,
            ["SLUICE_TOOL_MODEL"] = "m",
            ["SLUICE_BUSY_MODEL"] = "busy",
            ["SLUICE_SLASH_MODEL"] = SlashModel,
        });
    }

    public async ValueTask DisposeAsync()
    {
        GC.SuppressFinalize(this);
        if (_sluice is not null)
        {
            await _sluice.DisposeAsync();
        }

        if (_fake is not null)
        {
            await _fake.DisposeAsync();
        }

        if (_busy is not null)
        {
            await _busy.DisposeAsync();
        }

        if (_database is not null)
        {
            await _database.DisposeAsync();
        }
    }
}

public sealed class OpenAiNodeFixture : SdkServerFixture
{
    protected override string? Script => "openai-cases.mjs";
}

public sealed class ResponsesNodeFixture : SdkServerFixture
{
    protected override string? Script => "responses-cases.mjs";
}

public sealed class AnthropicNodeFixture : SdkServerFixture
{
    protected override string? Script => "anthropic-cases.mjs";
}

public sealed class DotNetSdkFixture : SdkServerFixture
{
    protected override string? Script => null;
}
