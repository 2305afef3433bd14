using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Sluice.Gateway;
using Sluice.Identity;
using Sluice.Privacy;
using Sluice.Storage;
using Sluice.Tests.TestSupport;
using static Sluice.Tests.TestSupport.GatewayKit;

namespace Sluice.Tests.Privacy;

/// <summary>The retention sweeper on a manual clock: what is just inside a window stays, what is just outside goes, unless held.</summary>
public abstract class RetentionTests(DatabaseProvider provider)
{
    private static readonly TimeSpan Minute = TimeSpan.FromMinutes(1);

    [Fact]
    public async Task Each_class_deletes_just_outside_its_window_keeps_just_inside_and_skips_what_a_hold_covers()
    {
        var clock = new ManualTimeProvider(DateTimeOffset.UtcNow);
        await using var database = await TestDatabase.CreateAsync(provider);
        await using var sluice = new SluiceFactory(database, time: clock);
        using var op = await OperatorAsync(sluice);
        var (_, heldOrg, _) = await TenantAsync(sluice, "held@example.com");
        var (_, freeOrg, _) = await TenantAsync(sluice, "free@example.com");
        await using var seed = database.CreateContext();
        var heldUser = await seed.Users.Where(u => u.Email == "held@example.com").Select(u => u.Id).SingleAsync();
        var freeUser = await seed.Users.Where(u => u.Email == "free@example.com").Select(u => u.Id).SingleAsync();
        var now = clock.GetUtcNow();

        // Request metadata: 90 days. Login events: 90 days. Sessions (operational metadata): 365 days.
        foreach (var org in new[] { heldOrg, freeOrg })
        {
            seed.UsageEvents.Add(Usage(org, "inside", now - TimeSpan.FromDays(90) + Minute));
            seed.UsageEvents.Add(Usage(org, "outside", now - TimeSpan.FromDays(90) - Minute));
        }

        foreach (var user in new[] { heldUser, freeUser })
        {
            seed.LoginEvents.Add(Login(user, now - TimeSpan.FromDays(90) + Minute));
            seed.LoginEvents.Add(Login(user, now - TimeSpan.FromDays(90) - Minute));
            seed.Sessions.Add(Session(user, now - TimeSpan.FromDays(365) + Minute));
            seed.Sessions.Add(Session(user, now - TimeSpan.FromDays(365) - Minute));
        }

        await seed.SaveChangesAsync();
        var hold = await op.PostAsJsonAsync("/api/v1/admin/legal-holds", new { scope = "org", organizationId = heldOrg, reason = "Matter 2026-17: preservation notice" });
        Assert.Equal(HttpStatusCode.Created, hold.StatusCode);
        var holdId = (await hold.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetGuid();

        var first = await SweepAsync(op);

        Assert.Equal((1, 1), Result(first, RetentionClass.RequestMetadata));
        Assert.Equal((1, 1), Result(first, RetentionClass.LoginEvents));
        Assert.Equal((1, 1), Result(first, RetentionClass.OperationalMetadata));
        await using (var db = database.CreateContext())
        {
            Assert.Equal(["inside", "inside", "outside"], (await db.UsageEvents.Select(e => e.RequestId).ToListAsync()).Order());
            Assert.Equal(heldOrg, await db.UsageEvents.Where(e => e.RequestId == "outside").Select(e => e.OrganizationId).SingleAsync());
            Assert.True(await db.LoginEvents.AnyAsync(e => e.UserId == heldUser && e.OccurredAt < now - TimeSpan.FromDays(90)));
            Assert.Equal(2, await db.LoginEvents.CountAsync(e => e.UserId == freeUser)); // the one just inside, and today's sign-in
            Assert.False(await db.LoginEvents.AnyAsync(e => e.UserId == freeUser && e.OccurredAt < now - TimeSpan.FromDays(90)));
            Assert.True(await db.Sessions.AnyAsync(s => s.UserId == heldUser && s.ExpiresAt < now - TimeSpan.FromDays(365)));
            Assert.False(await db.Sessions.AnyAsync(s => s.UserId == freeUser && s.ExpiresAt < now - TimeSpan.FromDays(365)));
            var entries = await db.AuditEntries.Where(e => e.Action == "retention.sweep").Select(e => e.Target).ToListAsync();
            Assert.Contains(entries, t => t.StartsWith($"request_metadata cutoff:{(now - TimeSpan.FromDays(90)).UtcDateTime:yyyy-MM-ddTHH:mm:ssZ} deleted:1 held:1", StringComparison.Ordinal));
            Assert.Single(await db.AuditEntries.Where(e => e.Action == "retention.run").ToListAsync());
        }

        // Released: the held records go on the next run.
        Assert.Equal(HttpStatusCode.OK, (await op.PostAsJsonAsync($"/api/v1/admin/legal-holds/{holdId}/release", new { reason = "matter closed" })).StatusCode);
        var second = await SweepAsync(op);
        Assert.Equal((1, 0), Result(second, RetentionClass.RequestMetadata));
        Assert.Equal((1, 0), Result(second, RetentionClass.LoginEvents));
        Assert.Equal((1, 0), Result(second, RetentionClass.OperationalMetadata));

        // A class hold keeps everything of its class; a user hold keeps that person's records.
        await using (var more = database.CreateContext())
        {
            more.UsageEvents.Add(Usage(freeOrg, "old-again", now - TimeSpan.FromDays(91)));
            more.LoginEvents.Add(Login(freeUser, now - TimeSpan.FromDays(91)));
            more.LoginEvents.Add(Login(heldUser, now - TimeSpan.FromDays(91)));
            await more.SaveChangesAsync();
        }

        Assert.Equal(HttpStatusCode.Created, (await op.PostAsJsonAsync("/api/v1/admin/legal-holds", new { scope = "class", retentionClass = "request_metadata", reason = "regulator inquiry" })).StatusCode);
        Assert.Equal(HttpStatusCode.Created, (await op.PostAsJsonAsync("/api/v1/admin/legal-holds", new { scope = "user", userId = freeUser, reason = "litigation hold" })).StatusCode);
        var third = await SweepAsync(op);
        Assert.Equal((0, 1), Result(third, RetentionClass.RequestMetadata));
        Assert.Equal((1, 1), Result(third, RetentionClass.LoginEvents));
    }

    [Fact]
    public async Task Deployment_metadata_goes_after_its_period_counted_from_the_event_the_deletion_or_the_stop_and_an_orgs_hold_keeps_its_own()
    {
        var clock = new ManualTimeProvider(DateTimeOffset.UtcNow);
        await using var database = await TestDatabase.CreateAsync(provider);
        await using var sluice = new SluiceFactory(database, time: clock);
        using var op = await OperatorAsync(sluice);
        var (_, heldOrg, _) = await TenantAsync(sluice, "held-deployments@example.com");
        var (_, freeOrg, _) = await TenantAsync(sluice, "free-deployments@example.com");
        var now = clock.GetUtcNow();
        var old = now - TimeSpan.FromDays(365) - Minute;
        var recent = now - TimeSpan.FromDays(365) + Minute;
        var deployments = new Dictionary<(Guid Org, string Kind), Guid>();
        await using (var seed = database.CreateContext())
        {
            foreach (var org in new[] { heldOrg, freeOrg })
            {
                // A live deployment with an old and a recent event and an old stopped replica; a long-deleted one; a
                // recently deleted one.
                foreach (var (kind, deletedAt) in new[] { ("live", (DateTimeOffset?)null), ("deleted-long-ago", old), ("deleted-recently", recent) })
                {
                    var deployment = Deployment(org, kind, deletedAt);
                    deployments[(org, kind)] = deployment.Id;
                    seed.Deployments.Add(deployment);
                }

                var live = deployments[(org, "live")];
                seed.DeploymentEvents.Add(new Sluice.Deployments.DeploymentEvent { Id = Guid.NewGuid(), DeploymentId = live, At = old, Kind = "scaled" });
                seed.DeploymentEvents.Add(new Sluice.Deployments.DeploymentEvent { Id = Guid.NewGuid(), DeploymentId = live, At = recent, Kind = "scaled" });
                seed.DeploymentReplicas.Add(Replica(org, live, stoppedAt: old));
                seed.DeploymentReplicas.Add(Replica(org, live, stoppedAt: recent));
                seed.DeploymentReplicas.Add(Replica(org, live, stoppedAt: null));
            }

            await seed.SaveChangesAsync();
        }

        Assert.Equal(HttpStatusCode.Created, (await op.PostAsJsonAsync("/api/v1/admin/legal-holds", new { scope = "org", organizationId = heldOrg, reason = "Matter 2026-30: preservation notice" })).StatusCode);
        var result = await SweepAsync(op);

        Assert.Equal((3, 3), Result(result, RetentionClass.DeploymentMetadata)); // an event, a replica and a deployment each
        await using var db = database.CreateContext();
        var heldLive = deployments[(heldOrg, "live")];
        var freeLive = deployments[(freeOrg, "live")];
        // Only the seeded kind: the scheduler running in this server may add its own events (unschedulable) meanwhile.
        Assert.Equal(2, await db.DeploymentEvents.CountAsync(e => e.DeploymentId == heldLive && e.Kind == "scaled"));
        Assert.Equal(1, await db.DeploymentEvents.CountAsync(e => e.DeploymentId == freeLive && e.Kind == "scaled"));
        Assert.Equal(3, await db.DeploymentReplicas.CountAsync(r => r.OrganizationId == heldOrg));
        Assert.Equal(2, await db.DeploymentReplicas.CountAsync(r => r.OrganizationId == freeOrg && (r.StoppedAt == null || r.StoppedAt > old)));
        Assert.Equal(3, await db.Deployments.CountAsync(d => d.OrganizationId == heldOrg));
        Assert.Equal(["deleted-recently", "live"], (await db.Deployments.Where(d => d.OrganizationId == freeOrg).Select(d => d.Name).ToListAsync()).Order());
    }

    private static Sluice.Deployments.Deployment Deployment(Guid org, string name, DateTimeOffset? deletedAt) => new()
    {
        Id = Guid.NewGuid(),
        OrganizationId = org,
        Name = name,
        Engine = Sluice.Deployments.DeploymentEngines.BuiltInLlama,
        ArtifactKind = Sluice.Deployments.ArtifactKinds.Path,
        Artifact = "/models/tiny.gguf",
        MinReplicas = 0,
        MaxReplicas = 1,
        TargetConcurrency = 1,
        IdleTimeoutSeconds = 300,
        LaunchJson = "{}",
        Generation = 1,
        Status = deletedAt is null ? Sluice.Deployments.DeploymentStatuses.ScaledToZero : Sluice.Deployments.DeploymentStatuses.Deleting,
        CreatedBy = "test",
        CreatedAt = (deletedAt ?? DateTimeOffset.UtcNow) - TimeSpan.FromDays(30),
        UpdatedAt = deletedAt ?? DateTimeOffset.UtcNow,
        DeletedAt = deletedAt,
    };

    private static Sluice.Deployments.DeploymentReplica Replica(Guid org, Guid deployment, DateTimeOffset? stoppedAt) => new()
    {
        Id = Guid.NewGuid(),
        DeploymentId = deployment,
        OrganizationId = org,
        Generation = 1,
        MachineId = Guid.NewGuid(),
        TaskId = Guid.NewGuid(),
        State = stoppedAt is null ? Sluice.Deployments.ReplicaStates.Ready : Sluice.Deployments.ReplicaStates.Stopped,
        CreatedAt = (stoppedAt ?? DateTimeOffset.UtcNow) - TimeSpan.FromDays(1),
        StoppedAt = stoppedAt,
    };

    [Fact]
    public async Task Audit_entries_are_not_pruned_past_an_entry_under_hold()
    {
        var clock = new ManualTimeProvider(DateTimeOffset.UtcNow);
        await using var database = await TestDatabase.CreateAsync(provider);
        await using var sluice = new SluiceFactory(database, new Dictionary<string, string?> { ["Audit:Retention"] = "1.00:00:00" }, clock);
        using var op = await OperatorAsync(sluice);
        var (_, orgId, _) = await TenantAsync(sluice, "audited@example.com");
        var audit = sluice.Services.GetRequiredService<IServiceScopeFactory>();
        Assert.Equal(HttpStatusCode.Created, (await op.PostAsJsonAsync("/api/v1/admin/legal-holds", new { scope = "org", organizationId = orgId, reason = "Matter 9" })).StatusCode);
        await using (var scope = audit.CreateAsyncScope())
        {
            await scope.ServiceProvider.GetRequiredService<Sluice.Audit.AuditService>().CheckpointAsync(CancellationToken.None);
        }

        clock.Advance(TimeSpan.FromDays(2));
        long pruned;
        await using (var scope = audit.CreateAsyncScope())
        {
            pruned = await scope.ServiceProvider.GetRequiredService<Sluice.Audit.AuditService>().PruneAsync(CancellationToken.None);
        }

        await using var db = database.CreateContext();
        var firstHeld = await db.AuditEntries.Where(e => e.OrganizationId == orgId).MinAsync(e => e.Seq);
        Assert.True(pruned <= firstHeld, $"pruned to {pruned}, past the held entry {firstHeld}");
        Assert.True(await db.AuditEntries.AnyAsync(e => e.OrganizationId == orgId && e.Action == "org.create"));
    }

    [Fact]
    public async Task A_hold_without_a_reason_or_scope_is_refused_and_audited_and_only_operators_place_holds()
    {
        await using var database = await TestDatabase.CreateAsync(provider);
        await using var sluice = new SluiceFactory(database);
        using var op = await OperatorAsync(sluice);
        var (owner, orgId, _) = await TenantAsync(sluice);

        var noReason = await op.PostAsJsonAsync("/api/v1/admin/legal-holds", new { scope = "org", organizationId = orgId, reason = "  " });
        var badScope = await op.PostAsJsonAsync("/api/v1/admin/legal-holds", new { scope = "everything", reason = "x" });
        var badClass = await op.PostAsJsonAsync("/api/v1/admin/legal-holds", new { scope = "class", retentionClass = "prompts", reason = "x" });
        var byOwner = await owner.PostAsJsonAsync("/api/v1/admin/legal-holds", new { scope = "org", organizationId = orgId, reason = "mine" });

        Assert.Equal(HttpStatusCode.BadRequest, noReason.StatusCode);
        Assert.Contains("reason", await noReason.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        Assert.Equal("application/problem+json", noReason.Content.Headers.ContentType?.MediaType);
        Assert.Equal(HttpStatusCode.BadRequest, badScope.StatusCode);
        Assert.Equal(HttpStatusCode.BadRequest, badClass.StatusCode);
        Assert.Contains("request_metadata", await badClass.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.Forbidden, byOwner.StatusCode);
        await using var db = database.CreateContext();
        Assert.Empty(await db.LegalHolds.ToListAsync());
        Assert.Equal(3, await db.AuditEntries.CountAsync(e => e.Action == "legal_hold.place" && e.Outcome == "refused"));
    }

    [Fact]
    public async Task Only_one_replica_sweeps_at_a_time()
    {
        await using var database = await TestDatabase.CreateAsync(provider);
        await using var sluice = new SluiceFactory(database);
        using var op = await OperatorAsync(sluice);
        var sweeper = sluice.Services.GetRequiredService<RetentionSweeper>();
        var server = sluice.Services.GetRequiredService<Microsoft.Extensions.Options.IOptions<Sluice.Hosting.ServerOptions>>().Value;
        await using var otherReplica = database.CreateContext();

        await using (var held = await Sluice.Hosting.ReplicaLock.TryTakeAsync(otherReplica, RetentionSweeper.SweepLockId, RetentionSweeper.LockFile(server), CancellationToken.None))
        {
            Assert.NotNull(held);
            Assert.Null(await sweeper.SweepAsync(CancellationToken.None));
            Assert.Equal(HttpStatusCode.Conflict, (await op.PostAsync("/api/v1/admin/retention/sweep", null)).StatusCode);
        }

        Assert.NotNull(await sweeper.SweepAsync(CancellationToken.None));
        await using var db = database.CreateContext();
        Assert.Equal(1, await db.AuditEntries.CountAsync(e => e.Action == "retention.run"));
    }

    internal static UsageEvent Usage(Guid orgId, string requestId, DateTimeOffset at) => new()
    {
        Id = Guid.NewGuid(),
        RequestId = requestId,
        OrganizationId = orgId,
        Endpoint = "chat.completions",
        Model = "echo",
        Status = 200,
        StartedAt = at,
    };

    internal static LoginEvent Login(Guid userId, DateTimeOffset at, string address = "198.51.100.23") => new()
    {
        Id = Guid.NewGuid(),
        UserId = userId,
        OccurredAt = at,
        IpAddress = address,
        UserAgent = "test",
        Outcome = "success",
    };

    private static Session Session(Guid userId, DateTimeOffset expiresAt) => new()
    {
        Id = Guid.NewGuid(),
        TokenHash = Convert.ToHexStringLower(Guid.NewGuid().ToByteArray()) + Convert.ToHexStringLower(Guid.NewGuid().ToByteArray()),
        UserId = userId,
        CreatedAt = expiresAt - TimeSpan.FromHours(12),
        ExpiresAt = expiresAt,
    };

    private static async Task<JsonElement> SweepAsync(HttpClient op)
    {
        var response = await op.PostAsync("/api/v1/admin/retention/sweep", null);
        Assert.True(response.StatusCode == HttpStatusCode.OK, await response.Content.ReadAsStringAsync());
        return await response.Content.ReadFromJsonAsync<JsonElement>();
    }

    private static (int Deleted, int Held) Result(JsonElement results, string retentionClass)
    {
        var result = results.EnumerateArray().Single(r => r.GetProperty("class").GetString() == retentionClass);
        return (result.GetProperty("deleted").GetInt32(), result.GetProperty("held").GetInt32());
    }
}

public sealed class SqliteRetentionTests() : RetentionTests(DatabaseProvider.Sqlite);

public sealed class PostgresRetentionTests() : RetentionTests(DatabaseProvider.Postgres);
