using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.EntityFrameworkCore;
using Sluice.Compute.Protocol;
using Sluice.Deployments;
using Sluice.Storage;
using Sluice.Tests.TestSupport;
using static Sluice.Tests.TestSupport.GatewayKit;

namespace Sluice.Tests.Deployments.Routing;

/// <summary>Issue 17, item 3: /v1 requests for a deployment's model go to its ready replicas through the agents' endpoints.</summary>
public sealed class DeploymentRoutingTests
{
    [Theory]
    [InlineData(DatabaseProvider.Sqlite)]
    [InlineData(DatabaseProvider.Postgres)]
    public async Task Chat_plain_and_streaming_reach_a_ready_replica_with_the_served_model_name_and_are_metered(DatabaseProvider provider)
    {
        await using var kit = await DeploymentRoutingKit.StartAsync(provider);
        var engine = await kit.EngineAsync();
        var (machine, tasks) = await kit.MachineAsync();
        var deployment = await kit.DeploymentAsync("acme-llama", inputPrice: 1_000_000, outputPrice: 2_000_000);
        await kit.FundAsync(kit.OrgId, 10_000_000);
        var replica = await kit.ReplicaAsync(deployment, machine, tasks, engine);
        await kit.RefreshAsync();

        var plain = await kit.Client.PostAsync("/v1/chat/completions", Chat("acme-llama", "hello"));
        Assert.Equal(HttpStatusCode.OK, plain.StatusCode);
        Assert.Equal("Hello from upstream", (await plain.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("choices")[0].GetProperty("message").GetProperty("content").GetString());

        var stream = await kit.Client.PostAsync("/v1/chat/completions", Chat("acme-llama", "hello", stream: true));
        Assert.Equal(HttpStatusCode.OK, stream.StatusCode);
        Assert.Equal("text/event-stream", stream.Content.Headers.ContentType?.MediaType);
        var events = Events(await stream.Content.ReadAsStringAsync());
        Assert.Equal("[DONE]", events[^1]);
        Assert.Equal(5, events.Count(e => e.Contains("chat.completion.chunk", StringComparison.Ordinal)));

        var embeddings = await kit.Client.PostAsync("/v1/embeddings", Json("""{"model":"acme-llama","input":["hi"]}"""));
        Assert.Equal(HttpStatusCode.OK, embeddings.StatusCode);

        // The engine got the served model name, on the paths the agent proxies to the task.
        Assert.Equal(["/v1/chat/completions", "/v1/chat/completions", "/v1/embeddings"], engine.Requests.Select(r => r.Path).ToArray());
        Assert.All(engine.Requests, r => Assert.Equal("acme-llama", JsonNode.Parse(r.Body)!["model"]!.GetValue<string>()));
        Assert.Equal(0, kit.Load.InFlight(replica)); // every request left the replica it entered

        var usage = await UsageAsync(kit.Database, 3);
        Assert.Equal(3, usage.Count);
        Assert.All(usage, u =>
        {
            Assert.Equal(200, u.Status);
            Assert.Equal("acme-llama", u.Model);
            Assert.Equal(deployment, u.DeploymentId);
            Assert.Null(u.RouteId);
            Assert.False(u.ColdStart);
            Assert.Equal(0, u.QueueWaitMicros);
        });

        // Charged at the deployment's per-token prices, through the same holds as provider routes: 11 prompt + 7 completion tokens.
        Assert.Equal(11 + (7 * 2), usage[0].CostMicros);
    }

    [Fact]
    public async Task Requests_go_to_the_replica_with_the_fewest_in_flight()
    {
        await using var kit = await DeploymentRoutingKit.StartAsync(DatabaseProvider.Sqlite);
        var a = await kit.EngineAsync();
        var b = await kit.EngineAsync();
        a.DelayBeforeHeaders = b.DelayBeforeHeaders = TimeSpan.FromSeconds(8); // held until all four are in
        var (machine1, tasks1) = await kit.MachineAsync();
        var (machine2, tasks2) = await kit.MachineAsync();
        var deployment = await kit.DeploymentAsync("balanced");
        var replicaA = await kit.ReplicaAsync(deployment, machine1, tasks1, a);
        var replicaB = await kit.ReplicaAsync(deployment, machine2, tasks2, b);
        await kit.RefreshAsync();

        // One at a time, each held by its engine: every next request goes to the replica with fewer in flight.
        var pending = new List<Task<HttpResponseMessage>>();
        for (var i = 1; i <= 4; i++)
        {
            pending.Add(kit.Client.PostAsync("/v1/chat/completions", Chat("balanced", "hi " + i)));
            var sent = i;
            await Eventually.TrueAsync(() => a.Hits + b.Hits == sent, $"request {i} at an engine");
            Assert.True(Math.Abs(a.Hits - b.Hits) <= 1, $"after {i} requests: {a.Hits} at A, {b.Hits} at B");
        }

        Assert.Equal(2, kit.Load.InFlight(replicaA));
        Assert.Equal(2, kit.Load.InFlight(replicaB));
        Assert.All(await Task.WhenAll(pending), r => Assert.Equal(HttpStatusCode.OK, r.StatusCode));
        Assert.Equal((2, 2), (a.Hits, b.Hits));
        Assert.Equal(0, kit.Load.InFlight(replicaA) + kit.Load.InFlight(replicaB));
    }

    [Fact]
    public async Task A_failing_replica_falls_back_to_another_replica_of_the_deployment_and_never_to_another_model()
    {
        await using var kit = await DeploymentRoutingKit.StartAsync(DatabaseProvider.Sqlite, new() { ["Gateway:CircuitBreakerFailures"] = "2" });
        var broken = await kit.EngineAsync();
        broken.FailWith = 500;
        var healthy = await kit.EngineAsync();
        var otherModel = await kit.EngineAsync();
        using (var op = await OperatorAsync(kit.Sluice))
        {
            await ProviderAsync(op, "elsewhere", otherModel.BaseUrl);
            await ModelAsync(op, "catalog-model");
            await RouteAsync(op, "catalog-model", "elsewhere", "catalog-model");
        }

        var (machine, tasks) = await kit.MachineAsync();
        var unreachable = await kit.UnreachableMachineAsync();
        var deployment = await kit.DeploymentAsync("resilient");
        var brokenReplica = await kit.ReplicaAsync(deployment, machine, tasks, broken);
        var goneReplica = await kit.ReplicaAsync(deployment, unreachable, null, null);
        await kit.ReplicaAsync(deployment, machine, tasks, healthy);
        await kit.RefreshAsync();

        // Replicas are picked at random among the equally loaded: send until each failing one has been tried and its
        // circuit opened (two consecutive failures); every request still succeeds, on the healthy replica.
        bool Opened(Guid replica) => kit.Sluice.Logs.All.Split('\n').Any(l => l.Contains(replica.ToString(), StringComparison.Ordinal) && l.Contains("circuit opened", StringComparison.Ordinal));
        var sent = 0;
        while ((!Opened(brokenReplica) || !Opened(goneReplica)) && sent < 60)
        {
            var response = await kit.Client.PostAsync("/v1/chat/completions", Chat("resilient", "hi"));
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            sent++;
        }

        Assert.True(Opened(brokenReplica) && Opened(goneReplica), $"both failing replicas' circuits opened within {sent} requests");
        Assert.Equal(2, broken.Hits);
        Assert.Equal(sent, healthy.Hits);
        Assert.Contains(kit.Sluice.Logs.All.Split('\n'), l => l.Contains(goneReplica.ToString(), StringComparison.Ordinal) && l.Contains("unreachable", StringComparison.Ordinal));

        // With their circuits open, the failing replicas are not tried again.
        for (var i = 0; i < 5; i++)
        {
            Assert.Equal(HttpStatusCode.OK, (await kit.Client.PostAsync("/v1/chat/completions", Chat("resilient", "hi"))).StatusCode);
        }

        Assert.Equal(2, broken.Hits);
        Assert.Equal(sent + 5, healthy.Hits);
        Assert.Equal(0, otherModel.Hits);
        var usage = await UsageAsync(kit.Database, sent + 5);
        Assert.All(usage, u => Assert.Equal(deployment, u.DeploymentId));

        // When every replica fails, the request fails: 502, still never another model.
        healthy.FailWith = 503;
        var failed = await kit.Client.PostAsync("/v1/chat/completions", Chat("resilient", "hi"));
        Assert.Equal(HttpStatusCode.BadGateway, failed.StatusCode);
        Assert.Equal("upstream_error", (await DeploymentRoutingKit.ErrorAsync(failed)).GetProperty("code").GetString());
        Assert.Equal(0, otherModel.Hits);
    }

    [Fact]
    public async Task Replicas_on_machines_that_cannot_serve_are_not_routed_to()
    {
        await using var kit = await DeploymentRoutingKit.StartAsync(DatabaseProvider.Sqlite, new() { ["Deployments:Routing:QueueTimeout"] = "00:00:00.300" });
        var engine = await kit.EngineAsync();
        var deployment = await kit.DeploymentAsync("fenced");
        foreach (var (liveness, revoked) in new[] { (MachineLiveness.Offline, false), (MachineLiveness.Lost, false), (MachineLiveness.Alive, true) })
        {
            var (machine, tasks) = await kit.MachineAsync(liveness, revoked);
            await kit.ReplicaAsync(deployment, machine, tasks, engine);
        }

        var (starting, startingTasks) = await kit.MachineAsync();
        await kit.ReplicaAsync(deployment, starting, startingTasks, engine, state: ReplicaStates.Starting);
        await kit.RefreshAsync();
        Assert.Empty(kit.Directory.Get(deployment)!.Replicas);

        var response = await kit.Client.PostAsync("/v1/chat/completions", Chat("fenced", "hi"));
        Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
        Assert.Equal(0, engine.Hits);

        var (suspect, suspectTasks) = await kit.MachineAsync(MachineLiveness.Suspect);
        await kit.ReplicaAsync(deployment, suspect, suspectTasks, engine);
        await kit.RefreshAsync();
        Assert.Single(kit.Directory.Get(deployment)!.Replicas);
        Assert.Equal(HttpStatusCode.OK, (await kit.Client.PostAsync("/v1/chat/completions", Chat("fenced", "hi"))).StatusCode);
        Assert.Equal(1, engine.Hits);
    }
}
