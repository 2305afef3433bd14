using System.Text;
using BenchmarkDotNet.Attributes;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Sluice.Audit;
using Sluice.Billing;
using Sluice.Gateway;
using Sluice.Hosting;
using Sluice.Identity;
using Sluice.Storage;

namespace Sluice.Benchmarks;

/// <summary>The per-request work of the gateway outside the network: reading a request, reading usage, holding money.</summary>
[MemoryDiagnoser]
public class HotPathBenchmarks
{
    private static readonly byte[] ChatBody = Encoding.UTF8.GetBytes(
        """{"model":"llama-3","messages":[{"role":"system","content":"You are terse."},{"role":"user","content":"Summarise the plot of Hamlet in two sentences, please."}],"stream":true,"stream_options":{"include_usage":true},"max_tokens":256,"temperature":0.2}""");

    private static readonly byte[] UsageChunk = Encoding.UTF8.GetBytes(
        """{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"m","choices":[],"usage":{"prompt_tokens":31,"completion_tokens":256,"total_tokens":287,"prompt_tokens_details":{"cached_tokens":0}}}""");

    private static readonly byte[] ContentChunk = Encoding.UTF8.GetBytes(
        """{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":" Denmark"},"finish_reason":null}]}""");

    private IHost _host = null!;
    private SpendGuard _guard = null!;
    private Guid _orgId;
    private string _directory = null!;

    [GlobalSetup]
    public async Task SetupAsync()
    {
        _directory = Directory.CreateTempSubdirectory("sluice-bench-").FullName;
        var builder = Host.CreateEmptyApplicationBuilder(new HostApplicationBuilderSettings());
        builder.Configuration.AddInMemoryCollection([new("Server:DataDir", _directory), new("Billing:LeaseSliceMicros", "100000000")]);
        builder.Services.AddSingleton(TimeProvider.System);
        builder.Services.AddSettings<ServerOptions>(ServerOptions.Section);
        builder.Services.AddStorage();
        builder.Services.AddAuditCore();
        builder.Services.AddGatewayCore();
        builder.Services.AddSluiceIdentityCore();
        builder.Services.AddBillingCore();
        builder.Services.AddSingleton<SpendGuard>();
        _host = builder.Build();
        await _host.Services.GetRequiredService<StorageStartup>().PrepareAsync(applyMigrations: true, default);
        await using var scope = _host.Services.CreateAsyncScope();
        _orgId = (await scope.ServiceProvider.GetRequiredService<OrganizationService>().CreateAsync(new CreateOrganizationRequest("Bench", null), null, default)).Id;
        await scope.ServiceProvider.GetRequiredService<WalletService>().CreditAsync(_orgId, new CreditRequest(1_000_000_000_000m, null, "bench", null, false), default);
        _guard = _host.Services.GetRequiredService<SpendGuard>();
        var (hold, _) = await _guard.TryHoldAsync(_orgId, null, 1, default); // takes the first lease
        _guard.Settle(hold!, 1);
    }

    [Benchmark(Description = "read a chat request (model, stream, usage, max_tokens)")]
    public InferenceRequest ParseRequest() => InferenceRequest.Parse(InferenceEndpoint.ChatCompletions, ChatBody);

    [Benchmark(Description = "rewrite a request for the upstream")]
    public byte[] RewriteRequest() => InferenceRequest.Parse(InferenceEndpoint.ChatCompletions, ChatBody).RewriteFor("meta-llama/Llama-3-8B");

    [Benchmark(Description = "SSE chunk: content (usage check only)")]
    public bool ContentChunkUsage() => ContentChunk.AsSpan().IndexOf("\"usage\":{"u8) >= 0 && TokenUsage.TryRead(ContentChunk, out _);

    [Benchmark(Description = "SSE chunk: usage extraction")]
    public TokenUsage UsageChunkUsage() => TokenUsage.TryRead(UsageChunk, out var usage) ? usage : default;

    [Benchmark(Description = "hold and settle from the replica's lease")]
    public async ValueTask HoldAndSettle()
    {
        var (hold, _) = await _guard.TryHoldAsync(_orgId, null, 300, default);
        _guard.Settle(hold!, 120);
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _host.Dispose();
        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
        Directory.Delete(_directory, recursive: true);
    }
}
