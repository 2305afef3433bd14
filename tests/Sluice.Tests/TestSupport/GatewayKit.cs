using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Sluice.Gateway;

namespace Sluice.Tests.TestSupport;

/// <summary>Intent methods for gateway tests: an operator, a tenant with a key, providers, models and routes.</summary>
public static class GatewayKit
{
    public static async Task<HttpClient> OperatorAsync(SluiceFactory sluice)
    {
        var client = sluice.Anonymous();
        var (_, account, secret) = Assert.Single(sluice.Credentials.Written);
        var login = await client.PostAsJsonAsync("/api/v1/auth/login", new { email = account, password = secret });
        Assert.Equal(HttpStatusCode.OK, login.StatusCode);
        return client;
    }

    public static async Task<(HttpClient Owner, Guid OrgId, string Key)> TenantAsync(SluiceFactory sluice, string email = "tenant@example.com", params string[] scopes)
    {
        var (owner, _) = await sluice.SignUpAndLoginAsync(email);
        var orgId = await SluiceFactory.CreateOrganizationAsync(owner, "Tenant " + email);
        var (_, key) = await SluiceFactory.CreateKeyAsync(owner, orgId, scopes.Length == 0 ? ["inference"] : scopes);
        return (owner, orgId, key);
    }

    public static async Task ProviderAsync(HttpClient @operator, string name, Uri baseUrl, string kind = "openai-compatible", string? apiKey = null)
    {
        var response = await @operator.PostAsJsonAsync("/api/v1/providers", new { name, kind, baseUrl = baseUrl.ToString(), apiKey });
        Assert.True(response.StatusCode == HttpStatusCode.Created, await response.Content.ReadAsStringAsync());
    }

    public static async Task ModelAsync(HttpClient @operator, string id)
    {
        var response = await @operator.PostAsJsonAsync("/api/v1/catalog/models", new { id });
        Assert.True(response.StatusCode == HttpStatusCode.Created, await response.Content.ReadAsStringAsync());
    }

    public static async Task<Guid> RouteAsync(HttpClient @operator, string model, string provider, string upstreamModel, int priority = 0, bool retainsData = false, bool trainsOnData = false)
    {
        var response = await @operator.PostAsJsonAsync("/api/v1/catalog/routes", new { model, provider, upstreamModel, priority, weight = 1, retainsData, trainsOnData });
        Assert.True(response.StatusCode == HttpStatusCode.Created, await response.Content.ReadAsStringAsync());
        return (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetGuid();
    }

    /// <summary>A provider <c>p</c> at <paramref name="baseUrl"/> and a model <c>m</c> routed to it.</summary>
    public static async Task<Guid> ModelOnAsync(HttpClient @operator, Uri baseUrl)
    {
        await ProviderAsync(@operator, "p", baseUrl);
        await ModelAsync(@operator, "m");
        return await RouteAsync(@operator, "m", "p", "m");
    }

    public static StringContent Json(string json) => new(json, Encoding.UTF8, "application/json");

    public static StringContent Chat(string model, string content, bool stream = false, bool includeUsage = false) => Json(JsonSerializer.Serialize(new Dictionary<string, object?>
    {
        ["model"] = model,
        ["messages"] = new[] { new { role = "user", content } },
        ["stream"] = stream,
        ["stream_options"] = includeUsage ? new { include_usage = true } : null,
    }));

    /// <summary>
    /// Reloads each replica's catalog now, as its refresher does every Gateway:CatalogRefreshInterval, instead of
    /// sleeping through an interval; then checks that each sees <paramref name="model"/> (priced, when
    /// <paramref name="priced"/>), so a test never runs against a catalog it only hopes is current.
    /// </summary>
    public static async Task CatalogSeesAsync(string model, bool priced, params SluiceFactory[] replicas)
    {
        foreach (var replica in replicas)
        {
            var catalog = replica.Services.GetRequiredService<Catalog>();
            await catalog.RefreshAsync(default);
            var found = catalog.Find(model);
            Assert.True(found is not null, $"the catalog has no model {model}");
            Assert.True(!priced || found.Routes.Any(r => r.Pricing is not null), $"the catalog has no price for {model}");
        }
    }

    /// <summary>Waits for the usage writer to have stored at least <paramref name="count"/> events.</summary>
    public static async Task<List<UsageEvent>> UsageAsync(TestDatabase database, int count)
    {
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (true)
        {
            await using var db = database.CreateContext();
            var events = await db.UsageEvents.AsNoTracking().ToListAsync();
            if (events.Count >= count || DateTime.UtcNow > deadline)
            {
                return events.OrderBy(e => e.StartedAt).ThenBy(e => e.Id).ToList();
            }

            await Task.Delay(50);
        }
    }

    /// <summary>The data lines of an SSE body.</summary>
    public static List<string> Events(string body) =>
        body.Split("\n\n", StringSplitOptions.RemoveEmptyEntries).Where(e => e.StartsWith("data: ", StringComparison.Ordinal)).Select(e => e["data: ".Length..]).ToList();
}
