using System.Net;
using System.Net.Http.Json;
using Microsoft.EntityFrameworkCore;
using Sluice.Storage;
using Sluice.Tests.Compute;
using Sluice.Tests.TestSupport;

namespace Sluice.Tests.Deployments;

/// <summary>The "Bad input" for deployments: a clear 4xx naming the field, nothing created, the refusal audited.</summary>
public sealed class DeploymentValidationTests
{
    [Fact]
    public async Task Every_bad_create_is_refused_by_field_creates_nothing_and_is_audited()
    {
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Sqlite);
        await using var sluice = new SluiceFactory(database);
        await using var kit = await DeploymentKit.CreateAsync(sluice);
        await using (var db = database.CreateContext())
        {
            db.CatalogModels.Add(new Sluice.Gateway.CatalogModel { Id = "gpt-4o-mini", CreatedAt = DateTimeOffset.UtcNow });
            await db.SaveChangesAsync();
        }

        Dictionary<string, object?> With(params (string Key, object? Value)[] changes)
        {
            var body = kit.Body();
            foreach (var (key, value) in changes)
            {
                if (value is null)
                {
                    body.Remove(key);
                }
                else
                {
                    body[key] = value;
                }
            }

            return body;
        }

        var cases = new (Dictionary<string, object?> Body, string Field)[]
        {
            (With(("organizationId", null)), "organizationId"),
            (With(("engine", "tensorrt")), "engine"),
            (With(("engine", null)), "engine"),
            (With(("gpuType", DeploymentKit.L4)), "gpuType"), // only organization B's private machine has one
            (With(("gpuType", "AMD Instinct MI300X")), "gpuType"),
            (With(("gpusPerReplica", 9)), "gpusPerReplica"),
            (With(("gpusPerReplica", 3)), "gpusPerReplica"), // the largest machine has 2
            (With(("gpusPerReplica", -1)), "gpusPerReplica"),
            (With(("minReplicas", -1)), "minReplicas"),
            (With(("maxReplicas", 0)), "maxReplicas"),
            (With(("minReplicas", 3), ("maxReplicas", 2)), "minReplicas"),
            (With(("maxReplicas", 65)), "maxReplicas"),
            (With(("targetConcurrency", 0)), "targetConcurrency"),
            (With(("targetConcurrency", -5)), "targetConcurrency"),
            (With(("targetConcurrency", 1_000_000)), "targetConcurrency"),
            (With(("idleTimeoutSeconds", 5)), "idleTimeoutSeconds"),
            (With(("idleTimeoutSeconds", 100_000)), "idleTimeoutSeconds"),
            (With(("scaleDownDelaySeconds", -1)), "scaleDownDelaySeconds"),
            (With(("name", "Acme-Tiny")), "name"),
            (With(("name", "-tiny")), "name"),
            (With(("name", "")), "name"),
            (With(("name", new string('a', 101))), "name"),
            (With(("name", "tiny model")), "name"),
            (With(("name", "echo")), "name"),
            (With(("name", "gpt-4o-mini")), "name"),
            (With(("description", new string('d', 501))), "description"),
            (With(("artifactKind", "path"), ("artifact", "models/tiny.gguf")), "artifact"),
            (With(("artifact", "/srv/sluice/models/../secret.gguf")), "artifact"),
            (With(("artifact", "/srv/sluice/models/missing.gguf")), "artifact"),
            (With(("artifact", "/srv/sluice/models/qwen")), "artifact"), // the built-in engine needs a .gguf
            (With(("artifactKind", "hub"), ("artifact", "not a hub id!")), "artifact"),
            (With(("artifactKind", "fine_tuned"), ("artifact", "ft-123")), "artifact"),
            (With(("artifactKind", "s3"), ("artifact", "s3://bucket/model")), "artifactKind"),
            (With(("artifact", null)), "artifact"), // builtin-llama needs one
            (With(("engine", "builtin-llama"), ("artifactKind", "hub"), ("artifact", "Qwen/Qwen2.5-0.5B-Instruct-GGUF")), "artifactKind"),
            (With(("engine", "builtin-embeddings")), "artifactKind"),
            (With(("engine", "vllm"), ("artifact", null)), "artifact"),
            (With(("engine", "vllm"), ("artifact", "Qwen/Qwen2.5-0.5B"), ("launch", new { runtime = "container" }), ("artifact", "/srv/sluice/models/qwen")), "artifact"),
            (With(("engine", "ollama"), ("artifact", "Qwen/Qwen2.5-0.5B")), "artifact"),
            (With(("engine", "ollama")), "artifactKind"),
            (With(("engine", "llama-cpp"), ("launch", new { runtime = "container" })), "launch.runtime"),
            (With(("engine", "custom-command"), ("artifact", null)), "launch.command"),
            (With(("engine", "custom-container"), ("artifact", null)), "launch.image"),
            (With(("engine", "custom-container"), ("artifact", null), ("launch", new { image = "ghcr.io/acme/server:1" })), "launch.containerPort"),
            (With(("launch", new { runtime = "vm" })), "launch.runtime"),
            (With(("launch", new { engineArgs = Enumerable.Repeat("--x", 65).ToArray() })), "launch.engineArgs"),
            (With(("launch", new { probe = new { path = "/metrics" } })), "launch.probe"),
            (With(("launch", new { environment = new Dictionary<string, string> { ["BAD-NAME"] = "1" } })), "launch.environment"),
            (With(("secrets", Enumerable.Range(0, 33).ToDictionary(i => $"S{i}", i => "v"))), "secrets"),
            (With(("secrets", new Dictionary<string, string> { ["HF TOKEN"] = "v" })), "secrets"),
            (With(("secrets", new Dictionary<string, string> { ["HF_TOKEN"] = "" })), "secrets"),
            (With(("minReplicas", "one")), "minReplicas"), // the wrong type: still a 400, never a 500
        };

        foreach (var (body, field) in cases)
        {
            var problem = await ComputeKit.ProblemAsync(await kit.OwnerA.PostAsJsonAsync("/api/v1/deployments", body), HttpStatusCode.BadRequest);
            if (field != "minReplicas" || body["minReplicas"] is not string)
            {
                Assert.True(problem.GetProperty("errors").TryGetProperty(field, out _), $"{field} not named: {problem}");
            }
        }

        // A name taken by a live deployment of the organization: 409 naming it.
        await DeploymentKit.CreatedAsync(await kit.OwnerA.PostAsJsonAsync("/api/v1/deployments", kit.Body()));
        var taken = await ComputeKit.ProblemAsync(await kit.OwnerA.PostAsJsonAsync("/api/v1/deployments", kit.Body()), HttpStatusCode.Conflict);
        Assert.True(taken.GetProperty("errors").TryGetProperty("name", out _));

        await using (var db = database.CreateContext())
        {
            Assert.Equal(1, await db.Deployments.CountAsync());
            Assert.Equal(1, await db.DeploymentEvents.CountAsync(e => e.Kind == "created")); // the scheduler may add its own
        }

        // Every refusal that reached the service is audited (the unreadable body never reaches it).
        Assert.Equal(cases.Length - 1 + 1, (await ComputeKit.AuditAsync(database, "deployment.create")).Count(a => a.Outcome == "refused"));
    }

    [Fact]
    public async Task Deployments_the_fleet_can_run_are_accepted_for_every_engine()
    {
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Sqlite);
        await using var sluice = new SluiceFactory(database);
        await using var kit = await DeploymentKit.CreateAsync(sluice);
        var bodies = new Dictionary<string, object?>[]
        {
            new() { ["organizationId"] = kit.OrgA, ["name"] = "embed", ["engine"] = "builtin-embeddings", ["minReplicas"] = 0 },
            new() { ["organizationId"] = kit.OrgA, ["name"] = "qwen/vllm", ["engine"] = "vllm", ["artifact"] = "Qwen/Qwen2.5-0.5B-Instruct", ["gpuType"] = DeploymentKit.H100, ["gpusPerReplica"] = 2 },
            new() { ["organizationId"] = kit.OrgA, ["name"] = "qwen-local", ["engine"] = "vllm", ["artifact"] = "/srv/sluice/models/qwen", ["gpusPerReplica"] = 1 },
            new() { ["organizationId"] = kit.OrgA, ["name"] = "llama-cpp", ["engine"] = "llama-cpp", ["artifact"] = DeploymentKit.Gguf },
            new() { ["organizationId"] = kit.OrgA, ["name"] = "ollama:small", ["engine"] = "ollama", ["artifact"] = "llama3.2:1b" },
            new() { ["organizationId"] = kit.OrgA, ["name"] = "tgi", ["engine"] = "tgi", ["artifact"] = "bigscience/bloom-560m", ["gpuType"] = DeploymentKit.H100 },
            new() { ["organizationId"] = kit.OrgA, ["name"] = "mine", ["engine"] = "custom-command", ["launch"] = new { command = "/opt/server", args = new[] { "--port", "{port}" } } },
            new() { ["organizationId"] = kit.OrgA, ["name"] = "boxed", ["engine"] = "custom-container", ["launch"] = new { image = "ghcr.io/acme/server:1", containerPort = 8080 } },
        };

        foreach (var body in bodies)
        {
            var created = await DeploymentKit.CreatedAsync(await kit.OwnerA.PostAsJsonAsync("/api/v1/deployments", body));
            Assert.Equal(body["name"], created.GetProperty("name").GetString());
        }

        var embed = (await DeploymentKit.OkAsync(await kit.OwnerA.GetAsync($"/api/v1/deployments?orgId={kit.OrgA}"))).EnumerateArray().First();
        Assert.Equal(("none", 0, 0, 1), (embed.GetProperty("artifactKind").GetString(), embed.GetProperty("desiredReplicas").GetInt32(),
            embed.GetProperty("minReplicas").GetInt32(), embed.GetProperty("maxReplicas").GetInt32()));
    }
}
