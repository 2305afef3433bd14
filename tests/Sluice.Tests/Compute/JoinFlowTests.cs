using System.Net.Http.Json;
using System.Text.Json;
using Sluice.Storage;
using Sluice.Compute.Protocol;
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

        var audit = await ComputeKit.AuditAsync(database, "machine.");
        Assert.Contains(audit, a => a.Action == "machine.join_token_create" && a.Target == $"join_token:{tokenId}" && a.Outcome == "success");
        Assert.Contains(audit, a => a.Action == "machine.join" && a.Target == $"machine:{joined.MachineId}" && a.Outcome == "success");
        var events = await op.GetFromJsonAsync<JsonElement>($"/api/v1/machines/{joined.MachineId}/events");
        Assert.Contains(events.EnumerateArray(), e => e.GetProperty("kind").GetString() == "joined");
        Assert.Contains(events.EnumerateArray(), e => e.GetProperty("detail").GetString() == "starting -> alive");
    }
}
