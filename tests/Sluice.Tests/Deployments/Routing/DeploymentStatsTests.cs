using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Sluice.Deployments;
using Sluice.Gateway;
using Sluice.Storage;
using Sluice.Tests.TestSupport;

namespace Sluice.Tests.Deployments.Routing;

/// <summary>Issue 17, item 5: the organization sees cold start count and p50/p90/p99 of cold start time and queue wait per deployment.</summary>
public sealed class DeploymentStatsTests
{
    [Theory]
    [InlineData(DatabaseProvider.Sqlite)]
    [InlineData(DatabaseProvider.Postgres)]
    public async Task Stats_count_requests_errors_and_cold_starts_with_nearest_rank_percentiles(DatabaseProvider provider)
    {
        await using var kit = await DeploymentRoutingKit.StartAsync(provider);
        var (machine, _) = await kit.MachineAsync();
        var deployment = await kit.DeploymentAsync("measured", status: DeploymentStatuses.ScaledToZero, desired: 0, min: 0);
        var elsewhere = await kit.DeploymentAsync("not-measured");
        var t0 = new DateTimeOffset(2026, 11, 1, 12, 0, 0, TimeSpan.Zero);

        // 100 requests in the window: waits of 1..20 ms for the 20 that met a cold start, 3 errors; others outside it or elsewhere.
        await using (var db = kit.Database.CreateContext())
        {
            for (var i = 0; i < 100; i++)
            {
                var waited = i < 20;
                db.UsageEvents.Add(Usage(deployment, t0.AddMinutes(i), status: i is 50 or 51 or 52 ? 502 : 200, waited, waited ? (i + 1) * 1_000 : 0));
            }

            db.UsageEvents.Add(Usage(deployment, t0.AddDays(-2), 200, true, 999_000_000));
            db.UsageEvents.Add(Usage(elsewhere, t0.AddMinutes(5), 500, true, 999_000_000));
            await db.SaveChangesAsync();
        }

        // Cold-start replicas of 1..10 s (one never became ready), one warm replica and one outside the window.
        for (var i = 1; i <= 10; i++)
        {
            await kit.ReplicaAsync(deployment, machine, null, null, ReplicaStates.Stopped, coldStart: true, createdAt: t0.AddMinutes(i), readyAt: t0.AddMinutes(i).AddSeconds(i));
        }

        await kit.ReplicaAsync(deployment, machine, null, null, ReplicaStates.Failed, coldStart: true, createdAt: t0.AddMinutes(30), readyAt: null);
        await kit.ReplicaAsync(deployment, machine, null, null, ReplicaStates.Stopped, coldStart: false, createdAt: t0.AddMinutes(40), readyAt: t0.AddMinutes(41));
        await kit.ReplicaAsync(deployment, machine, null, null, ReplicaStates.Stopped, coldStart: true, createdAt: t0.AddDays(-2), readyAt: t0.AddDays(-1));

        var window = $"from={Uri.EscapeDataString(t0.ToString("O"))}&to={Uri.EscapeDataString(t0.AddHours(3).ToString("O"))}";
        var stats = await kit.Owner.GetFromJsonAsync<JsonElement>($"/api/v1/deployments/{deployment}/stats?{window}");
        Assert.Equal(100, stats.GetProperty("requests").GetInt64());
        Assert.Equal(3, stats.GetProperty("errors").GetInt64());
        Assert.Equal(20, stats.GetProperty("coldStartRequests").GetInt64());
        var wait = stats.GetProperty("queueWaitMicros");
        Assert.Equal((20, 10_000L, 18_000L, 20_000L), (wait.GetProperty("count").GetInt32(), wait.GetProperty("p50").GetInt64(), wait.GetProperty("p90").GetInt64(), wait.GetProperty("p99").GetInt64()));
        Assert.Equal(11, stats.GetProperty("coldStarts").GetInt32());
        var cold = stats.GetProperty("coldStartMicros");
        Assert.Equal((10, 5_000_000L, 9_000_000L, 10_000_000L), (cold.GetProperty("count").GetInt32(), cold.GetProperty("p50").GetInt64(), cold.GetProperty("p90").GetInt64(), cold.GetProperty("p99").GetInt64()));

        // Operators see it too; an empty window has no percentiles.
        using var op = await GatewayKit.OperatorAsync(kit.Sluice);
        var empty = await op.GetFromJsonAsync<JsonElement>($"/api/v1/deployments/{deployment}/stats?from={Uri.EscapeDataString(t0.AddYears(-1).ToString("O"))}&to={Uri.EscapeDataString(t0.AddYears(-1).AddHours(1).ToString("O"))}");
        Assert.Equal(0, empty.GetProperty("requests").GetInt64());
        Assert.Equal(JsonValueKind.Null, empty.GetProperty("queueWaitMicros").ValueKind);
        Assert.Equal(JsonValueKind.Null, empty.GetProperty("coldStartMicros").ValueKind);
    }

    [Fact]
    public async Task Stats_are_for_members_of_the_owning_org_and_bad_windows_are_a_problem_naming_the_field()
    {
        await using var kit = await DeploymentRoutingKit.StartAsync(DatabaseProvider.Sqlite);
        var deployment = await kit.DeploymentAsync("guarded");
        var (otherOwner, _, otherKey) = await kit.OtherTenantAsync();
        using (otherOwner)
        {
            var hidden = await otherOwner.GetAsync($"/api/v1/deployments/{deployment}/stats");
            Assert.Equal(HttpStatusCode.NotFound, hidden.StatusCode);
            Assert.Equal("application/problem+json", hidden.Content.Headers.ContentType?.MediaType);
            Assert.Equal(HttpStatusCode.NotFound, (await otherOwner.GetAsync($"/api/v1/deployments/{Guid.NewGuid()}/stats")).StatusCode);
        }

        var member = await kit.Sluice.AddMemberAsync(kit.Owner, kit.OrgId, "member@example.com", "member");
        Assert.Equal(HttpStatusCode.OK, (await member.GetAsync($"/api/v1/deployments/{deployment}/stats")).StatusCode);
        using var anonymous = kit.Sluice.Anonymous();
        Assert.Equal(HttpStatusCode.Unauthorized, (await anonymous.GetAsync($"/api/v1/deployments/{deployment}/stats")).StatusCode);

        foreach (var (query, field) in new[] { ("from=2026-11-02T00:00:00Z&to=2026-11-01T00:00:00Z", "from"), ("from=2026-01-01T00:00:00Z&to=2026-11-01T00:00:00Z", "from"), ("from=yesterday", "from"), ("to=0001-01-01T00:00:00Z", "to") })
        {
            var bad = await kit.Owner.GetAsync($"/api/v1/deployments/{deployment}/stats?{query}");
            Assert.Equal(HttpStatusCode.BadRequest, bad.StatusCode);
            Assert.Equal("application/problem+json", bad.Content.Headers.ContentType?.MediaType);
            Assert.Contains(field, await bad.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        }

        _ = otherKey;
    }

    private static UsageEvent Usage(Guid deployment, DateTimeOffset at, int status, bool coldStart, long waitMicros) => new()
    {
        Id = Guid.CreateVersion7(at),
        RequestId = "req-" + Guid.NewGuid().ToString("N"),
        Endpoint = "chat.completions",
        Model = "measured",
        Status = status,
        DeploymentId = deployment,
        ColdStart = coldStart,
        QueueWaitMicros = waitMicros,
        LatencyMicros = waitMicros + 1_000,
        StartedAt = at,
    };
}
