using System.Net;
using System.Net.Http.Json;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Sluice.Gateway;
using Sluice.Storage;
using Sluice.WebConsole;
using Sluice.Tests.TestSupport;

namespace Sluice.Tests.WebConsole;

/// <summary>The organization's overview: the last 7 days' figures, money only for billing roles, and the get-started panel.</summary>
public sealed class OverviewPageTests
{
    [Fact]
    public async Task The_overview_shows_the_last_seven_days_requests_error_rate_percentiles_spend_and_balance_of_this_organization_only()
    {
        await using var kit = await ConsoleKit.StartAsync();
        var (owner, orgId) = await kit.OwnerAsync("owner@example.com");
        var (_, otherOrg) = await kit.OwnerAsync("other@example.com", "Other");
        var today = UsageSeed.TodayStart();

        // Today: 20 requests at 10, 20 … 200 ms, two of them failed, 1,000 µ-units each; three days ago: 5 at 1 s, 500 each.
        await UsageSeed.InsertAsync(kit, [.. Enumerable.Range(1, 20).Select(i => UsageSeed.Event(orgId, today.AddSeconds(i), latencyMs: 10 * i,
            status: i is 3 or 7 ? 500 : 200, costMicros: 1_000))]);
        await UsageSeed.InsertAsync(kit, [.. Enumerable.Range(1, 5).Select(i => UsageSeed.Event(orgId, today.AddDays(-3).AddSeconds(i), latencyMs: 1000, costMicros: 500))]);
        // Neither counted: eight days ago, and another organization's requests today.
        await UsageSeed.InsertAsync(kit, [UsageSeed.Event(orgId, today.AddDays(-8), latencyMs: 5, costMicros: 99_000)]);
        await UsageSeed.InsertAsync(kit, [.. Enumerable.Range(1, 7).Select(i => UsageSeed.Event(otherOrg, today.AddSeconds(i), latencyMs: 9_000, status: 500, costMicros: 77_000))]);
        await UsageSeed.CreditAsync(kit, orgId, 5_000_000);

        var page = await owner.GetAsync($"/orgs/{orgId}");

        Assert.Equal(HttpStatusCode.OK, page.Status);
        Assert.Equal("25", Stat(page, "stat-requests"));
        Assert.Equal("8.0%", Stat(page, "stat-error-rate"));
        Assert.Equal("130 ms", Stat(page, "stat-p50")); // nearest rank: the 13th of 25 sorted latencies
        Assert.Equal("1.0 s", Stat(page, "stat-p95")); // the 24th
        Assert.Equal("0.02 USD", Stat(page, "stat-spend-today"));
        Assert.Equal("0.0225 USD", Stat(page, "stat-spend-7d"));
        Assert.Equal("5.00 USD", Stat(page, "stat-balance"));
        Assert.StartsWith("0.00 USD", Stat(page, "stat-holds"));
        var bars = page.FindAll("svg.chart rect.bar");
        Assert.Equal(14, bars.Count); // requests and spend for each of 7 days
        Assert.Contains(bars, b => b.TextContent.Contains("20 requests", StringComparison.Ordinal));
        Assert.Equal(7, page.FindAll("#overview-days tbody tr").Count);
    }

    [Fact]
    public async Task A_viewer_and_a_member_see_requests_and_latency_but_no_money_and_a_stranger_gets_a_404_page()
    {
        await using var kit = await ConsoleKit.StartAsync();
        var (owner, orgId) = await kit.OwnerAsync("owner@example.com");
        var viewer = await kit.AddMemberAsync(owner, orgId, "viewer@example.com", "viewer");
        var member = await kit.AddMemberAsync(owner, orgId, "member@example.com", "member");
        var billing = await kit.AddMemberAsync(owner, orgId, "billing@example.com", "billing");
        var stranger = await kit.SignUpAsync("stranger@example.com");
        await UsageSeed.InsertAsync(kit, [.. Enumerable.Range(1, 4).Select(i => UsageSeed.Event(orgId, UsageSeed.TodayStart().AddSeconds(i), latencyMs: 100, costMicros: 250_000))]);
        await UsageSeed.CreditAsync(kit, orgId, 3_000_000);

        foreach (var reader in new[] { viewer, member })
        {
            var page = await reader.GetAsync($"/orgs/{orgId}");
            Assert.Equal(HttpStatusCode.OK, page.Status);
            Assert.Equal("4", Stat(page, "stat-requests"));
            Assert.Equal("100 ms", Stat(page, "stat-p50"));
            Assert.Null(page.Find("#stat-balance"));
            Assert.Null(page.Find("#stat-spend-today"));
            Assert.Null(page.Find("#stat-holds"));
            Assert.DoesNotContain("USD", page.Text(), StringComparison.Ordinal);
            Assert.DoesNotContain(page.FindAll("svg.chart"), c => c.GetAttribute("aria-label")!.Contains("Spend", StringComparison.Ordinal));
        }

        var billingPage = await billing.GetAsync($"/orgs/{orgId}");
        Assert.Equal("3.00 USD", Stat(billingPage, "stat-balance"));
        Assert.Equal("1.00 USD", Stat(billingPage, "stat-spend-today"));

        var strange = await stranger.GetAsync($"/orgs/{orgId}");
        Assert.Equal(HttpStatusCode.NotFound, strange.Status);
        Assert.DoesNotContain("stat-requests", strange.Body, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_new_organization_is_shown_how_to_get_started_until_it_has_a_key_and_a_request()
    {
        await using var kit = await ConsoleKit.StartAsync();
        var (owner, orgId) = await kit.OwnerAsync("owner@example.com");

        var fresh = await owner.GetAsync($"/orgs/{orgId}");
        Assert.NotNull(fresh.Find(".usage-start"));
        Assert.NotNull(fresh.Find($".usage-start a[href='/orgs/{orgId}/keys']"));
        Assert.NotNull(fresh.Find($".usage-start a[href='/orgs/{orgId}/playground']"));
        Assert.Equal("–", Stat(fresh, "stat-p50"));
        Assert.Equal("–", Stat(fresh, "stat-error-rate"));

        var (_, key) = await SluiceFactory.CreateKeyAsync(owner.Http, orgId, "inference");
        var withKey = await owner.GetAsync($"/orgs/{orgId}");
        Assert.NotNull(withKey.Find(".usage-start")); // a key, but no request yet
        Assert.Null(withKey.Find($".usage-start a[href='/orgs/{orgId}/keys']"));

        await UsageSeed.EchoAsync(kit, key);
        await Eventually.TrueAsync(async () => (await owner.GetAsync($"/orgs/{orgId}")).Find(".usage-start") is null, "the get-started panel to go once a request is metered");
        var started = await owner.GetAsync($"/orgs/{orgId}");
        Assert.Equal("1", Stat(started, "stat-requests"));
    }

    [Fact]
    public async Task Spend_on_the_overview_equals_what_the_ledger_charged_for_real_priced_requests()
    {
        await using var upstream = await FakeUpstream.StartAsync();
        upstream.Usage = (90, 10); // at 1 micro-unit a token: 100 micro-units a request
        await using var kit = await ConsoleKit.StartAsync(settings: new Dictionary<string, string?> { ["Billing:SettleInterval"] = "00:00:00.100" });
        using var op = await GatewayKit.OperatorAsync(kit.Sluice);
        await GatewayKit.ProviderAsync(op, "p", upstream.BaseUrl);
        await GatewayKit.ModelAsync(op, "m");
        var route = await GatewayKit.RouteAsync(op, "m", "p", "m");
        using var price = await op.PostAsJsonAsync($"/api/v1/catalog/routes/{route}/prices", new { inputPerMillionMicros = 1_000_000, outputPerMillionMicros = 1_000_000 });
        Assert.True(price.IsSuccessStatusCode, await price.Content.ReadAsStringAsync());
        await GatewayKit.CatalogSeesAsync("m", priced: true, kit.Sluice);
        var (owner, orgId) = await kit.OwnerAsync("owner@example.com");
        await UsageSeed.CreditAsync(kit, orgId, 1_000_000);
        var (_, key) = await SluiceFactory.CreateKeyAsync(owner.Http, orgId, "inference");
        using var client = new HttpClient { BaseAddress = new Uri(kit.RootUrl) };
        client.DefaultRequestHeaders.Authorization = new("Bearer", key);
        for (var i = 0; i < 3; i++)
        {
            using var response = await client.PostAsync("/v1/chat/completions", GatewayKit.Chat("m", "hello"));
            Assert.True(response.StatusCode == HttpStatusCode.OK, await response.Content.ReadAsStringAsync());
        }

        long revenue = 0;
        await Eventually.TrueAsync(async () =>
        {
            await using var db = kit.Database.CreateContext();
            revenue = await db.LedgerAccounts.Where(a => a.Type == Sluice.Billing.AccountTypes.Revenue).SumAsync(a => a.BalanceMicros);
            return revenue == 300 && Stat(await owner.GetAsync($"/orgs/{orgId}"), "stat-requests") == "3";
        }, "three priced requests to be settled in the ledger and metered");
        var page = await owner.GetAsync($"/orgs/{orgId}");
        Assert.Equal(ConsoleFormat.Money(revenue, "USD"), Stat(page, "stat-spend-today"));
        Assert.Equal(ConsoleFormat.Money(revenue, "USD"), Stat(page, "stat-spend-7d"));
    }

    private static string Stat(ConsoleResponse page, string id) =>
        page.Find($"#{id} .value")?.TextContent.Trim() ?? throw new Xunit.Sdk.XunitException($"no #{id} on the page: {page.Text()}");
}

/// <summary>Usage for the overview and usage tests: metadata rows as the usage writer stores them, real /v1 calls, wallet credits.</summary>
internal static class UsageSeed
{
    public static DateTimeOffset TodayStart()
    {
        var now = DateTimeOffset.UtcNow;
        return new DateTimeOffset(now.Year, now.Month, now.Day, 0, 0, 0, TimeSpan.Zero);
    }

    public static UsageEvent Event(Guid orgId, DateTimeOffset at, int latencyMs = 100, int status = 200, long costMicros = 0, string model = "alpha",
        Guid? keyId = null, long promptTokens = 10, long completionTokens = 5, string? requestId = null) => new()
    {
        Id = Guid.NewGuid(),
        RequestId = requestId ?? "req_" + Guid.NewGuid().ToString("N")[..20],
        OrganizationId = orgId,
        KeyId = keyId,
        Endpoint = "chat",
        Model = model,
        Status = status,
        ErrorType = status >= 400 ? "upstream_error" : null,
        Attempts = 1,
        PromptTokens = promptTokens,
        CompletionTokens = completionTokens,
        LatencyMicros = latencyMs * 1000L,
        CostMicros = costMicros,
        StartedAt = at,
    };

    public static async Task InsertAsync(ConsoleKit kit, IReadOnlyList<UsageEvent> events)
    {
        await using var scope = kit.Sluice.Services.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<SluiceDbContext>();
        db.UsageEvents.AddRange(events);
        await db.SaveChangesAsync();
    }

    public static async Task CreditAsync(ConsoleKit kit, Guid orgId, long micros)
    {
        var op = await GatewayKit.OperatorAsync(kit.Sluice);
        using var credit = await op.PostAsJsonAsync($"/api/v1/admin/orgs/{orgId}/wallet/credits", new { amountMicros = micros, reason = "test credit" });
        Assert.True(credit.StatusCode == HttpStatusCode.Created, await credit.Content.ReadAsStringAsync());
    }

    /// <summary>One real chat completion with the built-in echo model, through the key; returns its request id.</summary>
    public static async Task<string> EchoAsync(ConsoleKit kit, string key)
    {
        using var client = new HttpClient { BaseAddress = new Uri(kit.RootUrl) };
        client.DefaultRequestHeaders.Authorization = new("Bearer", key);
        using var response = await client.PostAsync("/v1/chat/completions", GatewayKit.Chat("echo", "hello"));
        Assert.True(response.StatusCode == HttpStatusCode.OK, await response.Content.ReadAsStringAsync());
        return response.Headers.TryGetValues("x-request-id", out var ids) ? ids.First() : "";
    }
}
