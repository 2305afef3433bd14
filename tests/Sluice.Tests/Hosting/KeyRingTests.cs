using Microsoft.AspNetCore.DataProtection;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Sluice.Storage;
using Sluice.Tests.TestSupport;

namespace Sluice.Tests.Hosting;

/// <summary>ASP.NET's data-protection key ring, which Sluice does not use, stays in memory: no key file is written at start.</summary>
public sealed class KeyRingTests
{
    [Fact]
    public async Task The_server_starts_no_key_ring_service_and_protects_nothing_on_disk()
    {
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Sqlite);
        await using var sluice = new SluiceFactory(database);
        sluice.CreateClient().Dispose();

        var started = sluice.Services.GetServices<IHostedService>().Select(s => s.GetType().Name).ToList();
        Assert.Contains("UsageWriter", started); // the list is the real one
        Assert.DoesNotContain("DataProtectionHostedService", started);
        Assert.IsType<EphemeralDataProtectionProvider>(sluice.Services.GetRequiredService<IDataProtectionProvider>());
    }
}
