using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Sluice.Storage;
using Sluice.Tests.TestSupport;
using static Sluice.Tests.TestSupport.GatewayKit;

namespace Sluice.Tests.Billing;

public sealed class UsageReportTests
{
    [Fact]
    public async Task Usage_and_spend_group_by_model_key_and_day_with_what_each_request_was_charged()
    {
        await using var upstream = await FakeUpstream.StartAsync();
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Sqlite);
        await using var sluice = new SluiceFactory(database);
        using var op = await OperatorAsync(sluice);
        await ProviderAsync(op, "p", upstream.BaseUrl);
        await ModelAsync(op, "m");
        var route = await RouteAsync(op, "m", "p", "m");
        await op.PostAsJsonAsync($"/api/v1/catalog/routes/{route}/prices", new { inputPerMillionMicros = 1_000_000, outputPerMillionMicros = 2_000_000, cachedInputPerMillionMicros = 500_000 });
        var (owner, orgId, keyA) = await TenantAsync(sluice);
        var (_, keyB) = await SluiceFactory.CreateKeyAsync(owner, orgId, "inference");
        await op.PostAsJsonAsync($"/api/v1/admin/orgs/{orgId}/wallet/credits", new { amountMicros = 1_000_000, reason = "fund" });
        var (viewer, _) = await Identity.OrganizationTests.JoinAsync(sluice, owner, orgId, "viewer@example.com", "viewer");
        await CatalogSeesAsync("m", priced: true, sluice);
        using var a = sluice.WithKey(keyA);
        using var b = sluice.WithKey(keyB);

        for (var i = 0; i < 3; i++)
        {
            Assert.Equal(HttpStatusCode.OK, (await a.PostAsync("/v1/chat/completions", Chat("m", "hi"))).StatusCode);
        }

        Assert.Equal(HttpStatusCode.OK, (await b.PostAsync("/v1/chat/completions", Chat("m", "hi"))).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await b.PostAsync("/v1/chat/completions", Chat("echo", "hi"))).StatusCode);
        await UsageAsync(database, 5);

        var byModel = await owner.GetFromJsonAsync<JsonElement>($"/api/v1/orgs/{orgId}/usage?groupBy=model");
        var byKey = await owner.GetFromJsonAsync<JsonElement>($"/api/v1/orgs/{orgId}/usage?groupBy=key");
        var byDay = await owner.GetFromJsonAsync<JsonElement>($"/api/v1/orgs/{orgId}/usage");

        // 11 prompt tokens of which 3 cached, 7 completion: 8×1 + 3×0.5 + 7×2 = 23.5 → 24 micro-units a request.
        var rows = byModel.GetProperty("rows").EnumerateArray().ToDictionary(r => r.GetProperty("group").GetString()!, r => (Requests: r.GetProperty("requests").GetInt64(), Cost: r.GetProperty("costMicros").GetInt64()));
        Assert.Equal((1L, 0L), rows["echo"]);
        Assert.Equal((4L, 96L), rows["m"]);
        Assert.Equal(2, byKey.GetProperty("rows").GetArrayLength());
        Assert.Equal(5, Assert.Single(byDay.GetProperty("rows").EnumerateArray()).GetProperty("requests").GetInt64());
        Assert.Equal(96, byDay.GetProperty("totals").GetProperty("costMicros").GetInt64());
        Assert.Equal(HttpStatusCode.BadRequest, (await owner.GetAsync($"/api/v1/orgs/{orgId}/usage?groupBy=week")).StatusCode);
        Assert.Equal(HttpStatusCode.BadRequest, (await owner.GetAsync($"/api/v1/orgs/{orgId}/usage?from=2026-01-01T00:00:00Z&to=2025-01-01T00:00:00Z")).StatusCode);
        Assert.Equal(HttpStatusCode.Forbidden, (await viewer.GetAsync($"/api/v1/orgs/{orgId}/usage")).StatusCode);
    }
}

public sealed class StatementTests
{
    [Fact]
    public async Task A_monthly_statement_comes_as_json_csv_and_printable_html()
    {
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Sqlite);
        await using var sluice = new SluiceFactory(database);
        using var op = await OperatorAsync(sluice);
        var (owner, _) = await sluice.SignUpAndLoginAsync("owner@example.com");
        var orgId = await SluiceFactory.CreateOrganizationAsync(owner, "Acme <b>& Co</b>");
        await op.PostAsJsonAsync($"/api/v1/admin/orgs/{orgId}/wallet/credits", new { amountMicros = 10_000_000, reason = "first, \"quoted\"" });
        await op.PostAsJsonAsync($"/api/v1/admin/orgs/{orgId}/wallet/credits", new { amountMicros = 2_500_000, reason = "second" });
        var month = DateTimeOffset.UtcNow.ToString("yyyy-MM", System.Globalization.CultureInfo.InvariantCulture);

        var json = await owner.GetFromJsonAsync<JsonElement>($"/api/v1/orgs/{orgId}/statements/{month}");
        var csv = await owner.GetStringAsync($"/api/v1/orgs/{orgId}/statements/{month}?format=csv");
        var html = await owner.GetAsync($"/api/v1/orgs/{orgId}/statements/{month}?format=html");
        var htmlText = await html.Content.ReadAsStringAsync();

        Assert.Equal(0, json.GetProperty("openingMicros").GetInt64());
        Assert.Equal(12_500_000, json.GetProperty("closingMicros").GetInt64());
        Assert.Equal(12_500_000, json.GetProperty("creditsMicros").GetInt64());
        Assert.Equal(2, json.GetProperty("lines").GetArrayLength());
        var csvLines = csv.TrimEnd('\n').Split('\n');
        Assert.Equal("time,type,reference,amount,balance", csvLines[0]);
        Assert.Contains("\"first, \"\"quoted\"\"\"", csvLines[1], StringComparison.Ordinal);
        Assert.EndsWith(",2.500000,12.500000", csvLines[2], StringComparison.Ordinal);
        Assert.Equal("text/html", html.Content.Headers.ContentType?.MediaType);
        Assert.Contains($"Statement for {month}", htmlText, StringComparison.Ordinal);
        Assert.Contains("Acme &lt;b&gt;&amp; Co&lt;/b&gt;", htmlText, StringComparison.Ordinal);
        Assert.DoesNotContain("<b>&", htmlText, StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.BadRequest, (await owner.GetAsync($"/api/v1/orgs/{orgId}/statements/2026-13")).StatusCode);
        Assert.Equal(HttpStatusCode.BadRequest, (await owner.GetAsync($"/api/v1/orgs/{orgId}/statements/{month}?format=pdf")).StatusCode);
    }
}

public sealed class ShortFormTests
{
    [Fact]
    public async Task Usage_and_wallet_short_forms_take_the_organization_from_the_query_or_the_key()
    {
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Sqlite);
        await using var sluice = new SluiceFactory(database);
        var (owner, orgId, _) = await TenantAsync(sluice);
        var (_, otherOrg, _) = await TenantAsync(sluice, "other@example.com");
        var (_, reader) = await SluiceFactory.CreateKeyAsync(owner, orgId, "management:read");
        using var key = sluice.WithKey(reader);

        var byKey = await key.GetFromJsonAsync<JsonElement>("/api/v1/usage");
        var walletByKey = await key.GetFromJsonAsync<JsonElement>("/api/v1/wallet");
        var byQuery = await owner.GetAsync($"/api/v1/usage?orgId={orgId}");
        var foreign = await owner.GetAsync($"/api/v1/wallet?orgId={otherOrg}");
        var keyForeign = await key.GetAsync($"/api/v1/usage?orgId={otherOrg}");

        Assert.Equal(orgId, byKey.GetProperty("organizationId").GetGuid());
        Assert.Equal(orgId, walletByKey.GetProperty("organizationId").GetGuid());
        Assert.Equal(HttpStatusCode.OK, byQuery.StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, foreign.StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, keyForeign.StatusCode);
    }
}
