using System.ClientModel;
using System.ClientModel.Primitives;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.EntityFrameworkCore;
using OpenAI;
using Sluice.Storage;
using Sluice.Tests.TestSupport;
using static Sluice.Tests.TestSupport.GatewayKit;

namespace Sluice.Tests.Gateway;

/// <summary>
/// <c>/v1/models</c>: ids with '/' (escaped or not), aliases an operator gives a catalog model (admin, validation,
/// audit, calls, grants), and only models the caller can use listed.
/// </summary>
public sealed class ModelsTests
{
    private const string Llama = "meta-llama/Llama-3.1-8B-Instruct";

    [Fact]
    public async Task A_model_id_with_a_slash_is_found_escaped_or_not_by_raw_HTTP_the_SDK_and_the_admin_API()
    {
        await using var upstream = await FakeUpstream.StartAsync();
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Sqlite);
        await using var sluice = new SluiceFactory(database);
        using var op = await OperatorAsync(sluice);
        await ProviderAsync(op, "p", upstream.BaseUrl);
        await ModelAsync(op, Llama);
        await RouteAsync(op, Llama, "p", "llama");
        await ModelAsync(op, "meta-llama/Gone");
        var (_, _, key) = await TenantAsync(sluice);
        using var client = sluice.WithKey(key);

        foreach (var path in new[] { "/v1/models/meta-llama%2FLlama-3.1-8B-Instruct", "/v1/models/meta-llama%2fLlama-3.1-8B-Instruct", "/v1/models/" + Llama })
        {
            var found = await client.GetAsync(path);
            Assert.True(found.StatusCode == HttpStatusCode.OK, $"{path}: {(int)found.StatusCode} {await found.Content.ReadAsStringAsync()}");
            var model = await found.Content.ReadFromJsonAsync<JsonElement>();
            Assert.Equal(Llama, model.GetProperty("id").GetString());
            Assert.Equal("model", model.GetProperty("object").GetString());
        }

        var sdk = new OpenAIClient(new ApiKeyCredential(key), new OpenAIClientOptions
        {
            Endpoint = new Uri(sluice.Server.BaseAddress, "/v1"),
            Transport = new HttpClientPipelineTransport(sluice.CreateClient()),
        }).GetOpenAIModelClient();
        Assert.Equal(Llama, (await sdk.GetModelAsync(Llama)).Value.Id);
        var missing = await Assert.ThrowsAsync<ClientResultException>(() => sdk.GetModelAsync("meta-llama/No-Such-Model"));
        Assert.Equal(404, missing.Status);
        using var missingBody = JsonDocument.Parse(missing.GetRawResponse()!.Content.ToString());
        Assert.Equal("model_not_found", missingBody.RootElement.GetProperty("error").GetProperty("code").GetString());

        // The operator's delete takes the escaped id too.
        Assert.Equal(HttpStatusCode.NoContent, (await op.DeleteAsync("/api/v1/catalog/models/meta-llama%2FGone")).StatusCode);
        await using var db = database.CreateContext();
        Assert.False(await db.CatalogModels.AnyAsync(m => m.Id == "meta-llama/Gone"));
    }

    [Fact]
    public async Task A_model_without_a_usable_route_is_neither_listed_nor_retrievable()
    {
        await using var upstream = await FakeUpstream.StartAsync();
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Sqlite);
        await using var sluice = new SluiceFactory(database);
        using var op = await OperatorAsync(sluice);
        await ProviderAsync(op, "p", upstream.BaseUrl);
        await ModelAsync(op, "routed");
        await RouteAsync(op, "routed", "p", "routed");
        await ModelAsync(op, "routeless");
        await ModelAsync(op, "trains");
        await RouteAsync(op, "trains", "p", "trains", trainsOnData: true);
        var (_, _, key) = await TenantAsync(sluice); // an organization that has not consented to training
        using var client = sluice.WithKey(key);

        var listed = (await client.GetFromJsonAsync<JsonElement>("/v1/models")).GetProperty("data").EnumerateArray().Select(m => m.GetProperty("id").GetString()).ToList();

        Assert.Contains("routed", listed);
        Assert.Contains("echo", listed);
        Assert.DoesNotContain("routeless", listed);
        Assert.DoesNotContain("trains", listed); // every route excluded by the organization's data policy
        Assert.Equal(HttpStatusCode.OK, (await client.GetAsync("/v1/models/routed")).StatusCode);
        foreach (var hidden in new[] { "routeless", "trains" })
        {
            var answer = await client.GetAsync("/v1/models/" + hidden);
            Assert.Equal(HttpStatusCode.NotFound, answer.StatusCode);
            Assert.Equal("model_not_found", (await answer.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("error").GetProperty("code").GetString());
        }

        // A call still says why, rather than the silence of a missing list entry.
        var call = await client.PostAsync("/v1/chat/completions", Chat("trains", "hi"));
        Assert.Equal(HttpStatusCode.Forbidden, call.StatusCode);
        Assert.Equal("no_compliant_route", (await call.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("error").GetProperty("code").GetString());
    }

    [Fact]
    public async Task An_alias_is_served_retrieved_and_granted_as_its_model_but_listed_only_under_the_models_id()
    {
        await using var upstream = await FakeUpstream.StartAsync();
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Sqlite);
        await using var sluice = new SluiceFactory(database);
        using var op = await OperatorAsync(sluice);
        await ProviderAsync(op, "p", upstream.BaseUrl);
        await ModelAsync(op, Llama);
        await RouteAsync(op, Llama, "p", "llama-upstream");
        var created = await op.PostAsJsonAsync("/api/v1/catalog/aliases", new { alias = "llama", model = Llama });
        Assert.True(created.StatusCode == HttpStatusCode.Created, await created.Content.ReadAsStringAsync());
        Assert.Equal(HttpStatusCode.Created, (await op.PostAsJsonAsync("/api/v1/catalog/aliases", new { alias = "meta/llama-latest", model = Llama })).StatusCode);
        var (owner, orgId, key) = await TenantAsync(sluice);
        using var client = sluice.WithKey(key);

        var answer = await client.PostAsync("/v1/chat/completions", Chat("llama", "hi"));
        Assert.True(answer.StatusCode == HttpStatusCode.OK, await answer.Content.ReadAsStringAsync());
        Assert.Contains("\"llama-upstream\"", upstream.Requests.Last().Body, StringComparison.Ordinal);
        Assert.Equal(Llama, Assert.Single(await UsageAsync(database, 1)).Model); // metered under the model's own id

        var retrieved = await client.GetFromJsonAsync<JsonElement>("/v1/models/meta%2Fllama-latest");
        Assert.Equal(Llama, retrieved.GetProperty("id").GetString());
        Assert.Equal(new[] { "llama", "meta/llama-latest" }, retrieved.GetProperty("aliases").EnumerateArray().Select(a => a.GetString()!).ToArray());
        var listed = (await client.GetFromJsonAsync<JsonElement>("/v1/models")).GetProperty("data").EnumerateArray().Select(m => m.GetProperty("id").GetString()).ToList();
        Assert.Contains(Llama, listed);
        Assert.DoesNotContain("llama", listed);
        var admin = await op.GetFromJsonAsync<JsonElement>("/api/v1/catalog/models");
        Assert.Contains(admin.EnumerateArray(), m => m.GetProperty("id").GetString() == Llama && m.GetProperty("aliases").GetArrayLength() == 2);

        // Grants: a key granted the model's id may use any alias; a key granted an alias may use that alias only.
        var byId = await KeyForAsync(owner, orgId, Llama);
        var byAlias = await KeyForAsync(owner, orgId, "llama");
        using var idClient = sluice.WithKey(byId);
        using var aliasClient = sluice.WithKey(byAlias);
        Assert.Equal(HttpStatusCode.OK, (await idClient.PostAsync("/v1/chat/completions", Chat("llama", "hi"))).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await aliasClient.PostAsync("/v1/chat/completions", Chat("llama", "hi"))).StatusCode);
        Assert.Equal(HttpStatusCode.Forbidden, (await aliasClient.PostAsync("/v1/chat/completions", Chat(Llama, "hi"))).StatusCode);
        Assert.Equal(HttpStatusCode.Forbidden, (await aliasClient.PostAsync("/v1/chat/completions", Chat("meta/llama-latest", "hi"))).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await aliasClient.GetAsync("/v1/models/llama")).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await aliasClient.GetAsync("/v1/models/meta%2Fllama-latest")).StatusCode);

        // Removing the alias removes the name; deleting the model removes its aliases with it.
        Assert.Equal(HttpStatusCode.NoContent, (await op.DeleteAsync("/api/v1/catalog/aliases/meta%2Fllama-latest")).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await client.GetAsync("/v1/models/meta%2Fllama-latest")).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await client.PostAsync("/v1/chat/completions", Chat("meta/llama-latest", "hi"))).StatusCode);
        await using (var db = database.CreateContext())
        {
            var actions = await db.AuditEntries.AsNoTracking().Where(e => e.Action.StartsWith("model.alias.")).Select(e => e.Action).ToListAsync();
            Assert.Equal(["model.alias.create", "model.alias.create", "model.alias.delete"], actions.Order().ToArray());
        }

        Assert.Equal(HttpStatusCode.NoContent, (await op.DeleteAsync("/api/v1/catalog/models/meta-llama%2FLlama-3.1-8B-Instruct")).StatusCode);
        await using (var db = database.CreateContext())
        {
            Assert.False(await db.CatalogModelAliases.AnyAsync());
        }

        Assert.Equal(HttpStatusCode.NotFound, (await client.PostAsync("/v1/chat/completions", Chat("llama", "hi"))).StatusCode);
    }

    [Fact]
    public async Task An_alias_may_not_collide_with_a_model_another_alias_or_a_deployment_and_is_validated()
    {
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Sqlite);
        await using var sluice = new SluiceFactory(database);
        using var op = await OperatorAsync(sluice);
        await ModelAsync(op, "a");
        await ModelAsync(op, "b");
        Assert.Equal(HttpStatusCode.Created, (await op.PostAsJsonAsync("/api/v1/catalog/aliases", new { alias = "taken", model = "a" })).StatusCode);
        var (owner, orgId, _) = await TenantAsync(sluice);
        await using (var db = database.CreateContext())
        {
            db.Deployments.Add(new Sluice.Deployments.Deployment
            {
                Id = Guid.NewGuid(),
                OrganizationId = orgId,
                Name = "deployed",
                Engine = "vllm",
                ArtifactKind = "hub",
                LaunchJson = "{}",
                CreatedBy = "test",
                Status = "stopped",
                CreatedAt = DateTimeOffset.UtcNow,
                UpdatedAt = DateTimeOffset.UtcNow,
            });
            await db.SaveChangesAsync();
        }

        var cases = new (object Body, HttpStatusCode Status, string Field)[]
        {
            (new { alias = "b", model = "a" }, HttpStatusCode.Conflict, "alias"),
            (new { alias = "echo", model = "a" }, HttpStatusCode.Conflict, "alias"),
            (new { alias = "taken", model = "b" }, HttpStatusCode.Conflict, "alias"),
            (new { alias = "deployed", model = "a" }, HttpStatusCode.Conflict, "alias"),
            (new { alias = "has space", model = "a" }, HttpStatusCode.BadRequest, "alias"),
            (new { alias = "", model = "a" }, HttpStatusCode.BadRequest, "alias"),
            (new { alias = "fine", model = "no-such-model" }, HttpStatusCode.BadRequest, "model"),
            (new { alias = "fine", model = "taken" }, HttpStatusCode.BadRequest, "model"), // an alias of an alias
        };
        foreach (var (body, status, field) in cases)
        {
            var answer = await op.PostAsJsonAsync("/api/v1/catalog/aliases", body);
            var problem = await answer.Content.ReadFromJsonAsync<JsonElement>();
            Assert.True(answer.StatusCode == status, $"{JsonSerializer.Serialize(body)}: {(int)answer.StatusCode} {problem}");
            Assert.True(problem.GetProperty("errors").TryGetProperty(field, out _), $"{JsonSerializer.Serialize(body)}: {problem}");
        }

        // A model may not take an alias's name either, and an unknown alias is a 404 on delete.
        var model = await op.PostAsJsonAsync("/api/v1/catalog/models", new { id = "taken" });
        Assert.Equal(HttpStatusCode.Conflict, model.StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await op.DeleteAsync("/api/v1/catalog/aliases/nope")).StatusCode);

        // Tenants may not manage aliases.
        Assert.Equal(HttpStatusCode.Forbidden, (await owner.PostAsJsonAsync("/api/v1/catalog/aliases", new { alias = "mine", model = "a" })).StatusCode);
    }

    private static async Task<string> KeyForAsync(HttpClient owner, Guid orgId, string model)
    {
        var response = await owner.PostAsJsonAsync($"/api/v1/orgs/{orgId}/keys", new { name = "scoped " + model, models = new[] { model } });
        Assert.True(response.StatusCode == HttpStatusCode.Created, await response.Content.ReadAsStringAsync());
        return (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("key").GetString()!;
    }
}
