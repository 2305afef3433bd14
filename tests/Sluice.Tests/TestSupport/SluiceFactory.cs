using System.Collections.Concurrent;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Sluice.Identity;

namespace Sluice.Tests.TestSupport;

/// <summary>
/// Sluice in process (WebApplicationFactory over the real Program) on a real database. Settings are passed the way an
/// operator would set them; the one-time credential console and every log line are captured, and tests act through
/// intent methods (sign up, sign in, create an org or a key) over HTTP.
/// </summary>
public sealed class SluiceFactory(
    TestDatabase database, IReadOnlyDictionary<string, string?>? settings = null, TimeProvider? time = null, Action<IServiceCollection>? configure = null)
    : WebApplicationFactory<Program>
{
    public const string Password = "a sturdy passphrase";

    public CapturingCredentialWriter Credentials { get; } = new();

    public LogCapture Logs { get; } = new();

    public TestDatabase Database => database;

    protected override void ConfigureWebHost(IWebHostBuilder builder)
    {
        builder.UseSetting("ConnectionStrings:Sluice", database.ConnectionString);
        builder.UseSetting("Server:DataDir", database.Directory);
        builder.UseSetting("Identity:PasswordHashCost", "10");
        builder.UseSetting("Identity:KeyChangePollInterval", "00:00:00.250");
        foreach (var (key, value) in settings ?? new Dictionary<string, string?>())
        {
            builder.UseSetting(key, value);
        }

        builder.ConfigureLogging(logging => logging.AddProvider(Logs).SetMinimumLevel(LogLevel.Trace));
        builder.ConfigureTestServices(services =>
        {
            services.AddSingleton<IOneTimeCredentialWriter>(Credentials);
            services.AddSingleton<Microsoft.AspNetCore.Hosting.IStartupFilter, ClientAddressFilter>();
            if (time is not null)
            {
                services.AddSingleton(time);
            }

            configure?.Invoke(services); // a stand-in for a part outside the one under test (the wallet's say on GPU time)
        });
    }

    /// <summary>A client with no credentials (its own cookie jar).</summary>
    public HttpClient Anonymous() => CreateClient(new WebApplicationFactoryClientOptions { HandleCookies = true, BaseAddress = ClientOptions.BaseAddress });

    public HttpClient WithKey(string key)
    {
        var client = CreateClient(new WebApplicationFactoryClientOptions { HandleCookies = false, BaseAddress = ClientOptions.BaseAddress });
        client.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", key);
        return client;
    }

    /// <summary>Signs up a new person and returns a client signed in as them.</summary>
    public async Task<(HttpClient Client, Guid UserId)> SignUpAndLoginAsync(string email, string password = Password)
    {
        var client = Anonymous();
        var signUp = await client.PostAsJsonAsync("/api/v1/auth/signup", new { email, name = "Test Person", password, ageAttestation = true });
        Assert.True(signUp.StatusCode == HttpStatusCode.Created, await signUp.Content.ReadAsStringAsync());
        var login = await client.PostAsJsonAsync("/api/v1/auth/login", new { email, password });
        Assert.True(login.StatusCode == HttpStatusCode.OK, await login.Content.ReadAsStringAsync());
        using var body = JsonDocument.Parse(await login.Content.ReadAsStringAsync());
        return (client, body.RootElement.GetProperty("id").GetGuid());
    }

    public static async Task<Guid> CreateOrganizationAsync(HttpClient owner, string name = "Acme")
    {
        var response = await owner.PostAsJsonAsync("/api/v1/orgs", new { name });
        Assert.True(response.StatusCode == HttpStatusCode.Created, await response.Content.ReadAsStringAsync());
        return (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetGuid();
    }

    /// <summary>Signs up a person, invites them to the organization with a role, and has them accept.</summary>
    public async Task<HttpClient> AddMemberAsync(HttpClient owner, Guid orgId, string email, string role)
    {
        var (member, _) = await SignUpAndLoginAsync(email);
        var invite = await owner.PostAsJsonAsync($"/api/v1/orgs/{orgId}/invitations", new { email, role });
        Assert.True(invite.StatusCode == HttpStatusCode.Created, await invite.Content.ReadAsStringAsync());
        var token = (await invite.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("token").GetString();
        var accepted = await member.PostAsJsonAsync("/api/v1/invitations/accept", new { token });
        Assert.True(accepted.StatusCode == HttpStatusCode.OK, await accepted.Content.ReadAsStringAsync());
        return member;
    }

    public static async Task<(Guid Id, string Key)> CreateKeyAsync(HttpClient caller, Guid orgId, params string[] scopes)
    {
        var response = await caller.PostAsJsonAsync($"/api/v1/orgs/{orgId}/keys", new { name = "test key", scopes = scopes.Length == 0 ? null : scopes });
        Assert.True(response.StatusCode == HttpStatusCode.Created, await response.Content.ReadAsStringAsync());
        var body = await response.Content.ReadFromJsonAsync<JsonElement>();
        return (body.GetProperty("details").GetProperty("id").GetGuid(), body.GetProperty("key").GetString()!);
    }
}

/// <summary>
/// The in-memory test server has no client address; a request may name one in <c>X-Test-Client-Address</c>, as a
/// real client's connection would have, so address-bearing records (sign-in events) can be tested.
/// </summary>
internal sealed class ClientAddressFilter : Microsoft.AspNetCore.Hosting.IStartupFilter
{
    public const string Header = "X-Test-Client-Address";

    public Action<Microsoft.AspNetCore.Builder.IApplicationBuilder> Configure(Action<Microsoft.AspNetCore.Builder.IApplicationBuilder> next) => app =>
    {
        app.Use(proceed => context =>
        {
            if (System.Net.IPAddress.TryParse(context.Request.Headers[Header].ToString(), out var address))
            {
                context.Connection.RemoteIpAddress = address;
            }

            return proceed(context);
        });
        next(app);
    };
}

public sealed class CapturingCredentialWriter : IOneTimeCredentialWriter
{
    public ConcurrentQueue<(string Title, string Account, string Secret)> Written { get; } = new();

    public void Write(string title, string account, string secret) => Written.Enqueue((title, account, secret));
}
