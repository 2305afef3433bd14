using System.Collections.Concurrent;
using System.Net;
using System.Net.Http.Json;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Sluice.Billing;
using Sluice.Storage;
using Sluice.Tests.TestSupport;
using static Sluice.Tests.TestSupport.GatewayKit;

namespace Sluice.Tests.Billing;

public sealed class LowBalanceAlertTests
{
    [Fact]
    public async Task A_signed_webhook_fires_once_per_crossing_below_the_threshold()
    {
        var received = new ConcurrentQueue<(string Body, string Signature)>();
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        await using var receiver = builder.Build();
        receiver.MapPost("/hooks/balance", async (HttpContext context) =>
        {
            using var reader = new StreamReader(context.Request.Body);
            received.Enqueue((await reader.ReadToEndAsync(), context.Request.Headers["Sluice-Signature"].ToString()));
            return Results.Ok();
        });
        await receiver.StartAsync();

        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Sqlite);
        await using var sluice = new SluiceFactory(database, new Dictionary<string, string?>
        {
            ["Billing:AlertInterval"] = "01:00:00", // the test runs each round itself (CheckAsync), so it knows when one has run
            ["Billing:WebhookAllowedNetworks:0"] = "127.0.0.1/32", // the receiver is on loopback, which webhooks may not reach by default
        });
        using var op = await OperatorAsync(sluice);
        var (owner, orgId, _) = await TenantAsync(sluice);
        await op.PostAsJsonAsync($"/api/v1/admin/orgs/{orgId}/wallet/credits", new { amountMicros = 10_000_000, reason = "fund" });
        var configured = await owner.PutAsJsonAsync($"/api/v1/orgs/{orgId}/wallet/alert", new { thresholdMicros = 5_000_000, url = receiver.Urls.First() + "/hooks/balance" });
        var secret = (await configured.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("signingSecret").GetString()!;
        var invalid = await owner.PutAsJsonAsync($"/api/v1/orgs/{orgId}/wallet/alert", new { thresholdMicros = -1, url = "ftp://x" });

        await Spend(sluice, orgId, 6_000_000, "s1"); // 10 → 4: below
        await CheckAsync(sluice);
        Assert.Single(received);
        await Spend(sluice, orgId, 1_000_000, "s2"); // 4 → 3: still below, no second alert
        await CheckAsync(sluice);
        Assert.Single(received);
        await op.PostAsJsonAsync($"/api/v1/admin/orgs/{orgId}/wallet/credits", new { amountMicros = 10_000_000, reason = "top up" }); // 13: re-arms
        await CheckAsync(sluice);
        Assert.Single(received);
        await Spend(sluice, orgId, 9_000_000, "s3"); // 13 → 4: a new crossing
        await CheckAsync(sluice);
        await CheckAsync(sluice); // and only one alert for it
        Assert.Equal(2, received.Count);

        Assert.Equal(HttpStatusCode.OK, configured.StatusCode);
        Assert.StartsWith("whsec_", secret, StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.BadRequest, invalid.StatusCode);
        foreach (var (body, signature) in received)
        {
            var parts = signature.Split(',').Select(p => p.Split('=', 2)).ToDictionary(p => p[0], p => p[1]);
            var expected = Convert.ToHexStringLower(HMACSHA256.HashData(Encoding.UTF8.GetBytes(secret), Encoding.UTF8.GetBytes($"{parts["t"]}.{body}")));
            Assert.Equal(expected, parts["v1"]);
            using var payload = JsonDocument.Parse(body);
            Assert.Equal("wallet.low_balance", payload.RootElement.GetProperty("type").GetString());
            Assert.Equal(orgId, payload.RootElement.GetProperty("organizationId").GetGuid());
            Assert.Equal(4_000_000, payload.RootElement.GetProperty("balanceMicros").GetInt64());
        }

        Assert.DoesNotContain(secret, await Canary.DumpDatabaseAsync(database), StringComparison.Ordinal);
    }

    private static async Task Spend(SluiceFactory sluice, Guid orgId, long amount, string key)
    {
        await using var scope = sluice.Services.CreateAsyncScope();
        await scope.ServiceProvider.GetRequiredService<Ledger>().PostAsync(new LedgerPosting(key, "usage", orgId, null,
            [new LedgerLine(orgId, AccountTypes.CustomerWallet, -amount), new LedgerLine(null, AccountTypes.Revenue, amount)]), default);
    }

    /// <summary>One alert round, as the job runs it; a webhook it sends has been received when it returns.</summary>
    private static async Task CheckAsync(SluiceFactory sluice)
    {
        await using var scope = sluice.Services.CreateAsyncScope();
        await scope.ServiceProvider.GetRequiredService<LowBalanceAlerts>().CheckAsync(default);
    }
}
