using Sluice.Storage;
using Sluice.Tests.TestSupport;

namespace Sluice.Tests.Engine;

/// <summary>The gateway never loads llama.cpp: only `sluice engine llama` maps LLamaSharp and its native libraries.</summary>
[Collection(RealProcessLoad.Name)]
public sealed class EngineIsolationTests
{
    private static readonly string[] LlamaFiles = ["LLamaSharp.dll", "libllama.so", "libggml"];

    [Fact]
    public async Task Serve_maps_no_llama_library_while_the_llama_engine_does()
    {
        Assert.SkipUnless(OperatingSystem.IsLinux(), "reads /proc/PID/maps");
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Sqlite);
        var kit = new ProcessKit(database);
        await kit.RunAsync("migrate");
        var port = SluiceProcess.FreePort();
        await using (var server = SluiceProcess.Start(kit.OnDatabase("serve", "--urls", $"http://127.0.0.1:{port}", "--set", "Identity:PasswordHashCost=10")))
        {
            await server.WaitForOutputAsync("Sluice is listening", TimeSpan.FromSeconds(60));
            using var http = new HttpClient();
            using (await http.GetAsync(new Uri($"http://127.0.0.1:{port}/v1/models")))
            {
            }

            var maps = await File.ReadAllTextAsync($"/proc/{server.Id}/maps");
            Assert.Contains("sluice.dll", maps, StringComparison.Ordinal);
            Assert.All(LlamaFiles, file => Assert.DoesNotContain(file, maps, StringComparison.Ordinal));
        }

        var directory = Path.Combine(database.Directory, "model");
        var enginePort = SluiceProcess.FreePort();
        await using var engine = LlamaEngineFixture.Start(TinyGguf.Write(directory), enginePort);
        using var client = new HttpClient();
        await LlamaEngineFixture.WaitHealthyAsync(client, new Uri($"http://127.0.0.1:{enginePort}"), engine);
        var engineMaps = await File.ReadAllTextAsync($"/proc/{engine.Id}/maps");
        Assert.All(LlamaFiles, file => Assert.Contains(file, engineMaps, StringComparison.Ordinal));
    }
}
