using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Sluice.Compute;
using Sluice.Storage;
using Sluice.Tests.TestSupport;
using static Sluice.Tests.Deployments.Scheduling.SchedulerHarness;

namespace Sluice.Tests.Deployments.Scheduling;

/// <summary>A deployment's secret reaches its replica's task spec for the agent, and nowhere else in plain text.</summary>
public sealed class SchedulerCanaryTests
{
    private const string SecretCanary = "canary-hub-token-5f1e9c2a7b";

    [Fact]
    public async Task A_deployments_secret_reaches_only_the_sealed_task_spec()
    {
        await using var harness = await StartAsync(DatabaseProvider.Sqlite);
        await harness.MachineAsync(L4, 1);
        var deployment = await harness.DeploymentAsync(Guid.NewGuid(), desired: 1, secretsJson: $$"""{"HF_TOKEN":"{{SecretCanary}}"}""");

        await harness.PassAsync();
        await harness.ReadyAsync(deployment);
        await harness.PassAsync();

        // What the agent gets (opened for its own machine): the secret, as the engine's environment.
        var replica = Assert.Single(await harness.ReplicasAsync(deployment));
        await using (var scope = harness.Sluice.Services.CreateAsyncScope())
        {
            var db = scope.ServiceProvider.GetRequiredService<SluiceDbContext>();
            var task = await db.MachineTasks.AsNoTracking().SingleAsync(t => t.Id == replica.TaskId);
            var spec = scope.ServiceProvider.GetRequiredService<AgentExchange>().OpenSpec(task);
            Assert.Equal(SecretCanary, spec.Secrets!["HF_TOKEN"]);
        }

        // The database files, the events and the log hold none of it.
        await harness.Sluice.DisposeAsync();
        var files = await Canary.DumpDirectoryAsync(harness.Database.Directory);
        Canary.AssertAbsent(files, SecretCanary, "the database");
        Canary.AssertAbsent(harness.Sluice.Logs.All, SecretCanary, "the log");
    }
}
