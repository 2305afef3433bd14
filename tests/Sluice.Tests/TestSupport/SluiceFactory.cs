using System.Collections.Concurrent;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.DependencyInjection;
using Sluice.Identity;

namespace Sluice.Tests.TestSupport;

/// <summary>
/// Sluice in process (WebApplicationFactory over the real Program) on a real database. Settings are passed the way an
/// operator would set them; the one-time credential console is captured so tests can read what a person would see.
/// </summary>
public sealed class SluiceFactory(TestDatabase database, IReadOnlyDictionary<string, string?>? settings = null)
    : WebApplicationFactory<Program>
{
    public CapturingCredentialWriter Credentials { get; } = new();

    public TestDatabase Database => database;

    protected override void ConfigureWebHost(IWebHostBuilder builder)
    {
        builder.UseSetting("ConnectionStrings:Sluice", database.ConnectionString);
        builder.UseSetting("Server:DataDir", database.Directory);
        builder.UseSetting("Identity:PasswordHashCost", "10");
        foreach (var (key, value) in settings ?? new Dictionary<string, string?>())
        {
            builder.UseSetting(key, value);
        }

        builder.ConfigureTestServices(services => services.AddSingleton<IOneTimeCredentialWriter>(Credentials));
    }
}

public sealed class CapturingCredentialWriter : IOneTimeCredentialWriter
{
    public ConcurrentQueue<(string Title, string Account, string Secret)> Written { get; } = new();

    public void Write(string title, string account, string secret) => Written.Enqueue((title, account, secret));
}
