using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Sluice.Deployments;
using Sluice.Storage;
using Sluice.Tests.TestSupport;
using static Sluice.Tests.TestSupport.GatewayKit;

namespace Sluice.Tests.Deployments.Routing;

/// <summary>
/// A deployment is private to its organization: another organization's key gets exactly what an unknown model gets,
/// and its content leaves no trace (C01/C02); an operator-published deployment is everyone's.
/// </summary>
public sealed class DeploymentVisibilityTests
{
    [Theory]
    [InlineData(DatabaseProvider.Sqlite)]
    [InlineData(DatabaseProvider.Postgres)]
    public async Task Another_orgs_private_deployment_is_model_not_found_and_its_canary_leaves_no_trace(DatabaseProvider provider)
    {
        var canary = "canary-" + Guid.NewGuid().ToString("N");
        await using var kit = await DeploymentRoutingKit.StartAsync(provider, new() { ["Deployments:Routing:QueueTimeout"] = "00:00:00.500" });
        var engine = await kit.EngineAsync();
        engine.Reply = "engine answer " + canary;
        var broken = await kit.EngineAsync();
        broken.FailWith = 500;
        var (machine, tasks) = await kit.MachineAsync();
        var deployment = await kit.DeploymentAsync("private-llama");
        await kit.ReplicaAsync(deployment, machine, tasks, engine);
        var failing = await kit.DeploymentAsync("failing-llama");
        await kit.ReplicaAsync(failing, machine, tasks, broken);
        await kit.DeploymentAsync("sleeping-llama", status: DeploymentStatuses.ScaledToZero, desired: 0, min: 0);
        await kit.RefreshAsync();
        var (_, _, otherKey) = await kit.OtherTenantAsync();
        using var other = kit.Sluice.WithKey(otherKey);

        // The owner reaches it on every path: plain, streaming, a failing replica, a cold-start wait that times out.
        Assert.Equal(HttpStatusCode.OK, (await kit.Client.PostAsync("/v1/chat/completions", Chat("private-llama", canary))).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await kit.Client.PostAsync("/v1/chat/completions", Chat("private-llama", canary, stream: true))).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await kit.Client.PostAsync("/v1/completions", Json($$"""{"model":"private-llama","prompt":"{{canary}}"}"""))).StatusCode);
        Assert.Equal(HttpStatusCode.BadGateway, (await kit.Client.PostAsync("/v1/chat/completions", Chat("failing-llama", canary))).StatusCode);
        Assert.Equal(HttpStatusCode.ServiceUnavailable, (await kit.Client.PostAsync("/v1/chat/completions", Chat("sleeping-llama", canary))).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await kit.Client.PostAsync("/v1/chat/completions", Chat("sleeping-llama", canary, stream: true))).StatusCode);

        // Another organization: exactly what an unknown model gets.
        var denied = await other.PostAsync("/v1/chat/completions", Chat("private-llama", canary));
        var unknown = await other.PostAsync("/v1/chat/completions", Chat("no-such-model", canary));
        Assert.Equal(HttpStatusCode.NotFound, denied.StatusCode);
        var deniedError = await DeploymentRoutingKit.ErrorAsync(denied);
        var unknownError = await DeploymentRoutingKit.ErrorAsync(unknown);
        Assert.Equal("model_not_found", deniedError.GetProperty("code").GetString());
        Assert.Equal(unknownError.GetProperty("message").GetString()!.Replace("no-such-model", "private-llama", StringComparison.Ordinal), deniedError.GetProperty("message").GetString());
        Assert.Equal(HttpStatusCode.NotFound, (await other.PostAsync("/v1/chat/completions", Chat("private-llama", canary, stream: true))).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await other.GetAsync("/v1/models/private-llama")).StatusCode);
        Assert.DoesNotContain("private-llama", await other.GetStringAsync("/v1/models"), StringComparison.Ordinal);
        Assert.Equal(3, engine.Hits); // nothing of the other organization's reached the engine

        var usage = await UsageAsync(kit.Database, 9);
        Assert.Equal(9, usage.Count);
        await kit.Sluice.DisposeAsync(); // a clean stop: every writer has finished, so the scans see all it wrote

        var logs = kit.Sluice.Logs.All;
        var stored = await Canary.DumpDatabaseAsync(kit.Database);
        var files = await Canary.DumpDirectoryAsync(kit.Database.Directory);
        Assert.Contains("private-llama", stored, StringComparison.Ordinal); // the scans see real data
        Canary.AssertAbsent(logs, canary, "the logs");
        Canary.AssertAbsent(stored, canary, "the database");
        Canary.AssertAbsent(files, canary, "the data directory");
    }

    [Fact]
    public async Task Models_lists_the_orgs_own_and_published_deployments_and_key_grants_apply_by_name()
    {
        await using var kit = await DeploymentRoutingKit.StartAsync(DatabaseProvider.Sqlite);
        var engine = await kit.EngineAsync();
        var (machine, tasks) = await kit.MachineAsync();
        var own = await kit.DeploymentAsync("own-model");
        await kit.ReplicaAsync(own, machine, tasks, engine);
        var (otherOwner, otherOrg, otherKey) = await kit.OtherTenantAsync();
        var theirs = await kit.DeploymentAsync("their-private", orgId: otherOrg);
        await kit.ReplicaAsync(theirs, machine, tasks, engine);
        var published = await kit.DeploymentAsync("their-published", orgId: otherOrg, isPublic: true);
        await kit.ReplicaAsync(published, machine, tasks, engine);
        await kit.RefreshAsync();

        var models = (await kit.Client.GetFromJsonAsync<JsonElement>("/v1/models")).GetProperty("data").EnumerateArray()
            .ToDictionary(m => m.GetProperty("id").GetString()!, m => m.GetProperty("owned_by").GetString());
        Assert.Equal(kit.OrgId.ToString(), models["own-model"]);
        Assert.Equal("sluice", models["their-published"]);
        Assert.Equal("sluice-test-model", models["echo"]);
        Assert.False(models.ContainsKey("their-private"));
        var single = await kit.Client.GetFromJsonAsync<JsonElement>("/v1/models/own-model");
        Assert.Equal("model", single.GetProperty("object").GetString());

        // A published deployment is callable by every organization.
        Assert.Equal(HttpStatusCode.OK, (await kit.Client.PostAsync("/v1/chat/completions", Chat("their-published", "hi"))).StatusCode);
        using var otherClient = kit.Sluice.WithKey(otherKey);
        Assert.Equal(HttpStatusCode.OK, (await otherClient.PostAsync("/v1/chat/completions", Chat("their-private", "hi"))).StatusCode);

        // A key limited to other models may not call the deployment, and does not see it.
        var limited = await kit.Owner.PostAsJsonAsync($"/api/v1/orgs/{kit.OrgId}/keys", new { name = "limited", scopes = new[] { "inference" }, models = new[] { "echo" } });
        Assert.Equal(HttpStatusCode.Created, limited.StatusCode);
        using var limitedClient = kit.Sluice.WithKey((await limited.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("key").GetString()!);
        var refused = await limitedClient.PostAsync("/v1/chat/completions", Chat("own-model", "hi"));
        Assert.Equal(HttpStatusCode.Forbidden, refused.StatusCode);
        Assert.Equal("model_not_allowed", (await DeploymentRoutingKit.ErrorAsync(refused)).GetProperty("code").GetString());
        Assert.DoesNotContain("own-model", await limitedClient.GetStringAsync("/v1/models"), StringComparison.Ordinal);
        otherOwner.Dispose();
    }
}
