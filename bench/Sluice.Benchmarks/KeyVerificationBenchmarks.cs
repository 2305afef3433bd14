using BenchmarkDotNet.Attributes;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Sluice.Identity;

namespace Sluice.Benchmarks;

/// <summary>
/// What authenticating one request with an API key costs: a cache hit (the hot path: checksum, HMAC, dictionary
/// lookup) and a miss (a database read and one bcrypt at the default key cost of 10).
/// </summary>
[MemoryDiagnoser]
public class KeyVerificationBenchmarks
{
    private IHost _host = null!;
    private ApiKeyVerifier _verifier = null!;
    private string _key = null!;
    private Guid _keyId;
    private string _directory = null!;

    [GlobalSetup]
    public async Task SetupAsync()
    {
        (_host, _directory) = await BenchmarkStorage.StartAsync(services => services.AddSluiceIdentityCore());

        await using var scope = _host.Services.CreateAsyncScope();
        var organization = await scope.ServiceProvider.GetRequiredService<OrganizationService>().CreateAsync(new CreateOrganizationRequest("Bench", null), null, default);
        var created = await scope.ServiceProvider.GetRequiredService<ApiKeyService>()
            .CreateAsync(organization.Id, new CreateKeyRequest("bench", null, null, null, null, null, null), null, default);
        _key = created.Key;
        _keyId = created.Details.Id;
        _verifier = _host.Services.GetRequiredService<ApiKeyVerifier>();
        if (await _verifier.VerifyAsync(_key) is null)
        {
            throw new InvalidOperationException("the benchmark key does not verify");
        }
    }

    [Benchmark(Description = "verify key, cache hit")]
    public ValueTask<VerifiedKey?> CacheHit() => _verifier.VerifyAsync(_key);

    [Benchmark(Description = "verify key, cache miss (DB read + bcrypt cost 10)")]
    public async Task<VerifiedKey?> CacheMiss()
    {
        _verifier.Evict(_keyId);
        return await _verifier.VerifyAsync(_key);
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        BenchmarkStorage.Stop(_host, _directory);
    }
}
