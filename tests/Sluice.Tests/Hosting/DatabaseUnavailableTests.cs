using System.Net;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Sluice.Gateway;
using Sluice.Storage;
using Sluice.Tests.TestSupport;
using static Sluice.Tests.TestSupport.GatewayKit;

namespace Sluice.Tests.Hosting;

/// <summary>
/// One server on PostgreSQL behind <see cref="FaultProxy"/>, the database cut away: what is cached keeps being served,
/// everything else is a 503 with Retry-After in its protocol's error shape (never a 500), and usage waits in a bounded
/// backlog that is written when the database returns.
/// </summary>
public sealed class DatabaseUnavailableTests
{
    [Fact]
    public async Task A_cached_key_and_organization_are_served_through_an_outage_and_a_key_revoked_meanwhile_is_refused_after_it()
    {
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Postgres);
        var (proxy, proxied) = FaultProxy.For(database.ConnectionString);
        await using var proxyScope = proxy;
        var clock = new ManualTimeProvider(DateTimeOffset.UtcNow);
        await using var sluice = new SluiceFactory(database, new Dictionary<string, string?> { ["ConnectionStrings:Sluice"] = proxied }, clock);
        var (_, _, key) = await TenantAsync(sluice);
        using var client = sluice.WithKey(key);
        Assert.Equal(HttpStatusCode.OK, (await client.PostAsync("/v1/chat/completions", Chat("echo", "before"))).StatusCode);

        proxy.Cut();
        clock.Advance(TimeSpan.FromMinutes(5)); // past the organization-policy cache (2 s) and the key cache (1 min)
        var during = await client.PostAsync("/v1/chat/completions", Chat("echo", "during"));
        Assert.Equal(HttpStatusCode.OK, during.StatusCode);
        Assert.True(proxy.Refused > 0, "the server did try the database");

        proxy.Restore();
        await database.ExecuteAsync("UPDATE api_keys SET revoked_at = now(), updated_at = now()"); // revoked by another replica
        clock.Advance(TimeSpan.FromMinutes(2)); // past the re-check of a key served during the outage
        var after = await client.PostAsync("/v1/chat/completions", Chat("echo", "after"));
        Assert.Equal(HttpStatusCode.Unauthorized, after.StatusCode);
    }

    [Fact]
    public async Task Without_the_database_v1_and_api_answer_503_with_Retry_After_in_their_own_error_shapes()
    {
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Postgres);
        var (proxy, proxied) = FaultProxy.For(database.ConnectionString);
        await using var proxyScope = proxy;
        await using var sluice = new SluiceFactory(database, new Dictionary<string, string?> { ["ConnectionStrings:Sluice"] = proxied });
        var (owner, orgId, key) = await TenantAsync(sluice);
        using var client = sluice.WithKey(key); // never used before the outage: nothing cached

        proxy.Cut();
        var v1 = await client.PostAsync("/v1/chat/completions", Chat("echo", "hi"));
        var api = await owner.GetAsync($"/api/v1/orgs/{orgId}/keys");
        var signIn = await sluice.Anonymous().PostAsync("/api/v1/auth/login", Json("""{"email":"tenant@example.com","password":"a sturdy passphrase"}"""));

        Assert.Equal(HttpStatusCode.ServiceUnavailable, v1.StatusCode);
        Assert.Equal(TimeSpan.FromSeconds(5), v1.Headers.RetryAfter?.Delta);
        using (var error = JsonDocument.Parse(await v1.Content.ReadAsStringAsync()))
        {
            var e = error.RootElement.GetProperty("error");
            Assert.Equal(("server_error", "database_unavailable"), (e.GetProperty("type").GetString(), e.GetProperty("code").GetString()));
            Assert.True(e.TryGetProperty("param", out _));
            Assert.False(string.IsNullOrEmpty(e.GetProperty("message").GetString()));
        }

        foreach (var response in new[] { api, signIn })
        {
            Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
            Assert.Equal(TimeSpan.FromSeconds(5), response.Headers.RetryAfter?.Delta);
            Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
            using var problem = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
            Assert.Equal(503, problem.RootElement.GetProperty("status").GetInt32());
            Assert.Equal("The database is unavailable.", problem.RootElement.GetProperty("title").GetString());
        }

        Assert.DoesNotContain(sluice.Logs.Lines, l => l.Contains("Unhandled", StringComparison.Ordinal));
        proxy.Restore();
        Assert.Equal(HttpStatusCode.OK, (await client.PostAsync("/v1/chat/completions", Chat("echo", "hi"))).StatusCode);
    }

    [Fact]
    public async Task Usage_waits_in_a_bounded_backlog_through_an_outage_the_overflow_is_counted_and_logged_once_and_the_rest_is_written_after()
    {
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Postgres);
        var (proxy, proxied) = FaultProxy.For(database.ConnectionString);
        await using var proxyScope = proxy;
        await using var sluice = new SluiceFactory(database, new Dictionary<string, string?>
        {
            ["ConnectionStrings:Sluice"] = proxied,
            ["Gateway:UsageQueueCapacity"] = "100",
            ["Gateway:UsageFlushInterval"] = "00:00:00.020",
        });
        var (_, _, key) = await TenantAsync(sluice);
        using var client = sluice.WithKey(key);
        var meter = sluice.Services.GetRequiredService<UsageMeter>();
        Assert.Equal(HttpStatusCode.OK, (await client.PostAsync("/v1/chat/completions", Chat("echo", "warm"))).StatusCode);
        await WaitUntilAsync(() => meter.Written == 1, "the first event written");

        proxy.Cut();
        const int During = 800;
        var peak = 0;
        await Parallel.ForAsync(0, During, new ParallelOptions { MaxDegreeOfParallelism = 8 }, async (_, ct) =>
        {
            using var response = await client.PostAsync("/v1/chat/completions", Chat("echo", "during"), ct);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            InterlockedMax(ref peak, meter.Queued);
        });

        // At most the backlog plus the one batch the writer holds stays in memory; the rest is dropped and counted.
        Assert.InRange(peak, 1, 100 + 500);
        Assert.True(meter.Dropped >= During - 600, $"dropped {meter.Dropped}");
        Assert.Equal(During, meter.Queued + meter.Dropped);
        Assert.Single(sluice.Logs.Lines, l => l.Contains("usage backlog is full", StringComparison.Ordinal));
        // The replica stays ready (every replica shares the outage); the usage entry says what waits and what was dropped.
        var readyz = await sluice.CreateClient().GetAsync("/readyz");
        Assert.Equal(HttpStatusCode.OK, readyz.StatusCode);
        using (var body = JsonDocument.Parse(await readyz.Content.ReadAsStringAsync()))
        {
            Assert.Equal("degraded", body.RootElement.GetProperty("status").GetString());
            Assert.Equal("degraded", body.RootElement.GetProperty("checks").GetProperty("database").GetProperty("status").GetString());
            var usage = body.RootElement.GetProperty("checks").GetProperty("usage");
            Assert.Equal("degraded", usage.GetProperty("status").GetString());
            Assert.Contains($"{meter.Dropped} dropped", usage.GetProperty("detail").GetString(), StringComparison.Ordinal);
        }

        proxy.Restore();
        await WaitUntilAsync(() => meter.Queued == 0, "the backlog written");
        Assert.Equal(1 + During - meter.Dropped, meter.Written);
        Assert.Equal(meter.Written, Convert.ToInt64(await database.ScalarAsync("SELECT count(*) FROM usage_events"), System.Globalization.CultureInfo.InvariantCulture));
    }

    private static void InterlockedMax(ref int target, int value)
    {
        int current;
        while (value > (current = Volatile.Read(ref target)) && Interlocked.CompareExchange(ref target, value, current) != current)
        {
        }
    }

    private static Task WaitUntilAsync(Func<bool> condition, string what) => Eventually.TrueAsync(condition, what, TimeSpan.FromSeconds(60));
}
