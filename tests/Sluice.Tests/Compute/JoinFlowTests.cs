using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Sluice.Compute;
using Sluice.Compute.Protocol;
using Sluice.Crypto;
using Sluice.Storage;
using Sluice.Tests.TestSupport;

namespace Sluice.Tests.Compute;

/// <summary>Join tokens, the join exchange and heartbeats over real HTTP, on both databases.</summary>
public sealed class JoinFlowTests
{
    [Theory]
    [InlineData(DatabaseProvider.Sqlite)]
    [InlineData(DatabaseProvider.Postgres)]
    public async Task A_token_joins_one_machine_which_heartbeats_and_gets_its_desired_state(DatabaseProvider provider)
    {
        await using var database = await TestDatabase.CreateAsync(provider);
        await using var sluice = new SluiceFactory(database);
        using var op = await ComputeKit.OperatorAsync(sluice);
        var (tokenId, token) = await ComputeKit.CreateJoinTokenAsync(op);
        Assert.StartsWith("sjt_", token);
        using var agent = sluice.Anonymous();

        var joined = await ComputeKit.JoinAsync(agent, token);
        Assert.StartsWith("smc_", joined.Credential);
        Assert.StartsWith("sst_", joined.ServingToken);
        Assert.Null(joined.OrganizationId);
        Assert.Equal(10, joined.HeartbeatIntervalSeconds);

        var reply = await ComputeKit.HeartbeatAsync(agent, joined.Credential, ComputeKit.Heartbeat(DateTimeOffset.UtcNow, ComputeKit.Inventory()));
        Assert.Equal(MachineStates.Ready, reply.MachineState);
        Assert.Empty(reply.Tasks);
        Assert.Equal(10, reply.HeartbeatIntervalSeconds);

        var machine = await op.GetFromJsonAsync<JsonElement>($"/api/v1/machines/{joined.MachineId}");
        Assert.Equal("alive", machine.GetProperty("liveness").GetString());
        Assert.Equal("ready", machine.GetProperty("state").GetString());
        Assert.Equal("gpu-node-7", machine.GetProperty("hostname").GetString());
        Assert.Equal(ComputeKit.Certificate, machine.GetProperty("certificateSha256").GetString());
        Assert.Equal(2, machine.GetProperty("inventory").GetProperty("gpus").GetArrayLength());
        Assert.Equal("a", machine.GetProperty("labels").GetProperty("zone").GetString());

        var tokens = await op.GetFromJsonAsync<JsonElement>("/api/v1/machines/join-tokens");
        var listed = Assert.Single(tokens.EnumerateArray());
        Assert.Equal("used", listed.GetProperty("status").GetString());
        Assert.Equal(joined.MachineId, listed.GetProperty("machineId").GetGuid().ToString());
        Assert.DoesNotContain(token, tokens.GetRawText());

        // Stored hashed: neither the token, the credential nor the serving token is in the database in any form.
        var dump = await Canary.DumpDatabaseAsync(database);
        Canary.AssertAbsent(dump, token, "the database");
        Canary.AssertAbsent(dump, joined.Credential, "the database");
        Canary.AssertAbsent(dump, joined.ServingToken, "the database");
        Canary.AssertAbsent(sluice.Logs.All, joined.Credential, "the log");
        await using (var db = database.CreateContext())
        {
            // Sealed, not lost: the serving client opens the very token the agent was given, for this machine only.
            var stored = db.Machines.Single();
            var box = sluice.Services.GetRequiredService<SecretBox>();
            Assert.Equal(joined.ServingToken, AgentExchange.OpenServingToken(box, stored));
            Assert.ThrowsAny<System.Security.Cryptography.CryptographicException>(() => box.Open(stored.ServingTokenSealed, AgentExchange.ServingTokenBinding(Guid.NewGuid())));
        }


        var audit = await ComputeKit.AuditAsync(database, "machine.");
        Assert.Contains(audit, a => a.Action == "machine.join_token_create" && a.Target == $"join_token:{tokenId}" && a.Outcome == "success");
        Assert.Contains(audit, a => a.Action == "machine.join" && a.Target == $"machine:{joined.MachineId}" && a.Outcome == "success");
        var events = await op.GetFromJsonAsync<JsonElement>($"/api/v1/machines/{joined.MachineId}/events");
        Assert.Contains(events.EnumerateArray(), e => e.GetProperty("kind").GetString() == "joined");
        Assert.Contains(events.EnumerateArray(), e => e.GetProperty("detail").GetString() == "starting -> alive");
    }

    [Fact]
    public async Task Reused_expired_revoked_forged_and_malformed_tokens_are_refused_audited_and_create_nothing()
    {
        var clock = new ManualTimeProvider(DateTimeOffset.UtcNow);
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Sqlite);
        await using var sluice = new SluiceFactory(database, time: clock);
        using var op = await ComputeKit.OperatorAsync(sluice);
        using var agent = sluice.Anonymous();
        var (_, used) = await ComputeKit.CreateJoinTokenAsync(op);
        var (_, expiring) = await ComputeKit.CreateJoinTokenAsync(op, ttlSeconds: 60);
        var (revokedId, revoked) = await ComputeKit.CreateJoinTokenAsync(op);
        await ComputeKit.JoinAsync(agent, used);
        Assert.Equal(HttpStatusCode.OK, (await op.DeleteAsync($"/api/v1/machines/join-tokens/{revokedId}")).StatusCode);
        clock.Advance(TimeSpan.FromSeconds(61));

        foreach (var (token, says) in new[]
        {
            (used, "already used"),
            (expiring, "expired"),
            (revoked, "revoked"),
            ("sjt_" + new string('A', 43), "not valid"),
        })
        {
            var problem = await ComputeKit.ProblemAsync(await ComputeKit.PostJoinAsync(agent, ComputeKit.Join(token)), HttpStatusCode.Unauthorized);
            Assert.Contains(says, problem.GetProperty("detail").GetString(), StringComparison.Ordinal);
        }

        var malformed = await ComputeKit.ProblemAsync(await ComputeKit.PostJoinAsync(agent, ComputeKit.Join("not-a-token")), HttpStatusCode.BadRequest);
        Assert.True(malformed.GetProperty("errors").TryGetProperty("token", out _));

        await using var db = database.CreateContext();
        Assert.Equal(1, db.Machines.Count()); // only the first join
        var refusals = (await ComputeKit.AuditAsync(database, "machine.join")).Where(a => a.Action == "machine.join" && a.Outcome == "refused").ToList();
        Assert.Equal(5, refusals.Count);
        Assert.Contains(refusals, r => r.Target == $"join_token:{revokedId}");
        Assert.Contains(refusals, r => r.Target == "join_token:unknown");
        Assert.Contains(await ComputeKit.AuditAsync(database, "machine.join_token_revoke"), a => a.Target == $"join_token:{revokedId}");
    }

    [Theory]
    [InlineData(DatabaseProvider.Sqlite)]
    [InlineData(DatabaseProvider.Postgres)]
    public async Task Concurrent_joins_with_one_token_create_exactly_one_machine(DatabaseProvider provider)
    {
        await using var database = await TestDatabase.CreateAsync(provider);
        await using var sluice = new SluiceFactory(database);
        using var op = await ComputeKit.OperatorAsync(sluice);
        var (_, token) = await ComputeKit.CreateJoinTokenAsync(op);
        var agents = Enumerable.Range(0, 8).Select(_ => sluice.Anonymous()).ToList();

        var responses = await Task.WhenAll(agents.Select(a => ComputeKit.PostJoinAsync(a, ComputeKit.Join(token))));

        Assert.Single(responses, r => r.StatusCode == HttpStatusCode.Created);
        Assert.All(responses.Where(r => r.StatusCode != HttpStatusCode.Created), r => Assert.Equal(HttpStatusCode.Unauthorized, r.StatusCode));
        await using var db = database.CreateContext();
        Assert.Equal(1, db.Machines.Count());
        Assert.Equal(1, db.MachineEvents.Count());
        Assert.Single(await ComputeKit.AuditAsync(database, "machine.join"), a => a.Action == "machine.join" && a.Outcome == "success");
        agents.ForEach(a => a.Dispose());
    }

    [Fact]
    public async Task A_join_with_bad_inventory_or_serving_address_is_refused_by_field_and_leaves_the_token_usable()
    {
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Sqlite);
        await using var sluice = new SluiceFactory(database);
        using var op = await ComputeKit.OperatorAsync(sluice);
        using var agent = sluice.Anonymous();
        var (_, token) = await ComputeKit.CreateJoinTokenAsync(op);
        var good = ComputeKit.Join(token);
        var gpu = good.Inventory.Gpus[0];
        var cases = new (JoinRequest Request, string Field)[]
        {
            (good with { ServingUrl = "http://10.0.0.7:8443" }, "serving_url"),
            (good with { ServingUrl = "https://10.0.0.7:8443/x?y=1" }, "serving_url"),
            (good with { ServingUrl = "https://169.254.169.254" }, "serving_url"), // the cloud metadata service
            (good with { ServingUrl = "https://127.0.0.1:8443" }, "serving_url"), // the server's own host (not allowed here)
            (good with { ServingUrl = "https://localhost:8443" }, "serving_url"),
            (good with { ServingUrl = "https://[::1]:8443" }, "serving_url"),
            (good with { ServingUrl = "https://[fe80::1]:8443" }, "serving_url"),
            (good with { ServingUrl = "https://0.0.0.0:8443" }, "serving_url"),
            (good with { ServingUrl = "https://239.1.2.3:8443" }, "serving_url"),
            (good with { CertificateSha256 = "ABC" }, "certificate_sha256"),
            (good with { Hostname = "" }, "hostname"),
            (good with { Inventory = good.Inventory with { CpuCores = 0 } }, "inventory.cpu_cores"),
            (good with { Inventory = good.Inventory with { MemoryBytes = -1 } }, "inventory.memory_bytes"),
            (good with { Inventory = good.Inventory with { Gpus = [gpu with { MemoryMib = -5 }] } }, "inventory.gpus[0].memory_mib"),
            (good with { Inventory = good.Inventory with { Gpus = [gpu, gpu] } }, "inventory.gpus"),
            (good with { Inventory = good.Inventory with { Gpus = Enumerable.Range(0, 65).Select(i => gpu with { Index = i, Uuid = $"GPU-{i}" }).ToList() } }, "inventory.gpus"),
            (good with { Labels = new Dictionary<string, string> { ["Bad Key"] = "x" } }, "labels"),
        };

        foreach (var (request, field) in cases)
        {
            var problem = await ComputeKit.ProblemAsync(await ComputeKit.PostJoinAsync(agent, request), HttpStatusCode.BadRequest);
            Assert.True(problem.GetProperty("errors").TryGetProperty(field, out _), $"{field}: {problem}");
        }

        var missing = await agent.PostAsync(AgentPaths.Join, new StringContent("""{"token":"x"}""", System.Text.Encoding.UTF8, "application/json"));
        await ComputeKit.ProblemAsync(missing, HttpStatusCode.BadRequest);
        await using (var db = database.CreateContext())
        {
            Assert.Equal(0, db.Machines.Count());
        }

        await ComputeKit.JoinAsync(agent, token); // nothing above consumed it
    }

    [Fact]
    public async Task Org_admins_create_tokens_for_their_own_fleet_only()
    {
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Sqlite);
        await using var sluice = new SluiceFactory(database);
        using var op = await ComputeKit.OperatorAsync(sluice);
        var (ownerA, _) = await sluice.SignUpAndLoginAsync("a@example.com");
        var orgA = await SluiceFactory.CreateOrganizationAsync(ownerA, "A");
        var (ownerB, _) = await sluice.SignUpAndLoginAsync("b@example.com");
        var orgB = await SluiceFactory.CreateOrganizationAsync(ownerB, "B");
        using var memberA = await sluice.AddMemberAsync(ownerA, orgA, "m@example.com", "member");

        var (_, token) = await ComputeKit.CreateJoinTokenAsync(ownerA, orgA);
        using var agent = sluice.Anonymous();
        var joined = await ComputeKit.JoinAsync(agent, token);
        Assert.Equal(orgA.ToString(), joined.OrganizationId);

        await ComputeKit.ProblemAsync(await ownerA.PostAsJsonAsync("/api/v1/machines/join-tokens", new { }), HttpStatusCode.Forbidden); // platform pool
        await ComputeKit.ProblemAsync(await ownerB.PostAsJsonAsync("/api/v1/machines/join-tokens", new { organizationId = orgA }), HttpStatusCode.NotFound);
        await ComputeKit.ProblemAsync(await memberA.PostAsJsonAsync("/api/v1/machines/join-tokens", new { organizationId = orgA }), HttpStatusCode.Forbidden);
        await ComputeKit.ProblemAsync(await ownerA.PostAsJsonAsync("/api/v1/machines/join-tokens", new { organizationId = orgA, ttlSeconds = 90000 }), HttpStatusCode.BadRequest);
        Assert.Single((await ownerA.GetFromJsonAsync<JsonElement>($"/api/v1/machines?orgId={orgA}")).EnumerateArray());
        Assert.Single((await op.GetFromJsonAsync<JsonElement>("/api/v1/machines")).EnumerateArray());
        await ComputeKit.ProblemAsync(await ownerB.GetAsync($"/api/v1/machines?orgId={orgA}"), HttpStatusCode.NotFound);
        await ComputeKit.ProblemAsync(await ownerB.GetAsync($"/api/v1/machines/{joined.MachineId}"), HttpStatusCode.NotFound);
        await ComputeKit.ProblemAsync(await ownerB.GetAsync("/api/v1/machines"), HttpStatusCode.NotFound);
        Assert.Empty((await ownerB.GetFromJsonAsync<JsonElement>($"/api/v1/machines?orgId={orgB}")).EnumerateArray());
        await ComputeKit.ProblemAsync(await ownerB.PostAsync($"/api/v1/machines/{joined.MachineId}/cordon", null), HttpStatusCode.NotFound);
        Assert.Equal(HttpStatusCode.OK, (await ownerA.PostAsync($"/api/v1/machines/{joined.MachineId}/cordon", null)).StatusCode);
        Assert.Contains(await ComputeKit.AuditAsync(database, "machine.cordon"), a => a.Outcome == "success");
        Assert.Equal(4, (await ComputeKit.AuditAsync(database, "machine.join_token_create")).Count(a => a.Outcome == "refused"));
    }
}
