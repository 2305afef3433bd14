using System.Collections.Concurrent;
using System.Net;
using System.Net.Http.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using Sluice.Billing;
using Sluice.Storage;
using Sluice.Tests.TestSupport;
using static Sluice.Tests.TestSupport.GatewayKit;

namespace Sluice.Tests.Billing;

/// <summary>A tenant's webhook URL cannot reach Sluice's own machine or network, by name, by address or by redirect.</summary>
public sealed class WebhookSafetyTests
{
    [Theory]
    [InlineData("127.0.0.1", false)]
    [InlineData("127.8.9.10", false)]
    [InlineData("10.1.2.3", false)]
    [InlineData("172.16.0.1", false)]
    [InlineData("172.31.255.255", false)]
    [InlineData("192.168.1.1", false)]
    [InlineData("169.254.169.254", false)] // cloud metadata
    [InlineData("100.64.0.1", false)]
    [InlineData("0.0.0.0", false)]
    [InlineData("224.0.0.1", false)]
    [InlineData("255.255.255.255", false)]
    [InlineData("::1", false)]
    [InlineData("::", false)]
    [InlineData("fe80::1", false)]
    [InlineData("fd00::1", false)]
    [InlineData("::ffff:127.0.0.1", false)]
    [InlineData("::ffff:169.254.169.254", false)]
    [InlineData("64:ff9b::a9fe:a9fe", false)] // NAT64 of 169.254.169.254
    [InlineData("8.8.8.8", true)]
    [InlineData("172.32.0.1", true)]
    [InlineData("2606:4700:4700::1111", true)]
    [InlineData("::ffff:8.8.8.8", true)]
    public void Only_public_addresses_are_reachable_by_default(string address, bool permitted) =>
        Assert.Equal(permitted, WebhookDelivery.IsPermitted(IPAddress.Parse(address), []));

    [Fact]
    public void An_operator_allows_a_network_and_only_that_network()
    {
        var allowed = WebhookDelivery.AllowedNetworks(new BillingOptions { WebhookAllowedNetworks = ["10.20.0.0/16", "fd12::/16"] });
        Assert.True(WebhookDelivery.IsPermitted(IPAddress.Parse("10.20.3.4"), allowed));
        Assert.True(WebhookDelivery.IsPermitted(IPAddress.Parse("::ffff:10.20.3.4"), allowed));
        Assert.True(WebhookDelivery.IsPermitted(IPAddress.Parse("fd12::9"), allowed));
        Assert.False(WebhookDelivery.IsPermitted(IPAddress.Parse("10.21.0.1"), allowed));
        Assert.False(WebhookDelivery.IsPermitted(IPAddress.Parse("127.0.0.1"), allowed));
    }

    [Fact]
    public async Task A_host_name_that_resolves_to_loopback_is_refused_when_connecting_and_the_refusal_is_logged()
    {
        await using var receiver = await Receiver.StartAsync();
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Sqlite);
        await using var sluice = new SluiceFactory(database, new Dictionary<string, string?> { ["Billing:AlertInterval"] = "00:00:00.100" });
        var (owner, orgId, _) = await TenantAsync(sluice);

        // The address itself is refused when it is configured…
        var literal = await owner.PutAsJsonAsync($"/api/v1/orgs/{orgId}/wallet/alert", new { thresholdMicros = 5_000_000, url = $"{receiver.Url}/hooks/balance" });
        Assert.Equal(HttpStatusCode.BadRequest, literal.StatusCode);
        Assert.Contains("Billing:WebhookAllowedNetworks", await literal.Content.ReadAsStringAsync(), StringComparison.Ordinal);

        // …and a name is checked by the addresses it resolves to when the webhook connects (the wallet is empty: below).
        var byName = await owner.PutAsJsonAsync($"/api/v1/orgs/{orgId}/wallet/alert", new { thresholdMicros = 5_000_000, url = $"http://localhost:{receiver.Port}/hooks/balance" });
        Assert.Equal(HttpStatusCode.OK, byName.StatusCode);
        await WaitForAsync(() => sluice.Logs.All.Contains($"Low-balance webhook for organization {orgId} not sent: its host resolves only to addresses webhooks may not reach", StringComparison.Ordinal));
        Assert.Empty(receiver.Hits);
    }

    [Fact]
    public async Task A_redirect_is_not_followed_even_within_an_allowed_network()
    {
        await using var receiver = await Receiver.StartAsync();
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Sqlite);
        await using var sluice = new SluiceFactory(database, new Dictionary<string, string?>
        {
            ["Billing:AlertInterval"] = "00:00:00.100",
            ["Billing:WebhookAllowedNetworks:0"] = "127.0.0.0/8",
        });
        var (owner, orgId, _) = await TenantAsync(sluice);

        var configured = await owner.PutAsJsonAsync($"/api/v1/orgs/{orgId}/wallet/alert", new { thresholdMicros = 5_000_000, url = $"{receiver.Url}/hooks/redirect" });
        Assert.Equal(HttpStatusCode.OK, configured.StatusCode);

        // Not delivered (a 307), so the alert re-arms and tries again: two tries, and never the redirect's target.
        await WaitForAsync(() => receiver.Hits.Count(h => h == "/hooks/redirect") >= 2);
        Assert.DoesNotContain("/hooks/internal", receiver.Hits);
        Assert.Contains($"Low-balance webhook for organization {orgId} not sent: the receiver answered 307; redirects are not followed", sluice.Logs.All, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_network_that_is_not_CIDR_is_refused_at_start()
    {
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Sqlite);
        var (exitCode, _, stderr) = await SluiceProcess.RunAsync(
            ["serve", "--urls", $"http://127.0.0.1:{SluiceProcess.FreePort()}", "--data-dir", database.Directory, "--set", "Billing:WebhookAllowedNetworks:0=the office"]);

        Assert.Equal(1, exitCode);
        Assert.Contains("Billing:WebhookAllowedNetworks: 'the office' is not a network in CIDR notation", stderr, StringComparison.Ordinal);
    }

    private static Task WaitForAsync(Func<bool> condition) => Eventually.TrueAsync(condition, "the alert round's outcome", TimeSpan.FromSeconds(15));

    /// <summary>A webhook receiver on loopback: counts hits by path; /hooks/redirect answers 307 to /hooks/internal.</summary>
    private sealed class Receiver : IAsyncDisposable
    {
        private readonly WebApplication _app;

        private Receiver(WebApplication app) => _app = app;

        public ConcurrentQueue<string> Hits { get; } = new();

        public string Url => _app.Urls.First();

        public int Port => new Uri(Url).Port;

        public static async Task<Receiver> StartAsync()
        {
            var builder = WebApplication.CreateSlimBuilder();
            builder.Logging.ClearProviders();
            builder.WebHost.UseUrls("http://127.0.0.1:0");
            var app = builder.Build();
            var receiver = new Receiver(app);
            app.MapPost("/hooks/{name}", (HttpContext context, string name) =>
            {
                receiver.Hits.Enqueue(context.Request.Path);
                return name == "redirect" ? Results.Redirect("/hooks/internal", permanent: false, preserveMethod: true) : Results.Ok();
            });
            await app.StartAsync();
            return receiver;
        }

        public async ValueTask DisposeAsync()
        {
            await _app.StopAsync();
            await _app.DisposeAsync();
        }
    }
}
