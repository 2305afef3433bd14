using Microsoft.EntityFrameworkCore;
using Sluice.Cli;
using Sluice.Deployments;
using Sluice.Storage;
using Sluice.Tests.TestSupport;

namespace Sluice.Tests.Deployments;

/// <summary>`sluice deployments …` as an operator runs it on the server: the same checks as the API, audited as the CLI.</summary>
public sealed class DeploymentsCommandTests
{
    [Fact]
    public async Task An_operator_manages_a_deployment_from_the_command_line_with_secrets_from_the_environment_only()
    {
        const string SecretCanary = "canary-cli-secret-0e2b71";
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Sqlite);
        string[] Db(params string[] args) => [.. args, "--database", database.ConnectionString, "--data-dir", database.Directory];
        Guid org;
        await using (var sluice = new SluiceFactory(database))
        {
            await using var kit = await DeploymentKit.CreateAsync(sluice); // the platform pool's H100 machine with the GGUF; organizations A and B
            org = kit.OrgA;
        }

        var (created, createdOut, createdErr) = await SluiceProcess.RunAsync(
            Db("deployments", "create", "--org", org.ToString(), "--name", "cli-tiny", "--engine", "builtin-llama", "--artifact", DeploymentKit.Gguf,
               "--gpu-type", DeploymentKit.H100, "--gpus", "1", "--min", "0", "--max", "2", "--engine-arg=--context-size", "--engine-arg=1024", "--secret", "HF_TOKEN"),
            new Dictionary<string, string?> { ["HF_TOKEN"] = SecretCanary });
        Assert.True(created == ExitCodes.Success, createdErr);
        Assert.Contains("Created deployment", createdOut, StringComparison.Ordinal);
        Guid id;
        await using (var db = database.CreateContext())
        {
            var d = await db.Deployments.SingleAsync();
            id = d.Id;
            Assert.Equal((0, 0, 2, DeploymentStatuses.Pending), (d.DesiredReplicas, d.MinReplicas, d.MaxReplicas, d.Status));
        }

        var (_, listOut, _) = await SluiceProcess.RunAsync(Db("deployments", "list"));
        Assert.Contains($"{id}", listOut, StringComparison.Ordinal);
        Assert.Contains("cli-tiny", listOut, StringComparison.Ordinal);
        var (_, getOut, _) = await SluiceProcess.RunAsync(Db("deployments", "get", id.ToString()));
        Assert.Contains("secrets:      HF_TOKEN", getOut, StringComparison.Ordinal);
        Assert.Contains("--context-size 1024", getOut, StringComparison.Ordinal);

        var (updated, updatedOut, updatedErr) = await SluiceProcess.RunAsync(Db("deployments", "update", id.ToString(), "--max", "3", "--remove-secret", "HF_TOKEN"));
        Assert.True(updated == ExitCodes.Success, updatedErr);
        Assert.Contains("generation 2", updatedOut, StringComparison.Ordinal);
        var (published, _, publishedErr) = await SluiceProcess.RunAsync(Db("deployments", "publish", id.ToString(), "--input-per-million", "100", "--output-per-million", "200"));
        Assert.True(published == ExitCodes.Success, publishedErr);
        Assert.Equal(ExitCodes.Success, (await SluiceProcess.RunAsync(Db("deployments", "unpublish", id.ToString()))).ExitCode);
        var (_, eventsOut, _) = await SluiceProcess.RunAsync(Db("deployments", "events", id.ToString()));
        Assert.Contains("unpublished", eventsOut, StringComparison.Ordinal);
        Assert.Contains("created", eventsOut, StringComparison.Ordinal);

        // Bad input: one error line naming the field, exit code 1, nothing written; a missing required option is a usage error.
        var (bad, _, badErr) = await SluiceProcess.RunAsync(Db("deployments", "create", "--org", org.ToString(), "--name", "x", "--engine", "tensorrt"));
        Assert.Equal(ExitCodes.Failure, bad);
        Assert.StartsWith("error: ", badErr, StringComparison.Ordinal);
        Assert.Contains("engine", badErr, StringComparison.Ordinal);
        var (unset, _, unsetErr) = await SluiceProcess.RunAsync(Db("deployments", "create", "--org", org.ToString(), "--name", "y", "--engine", "vllm", "--artifact", "a/b", "--secret", "NOT_SET_ANYWHERE"));
        Assert.Equal(ExitCodes.Failure, unset);
        Assert.Contains("--secret", unsetErr, StringComparison.Ordinal);
        Assert.NotEqual(ExitCodes.Success, (await SluiceProcess.RunAsync(Db("deployments", "create", "--name", "z"))).ExitCode);
        Assert.Equal(ExitCodes.Failure, (await SluiceProcess.RunAsync(Db("deployments", "get", Guid.NewGuid().ToString()))).ExitCode);

        Assert.Equal(ExitCodes.Success, (await SluiceProcess.RunAsync(Db("deployments", "delete", id.ToString()))).ExitCode);
        await using (var db = database.CreateContext())
        {
            Assert.Equal(1, await db.Deployments.CountAsync());
            Assert.NotNull((await db.Deployments.SingleAsync()).DeletedAt);
            var audit = await db.AuditEntries.Where(e => e.Action.StartsWith("deployment.")).ToListAsync();
            Assert.All(audit, e => Assert.Equal("cli", e.Actor));
            Assert.Equal(["deployment.create", "deployment.update", "deployment.publish", "deployment.unpublish", "deployment.create", "deployment.delete"],
                audit.OrderBy(e => e.Seq).Select(e => e.Action));
        }

        Canary.AssertAbsent(await Canary.DumpDatabaseAsync(database), SecretCanary, "the database");
    }
}
