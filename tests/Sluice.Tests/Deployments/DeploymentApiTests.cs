using System.Net;
using System.Net.Http.Json;
using Microsoft.AspNetCore.TestHost;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Sluice.Deployments;
using Sluice.Storage;
using Sluice.Tests.Compute;
using Sluice.Tests.TestSupport;

namespace Sluice.Tests.Deployments;

/// <summary>The deployments API: who may do what, what an update changes, secrets that never come back, events and audit.</summary>
public sealed class DeploymentApiTests
{
    [Theory]
    [InlineData(DatabaseProvider.Sqlite)]
    [InlineData(DatabaseProvider.Postgres)]
    public async Task An_owner_creates_updates_and_deletes_a_deployment_members_read_it_and_other_organizations_never_see_it(DatabaseProvider provider)
    {
        const string SecretCanary = "canary-hf-token-3b9e1d77";
        await using var database = await TestDatabase.CreateAsync(provider);
        await using var sluice = new SluiceFactory(database);
        await using var kit = await DeploymentKit.CreateAsync(sluice);

        var body = kit.Body();
        body["secrets"] = new Dictionary<string, string> { ["HF_TOKEN"] = SecretCanary };
        body["launch"] = new { engineArgs = new[] { "--context-size", "4096" } };
        var created = await DeploymentKit.CreatedAsync(await kit.OwnerA.PostAsJsonAsync("/api/v1/deployments", body));
        var id = created.GetProperty("id").GetGuid();
        Assert.Equal(("pending", 1, 1), (created.GetProperty("status").GetString(), created.GetProperty("generation").GetInt32(), created.GetProperty("desiredReplicas").GetInt32()));
        Assert.Equal("path", created.GetProperty("artifactKind").GetString());
        Assert.Equal(["HF_TOKEN"], created.GetProperty("secretNames").EnumerateArray().Select(s => s.GetString()));
        Assert.Equal(["--context-size", "4096"], created.GetProperty("launch").GetProperty("engineArgs").EnumerateArray().Select(s => s.GetString()));

        // Members read; a member cannot change; another organization's owner gets 404 for all of it.
        var listed = await DeploymentKit.OkAsync(await kit.MemberA.GetAsync($"/api/v1/deployments?orgId={kit.OrgA}"));
        Assert.Equal(id, Assert.Single(listed.EnumerateArray()).GetProperty("id").GetGuid());
        var got = await DeploymentKit.OkAsync(await kit.MemberA.GetAsync($"/api/v1/deployments/{id}"));
        Assert.Empty(got.GetProperty("replicas").EnumerateArray());
        await ComputeKit.ProblemAsync(await kit.MemberA.PostAsJsonAsync("/api/v1/deployments", kit.Body("other")), HttpStatusCode.Forbidden);
        await ComputeKit.ProblemAsync(await kit.MemberA.PatchAsJsonAsync($"/api/v1/deployments/{id}", new { maxReplicas = 5 }), HttpStatusCode.Forbidden);
        await ComputeKit.ProblemAsync(await kit.MemberA.DeleteAsync($"/api/v1/deployments/{id}"), HttpStatusCode.Forbidden);
        await ComputeKit.ProblemAsync(await kit.OwnerB.GetAsync($"/api/v1/deployments/{id}"), HttpStatusCode.NotFound);
        await ComputeKit.ProblemAsync(await kit.OwnerB.GetAsync($"/api/v1/deployments/{id}/events"), HttpStatusCode.NotFound);
        await ComputeKit.ProblemAsync(await kit.OwnerB.GetAsync($"/api/v1/deployments?orgId={kit.OrgA}"), HttpStatusCode.NotFound);
        await ComputeKit.ProblemAsync(await kit.OwnerB.PatchAsJsonAsync($"/api/v1/deployments/{id}", new { maxReplicas = 5 }), HttpStatusCode.NotFound);
        await ComputeKit.ProblemAsync(await kit.OwnerB.DeleteAsync($"/api/v1/deployments/{id}"), HttpStatusCode.NotFound);
        await ComputeKit.ProblemAsync(await kit.OwnerB.PostAsJsonAsync("/api/v1/deployments", kit.Body("sneaky", kit.OrgA)), HttpStatusCode.NotFound);
        Assert.Single((await DeploymentKit.OkAsync(await kit.Operator.GetAsync("/api/v1/deployments"))).EnumerateArray());

        // Scaling fields do not change what a replica runs; the desired count stays the autoscaler's, clamped into the new bounds.
        await using (var db = database.CreateContext())
        {
            await db.Deployments.Where(d => d.Id == id).ExecuteUpdateAsync(s => s.SetProperty(d => d.DesiredReplicas, 3));
        }

        var scaled = await DeploymentKit.OkAsync(await kit.OwnerA.PatchAsJsonAsync($"/api/v1/deployments/{id}", new { maxReplicas = 2, targetConcurrency = 16, idleTimeoutSeconds = 600 }));
        Assert.Equal((1, 2, 16, 2), (scaled.GetProperty("generation").GetInt32(), scaled.GetProperty("maxReplicas").GetInt32(),
            scaled.GetProperty("targetConcurrency").GetInt32(), scaled.GetProperty("desiredReplicas").GetInt32()));

        // What a replica runs: a new generation, which the scheduler rolls out. A secret is replaced, one added.
        const string NewSecretCanary = "canary-second-token-9a0c44";
        var respec = await DeploymentKit.OkAsync(await kit.OwnerA.PatchAsJsonAsync($"/api/v1/deployments/{id}", new
        {
            gpusPerReplica = 2,
            secrets = new Dictionary<string, string?> { ["HF_TOKEN"] = NewSecretCanary, ["EXTRA"] = "x" },
        }));
        Assert.Equal((2, 2), (respec.GetProperty("generation").GetInt32(), respec.GetProperty("gpusPerReplica").GetInt32()));
        Assert.Equal(["EXTRA", "HF_TOKEN"], respec.GetProperty("secretNames").EnumerateArray().Select(s => s.GetString()));
        var removed = await DeploymentKit.OkAsync(await kit.OwnerA.PatchAsJsonAsync($"/api/v1/deployments/{id}", new { secrets = new Dictionary<string, string?> { ["EXTRA"] = null } }));
        Assert.Equal(3, removed.GetProperty("generation").GetInt32());
        Assert.Equal(["HF_TOKEN"], removed.GetProperty("secretNames").EnumerateArray().Select(s => s.GetString()));

        // The secrets are sealed, bound to the deployment: they open for it and never appear anywhere in the clear.
        await using (var scope = sluice.Services.CreateAsyncScope())
        {
            var db = scope.ServiceProvider.GetRequiredService<SluiceDbContext>();
            var stored = await db.Deployments.AsNoTracking().SingleAsync(d => d.Id == id);
            var box = scope.ServiceProvider.GetRequiredService<Sluice.Crypto.SecretBox>();
            Assert.Equal(NewSecretCanary, DeploymentSecrets.Open(box, stored)["HF_TOKEN"]);
            Assert.ThrowsAny<System.Security.Cryptography.CryptographicException>(() => { box.Open(stored.SecretsSealed!, DeploymentSecrets.Binding(Guid.NewGuid())); });
            var spec = DeploymentLaunch.ToTaskSpec(stored, DeploymentSecrets.Open(box, stored));
            Assert.DoesNotContain(NewSecretCanary, spec.Process!.Args);
        }

        var everything = string.Join('\n', await kit.OwnerA.GetStringAsync($"/api/v1/deployments/{id}"), await kit.OwnerA.GetStringAsync($"/api/v1/deployments?orgId={kit.OrgA}"),
            await kit.OwnerA.GetStringAsync($"/api/v1/deployments/{id}/events"));
        var dump = await Canary.DumpDatabaseAsync(database);
        foreach (var canary in new[] { SecretCanary, NewSecretCanary })
        {
            Canary.AssertAbsent(everything, canary, "the API's answers");
            Canary.AssertAbsent(dump, canary, "the database");
            Canary.AssertAbsent(sluice.Logs.All, canary, "the log");
        }

        // Events, newest first; each change is audited.
        var events = (await DeploymentKit.OkAsync(await kit.MemberA.GetAsync($"/api/v1/deployments/{id}/events"))).EnumerateArray().Select(e => e.GetProperty("kind").GetString())
            .Where(k => k is "created" or "updated").ToList(); // the scheduler's own events (placements, unschedulable) aside
        Assert.Equal(["updated", "updated", "updated", "created"], events);

        // Delete: gone from list and get at once, marked for the scheduler to stop its replicas.
        Assert.Equal(HttpStatusCode.NoContent, (await kit.OwnerA.DeleteAsync($"/api/v1/deployments/{id}")).StatusCode);
        await ComputeKit.ProblemAsync(await kit.OwnerA.GetAsync($"/api/v1/deployments/{id}"), HttpStatusCode.NotFound);
        await ComputeKit.ProblemAsync(await kit.OwnerA.DeleteAsync($"/api/v1/deployments/{id}"), HttpStatusCode.NotFound);
        Assert.Empty((await DeploymentKit.OkAsync(await kit.OwnerA.GetAsync($"/api/v1/deployments?orgId={kit.OrgA}"))).EnumerateArray());
        await using (var db = database.CreateContext())
        {
            var deleted = await db.Deployments.SingleAsync(d => d.Id == id);
            Assert.Equal(DeploymentStatuses.Deleting, deleted.Status);
            Assert.NotNull(deleted.DeletedAt);
            Assert.Contains(db.DeploymentEvents.Where(e => e.DeploymentId == id), e => e.Kind == DeploymentEventKinds.Deleted);
        }

        // The name is free again once deleted.
        await DeploymentKit.CreatedAsync(await kit.OwnerA.PostAsJsonAsync("/api/v1/deployments", kit.Body()));

        var audit = await ComputeKit.AuditAsync(database, "deployment.");
        Assert.Equal(2, audit.Count(a => a.Action == "deployment.create" && a.Outcome == "success"));
        Assert.Equal(3, audit.Count(a => a.Action == "deployment.update" && a.Outcome == "success"));
        Assert.Contains(audit, a => a.Action == "deployment.delete" && a.Outcome == "success" && a.Target == $"deployment:{id}");
        Assert.Contains(audit, a => a.Action == "deployment.create" && a.Outcome == "refused"); // the member, and another org's owner
        Assert.Contains(audit, a => a.Action == "deployment.update" && a.Outcome == "refused");
    }

    [Theory]
    [InlineData(DatabaseProvider.Sqlite)]
    [InlineData(DatabaseProvider.Postgres)]
    public async Task Creates_racing_for_one_name_create_exactly_one_deployment(DatabaseProvider provider)
    {
        await using var database = await TestDatabase.CreateAsync(provider);
        await using var sluice = new SluiceFactory(database);
        await using var kit = await DeploymentKit.CreateAsync(sluice);
        var answers = await Task.WhenAll(Enumerable.Range(0, 6).Select(_ => kit.OwnerA.PostAsJsonAsync("/api/v1/deployments", kit.Body("racy"))));
        Assert.Equal(1, answers.Count(a => a.StatusCode == HttpStatusCode.Created));
        Assert.All(answers.Where(a => a.StatusCode != HttpStatusCode.Created), a => Assert.Equal(HttpStatusCode.Conflict, a.StatusCode));
        await using var db = database.CreateContext();
        Assert.Equal(1, await db.Deployments.CountAsync(d => d.Name == "racy"));
    }

    [Fact]
    public async Task An_update_refused_changes_nothing_and_a_failed_deployment_given_a_new_spec_is_pending_again()
    {
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Sqlite);
        await using var sluice = new SluiceFactory(database);
        await using var kit = await DeploymentKit.CreateAsync(sluice);
        var id = (await DeploymentKit.CreatedAsync(await kit.OwnerA.PostAsJsonAsync("/api/v1/deployments", kit.Body()))).GetProperty("id").GetGuid();

        var problem = await ComputeKit.ProblemAsync(await kit.OwnerA.PatchAsJsonAsync($"/api/v1/deployments/{id}", new { maxReplicas = 2, minReplicas = 3 }), HttpStatusCode.BadRequest);
        Assert.True(problem.GetProperty("errors").TryGetProperty("minReplicas", out _), problem.ToString());
        await ComputeKit.ProblemAsync(await kit.OwnerA.PatchAsJsonAsync($"/api/v1/deployments/{id}", new { name = "renamed" }), HttpStatusCode.BadRequest);
        await ComputeKit.ProblemAsync(await kit.OwnerA.PatchAsJsonAsync($"/api/v1/deployments/{id}", new { engine = "tensorrt" }), HttpStatusCode.BadRequest);
        var same = await DeploymentKit.OkAsync(await kit.OwnerA.GetAsync($"/api/v1/deployments/{id}"));
        Assert.Equal((3, 1, "builtin-llama", 1), (same.GetProperty("maxReplicas").GetInt32(), same.GetProperty("minReplicas").GetInt32(), same.GetProperty("engine").GetString(), same.GetProperty("generation").GetInt32()));
        Assert.Equal(3, (await ComputeKit.AuditAsync(database, "deployment.update")).Count(a => a.Outcome == "refused"));

        await using (var db = database.CreateContext())
        {
            await db.Deployments.Where(d => d.Id == id).ExecuteUpdateAsync(s => s.SetProperty(d => d.Status, DeploymentStatuses.Failed).SetProperty(d => d.StatusReason, "the engine exited"));
        }

        var retried = await DeploymentKit.OkAsync(await kit.OwnerA.PatchAsJsonAsync($"/api/v1/deployments/{id}", new { launch = new { engineArgs = new[] { "--context-size", "1024" } } }));
        Assert.Equal(("pending", 2), (retried.GetProperty("status").GetString(), retried.GetProperty("generation").GetInt32()));

        // Nothing changed: no new generation, no event (the scheduler's own events, such as unschedulable, aside).
        var unchanged = await DeploymentKit.OkAsync(await kit.OwnerA.PatchAsJsonAsync($"/api/v1/deployments/{id}", new { maxReplicas = 3 }));
        Assert.Equal(2, unchanged.GetProperty("generation").GetInt32());
        var apiEvents = (await DeploymentKit.OkAsync(await kit.OwnerA.GetAsync($"/api/v1/deployments/{id}/events"))).EnumerateArray()
            .Select(e => e.GetProperty("kind").GetString()).Where(k => k is DeploymentEventKinds.Created or DeploymentEventKinds.Updated).ToList();
        Assert.Equal([DeploymentEventKinds.Created, DeploymentEventKinds.Updated], apiEvents.Order());
    }

    [Fact]
    public async Task A_scale_the_wallet_cannot_cover_is_refused_with_402_naming_min_replicas_and_nothing_is_created()
    {
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Sqlite);
        await using var sluice = new SluiceFactory(database);
        await using var covered = sluice.WithWebHostBuilder(b => b.ConfigureTestServices(s => s.AddSingleton<IDeploymentBilling>(new CoversUpTo(2))));
        var kit = await DeploymentKit.CreateAsync(sluice);
        using var owner = covered.CreateClient(new Microsoft.AspNetCore.Mvc.Testing.WebApplicationFactoryClientOptions { HandleCookies = true });
        Assert.Equal(HttpStatusCode.OK, (await owner.PostAsJsonAsync("/api/v1/auth/login", new { email = "owner-a@example.com", password = SluiceFactory.Password })).StatusCode);

        var body = kit.Body();
        body["minReplicas"] = 3;
        body["maxReplicas"] = 4;
        var problem = await ComputeKit.ProblemAsync(await owner.PostAsJsonAsync("/api/v1/deployments", body), HttpStatusCode.PaymentRequired);
        Assert.True(problem.GetProperty("errors").TryGetProperty("minReplicas", out _), problem.ToString());
        Assert.Contains("covers 2", problem.GetProperty("detail").GetString());
        await using (var db = database.CreateContext())
        {
            Assert.Equal(0, await db.Deployments.CountAsync());
            Assert.Equal(0, await db.DeploymentEvents.CountAsync());
        }

        body["minReplicas"] = 2;
        var id = (await DeploymentKit.CreatedAsync(await owner.PostAsJsonAsync("/api/v1/deployments", body))).GetProperty("id").GetGuid();
        await ComputeKit.ProblemAsync(await owner.PatchAsJsonAsync($"/api/v1/deployments/{id}", new { minReplicas = 4 }), HttpStatusCode.PaymentRequired);
        Assert.Equal(2, (await DeploymentKit.OkAsync(await owner.GetAsync($"/api/v1/deployments/{id}"))).GetProperty("minReplicas").GetInt32());

        // Suspended for lack of funds: an update the wallet covers starts it again at its minimum.
        await using (var db = database.CreateContext())
        {
            await db.Deployments.Where(d => d.Id == id).ExecuteUpdateAsync(s => s.SetProperty(d => d.Status, DeploymentStatuses.Suspended).SetProperty(d => d.DesiredReplicas, 0));
        }

        var resumed = await DeploymentKit.OkAsync(await owner.PatchAsJsonAsync($"/api/v1/deployments/{id}", new { targetConcurrency = 2 }));
        Assert.Equal(("pending", 2), (resumed.GetProperty("status").GetString(), resumed.GetProperty("desiredReplicas").GetInt32()));
        Assert.Equal(2, (await ComputeKit.AuditAsync(database, "deployment.")).Count(a => a.Outcome == "refused"));
        await kit.DisposeAsync();
    }

    [Fact]
    public async Task An_owner_who_changes_what_a_published_deployment_runs_makes_it_private_again_until_an_operator_publishes_it()
    {
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Sqlite);
        await using var sluice = new SluiceFactory(database);
        await using var kit = await DeploymentKit.CreateAsync(sluice);
        var id = (await DeploymentKit.CreatedAsync(await kit.OwnerA.PostAsJsonAsync("/api/v1/deployments", kit.Body("published-model")))).GetProperty("id").GetGuid();
        await DeploymentKit.OkAsync(await kit.Operator.PostAsJsonAsync($"/api/v1/deployments/{id}/publish", new { inputPerMillionMicros = 150_000, outputPerMillionMicros = 600_000 }));

        // Scaling is not what it runs: still public.
        Assert.True((await DeploymentKit.OkAsync(await kit.OwnerA.PatchAsJsonAsync($"/api/v1/deployments/{id}", new { maxReplicas = 2 }))).GetProperty("public").GetBoolean());

        // A new engine argument is: other organizations' requests do not follow it until an operator publishes it again.
        var respecified = await DeploymentKit.OkAsync(await kit.OwnerA.PatchAsJsonAsync($"/api/v1/deployments/{id}", new { launch = new { engineArgs = new[] { "--context-size", "1024" } } }));
        Assert.False(respecified.GetProperty("public").GetBoolean());
        Assert.Equal(2, respecified.GetProperty("generation").GetInt32());
        Assert.Single(await ComputeKit.AuditAsync(database, "deployment.unpublish"), a => a.Outcome == "success");
        var kinds = (await DeploymentKit.OkAsync(await kit.OwnerA.GetAsync($"/api/v1/deployments/{id}/events"))).EnumerateArray().Select(e => e.GetProperty("kind").GetString()).ToList();
        Assert.Contains("unpublished", kinds);
    }

    [Fact]
    public async Task Operators_publish_with_prices_names_stay_unique_among_public_models_and_others_cannot_publish()
    {
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Sqlite);
        await using var sluice = new SluiceFactory(database);
        await using var kit = await DeploymentKit.CreateAsync(sluice);
        var a = (await DeploymentKit.CreatedAsync(await kit.OwnerA.PostAsJsonAsync("/api/v1/deployments", kit.Body("shared-name")))).GetProperty("id").GetGuid();

        await ComputeKit.ProblemAsync(await kit.OwnerA.PostAsJsonAsync($"/api/v1/deployments/{a}/publish", new { inputPerMillionMicros = 1, outputPerMillionMicros = 2 }), HttpStatusCode.Forbidden);
        var bad = await ComputeKit.ProblemAsync(await kit.Operator.PostAsJsonAsync($"/api/v1/deployments/{a}/publish", new { inputPerMillionMicros = -1, outputPerMillionMicros = 2.5 }), HttpStatusCode.BadRequest);
        Assert.True(bad.GetProperty("errors").TryGetProperty("inputPerMillionMicros", out _));
        Assert.True(bad.GetProperty("errors").TryGetProperty("outputPerMillionMicros", out _));
        await ComputeKit.ProblemAsync(await kit.Operator.PostAsJsonAsync($"/api/v1/deployments/{a}/publish", new { inputPerMillionMicros = 100 }), HttpStatusCode.BadRequest);

        var published = await DeploymentKit.OkAsync(await kit.Operator.PostAsJsonAsync($"/api/v1/deployments/{a}/publish", new { inputPerMillionMicros = 150_000, outputPerMillionMicros = 600_000 }));
        Assert.True(published.GetProperty("public").GetBoolean());
        Assert.Equal((150_000, 600_000), (published.GetProperty("inputPerMillionMicros").GetInt64(), published.GetProperty("outputPerMillionMicros").GetInt64()));

        // Another organization cannot take a public model's name.
        var b = kit.Body("shared-name", kit.OrgB);
        var taken = await ComputeKit.ProblemAsync(await kit.OwnerB.PostAsJsonAsync("/api/v1/deployments", b), HttpStatusCode.Conflict);
        Assert.True(taken.GetProperty("errors").TryGetProperty("name", out _));

        // Unpublished, B may use the name; then A's cannot be published again while B's exists.
        Assert.False((await DeploymentKit.OkAsync(await kit.Operator.PostAsync($"/api/v1/deployments/{a}/unpublish", null))).GetProperty("public").GetBoolean());
        b["engine"] = "vllm";
        b["artifact"] = "Qwen/Qwen2.5-0.5B-Instruct";
        await DeploymentKit.CreatedAsync(await kit.OwnerB.PostAsJsonAsync("/api/v1/deployments", b));
        await ComputeKit.ProblemAsync(await kit.Operator.PostAsJsonAsync($"/api/v1/deployments/{a}/publish", new { inputPerMillionMicros = 1, outputPerMillionMicros = 1 }), HttpStatusCode.Conflict);

        var events = (await DeploymentKit.OkAsync(await kit.OwnerA.GetAsync($"/api/v1/deployments/{a}/events"))).EnumerateArray().Select(e => e.GetProperty("kind").GetString())
            .Where(k => k is "created" or "published" or "unpublished").ToList(); // the scheduler's own events aside
        Assert.Equal(["unpublished", "published", "created"], events);
        var audit = await ComputeKit.AuditAsync(database, "deployment.publish");
        Assert.Equal((1, 4), (audit.Count(x => x.Outcome == "success"), audit.Count(x => x.Outcome == "refused")));
        Assert.Contains(await ComputeKit.AuditAsync(database, "deployment.unpublish"), x => x.Outcome == "success" && x.Actor != "cli");
    }

    private sealed class CoversUpTo(int replicas) : IDeploymentBilling
    {
        public ValueTask<(bool Covered, string? Refusal)> CanRunAsync(Deployment deployment, int wanted, CancellationToken cancellationToken) =>
            ValueTask.FromResult<(bool, string?)>(wanted <= replicas ? (true, null) : (false, $"the wallet covers {replicas} replicas of this deployment"));
    }
}
