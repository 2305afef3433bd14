using System.Text.Json;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Sluice.Compute;
using Sluice.Deployments;
using Sluice.Deployments.Autoscaling;
using Sluice.Tests.TestSupport;

namespace Sluice.Tests.Deployments.Autoscaling;

/// <summary>Deployments and replicas written straight into the database (the API and scheduler are other parts), and the autoscaler's parts of one server.</summary>
internal static class AutoscalerKit
{
    /// <summary>The background loops run on real time and never within a test; tests drive rounds themselves.</summary>
    public static readonly Dictionary<string, string?> Settings = new()
    {
        ["Deployments:Autoscaler:TickInterval"] = "00:10:00",
        ["Deployments:Autoscaler:ReportInterval"] = "00:10:00",
        ["Deployments:Autoscaler:ReportFreshness"] = "00:15:00",
        ["Deployments:Autoscaler:LeaseDuration"] = "00:20:00",

        // GPU time on the test machines' unpriced GPUs is free, so the wallet covers any scale; the wallet's refusal is
        // tested with a stand-in that refuses.
        ["Deployments:Billing:AllowUnpricedGpus"] = "true",

        // Replicas are inserted as the scheduler writes them (no machine tasks behind them): it stays off.
        ["Deployments:Scheduler:Interval"] = "00:10:00",
        ["Deployments:Scheduler:LeaseDuration"] = "00:30:00",
    };

    public static Dictionary<string, string?> With(params (string Key, string Value)[] extra)
    {
        var settings = new Dictionary<string, string?>(Settings);
        foreach (var (key, value) in extra)
        {
            settings[key] = value;
        }

        return settings;
    }

    public static (DeploymentLoad Load, DeploymentLoadReporter Reporter, DeploymentAutoscaler Autoscaler) Parts(SluiceFactory sluice) =>
        (sluice.Services.GetRequiredService<DeploymentLoad>(), sluice.Services.GetRequiredService<DeploymentLoadReporter>(),
            sluice.Services.GetRequiredService<DeploymentAutoscaler>());

    /// <summary>One round on one server: report its load, then decide (if it holds the lease).</summary>
    public static async Task<AutoscaleRound> RoundAsync(SluiceFactory sluice)
    {
        var (_, reporter, autoscaler) = Parts(sluice);
        await reporter.ReportAsync(CancellationToken.None);
        return await autoscaler.TickAsync(CancellationToken.None);
    }

    /// <summary>Inserts a deployment (the server must have started: it creates the schema).</summary>
    public static async Task<Deployment> DeploymentAsync(
        TestDatabase database, DateTimeOffset now, int min = 1, int max = 10, int target = 2, int desired = 1, int idleSeconds = 300,
        int scaleDownDelaySeconds = 300, string status = DeploymentStatuses.Ready)
    {
        var deployment = new Deployment
        {
            Id = Guid.NewGuid(),
            OrganizationId = Guid.NewGuid(),
            Name = $"model-{Guid.NewGuid():N}"[..20],
            Engine = DeploymentEngines.BuiltInLlama,
            ArtifactKind = ArtifactKinds.Path,
            Artifact = "/models/tiny.gguf",
            GpusPerReplica = 1,
            GpuType = "NVIDIA L4",
            MinReplicas = min,
            MaxReplicas = max,
            TargetConcurrency = target,
            IdleTimeoutSeconds = idleSeconds,
            ScaleDownDelaySeconds = scaleDownDelaySeconds,
            LaunchJson = "{}",
            Generation = 1,
            DesiredReplicas = desired,
            Status = status,
            CreatedBy = "user:test",
            CreatedAt = now,
            UpdatedAt = now,
        };
        await using var db = database.CreateContext();
        db.Deployments.Add(deployment);
        await db.SaveChangesAsync();
        return deployment;
    }

    /// <summary>A ready replica (and, with agent figures, its machine task reporting them).</summary>
    public static async Task<Guid> ReplicaAsync(
        TestDatabase database, Deployment deployment, DateTimeOffset now, string state = ReplicaStates.Ready, int? agentInFlight = null, int? queueDepth = null)
    {
        var replica = new DeploymentReplica
        {
            Id = Guid.NewGuid(),
            DeploymentId = deployment.Id,
            OrganizationId = deployment.OrganizationId,
            Generation = 1,
            MachineId = Guid.NewGuid(),
            TaskId = Guid.NewGuid(),
            GpuType = "NVIDIA L4",
            GpuCount = 1,
            State = state,
            CreatedAt = now,
            ReadyAt = state == ReplicaStates.Ready ? now : null,
        };
        await using var db = database.CreateContext();
        db.DeploymentReplicas.Add(replica);
        if (agentInFlight is not null || queueDepth is not null)
        {
            db.MachineTasks.Add(new MachineTask
            {
                Id = replica.TaskId,
                MachineId = replica.MachineId,
                OrganizationId = deployment.OrganizationId,
                Kind = "model_server",
                Runtime = "process",
                GpuIndices = "0",
                Generation = 1,
                Desired = TaskDesired.Running,
                SpecSealed = "sealed",
                State = "ready",
                ReportedGeneration = 1,
                InFlight = agentInFlight,
                QueueDepth = queueDepth,
                CreatedBy = "scheduler",
                CreatedAt = now,
                UpdatedAt = now,
            });
        }

        await db.SaveChangesAsync();
        return replica.Id;
    }

    public static async Task<int> DesiredAsync(TestDatabase database, Guid deploymentId)
    {
        await using var db = database.CreateContext();
        return await db.Deployments.Where(d => d.Id == deploymentId).Select(d => d.DesiredReplicas).SingleAsync();
    }

    public static async Task SetDesiredAsync(TestDatabase database, Guid deploymentId, int desired)
    {
        await using var db = database.CreateContext();
        await db.Deployments.Where(d => d.Id == deploymentId).ExecuteUpdateAsync(s => s.SetProperty(d => d.DesiredReplicas, desired));
    }

    /// <summary>The deployment's events of <paramref name="kind"/>, oldest first, with their details parsed.</summary>
    public static async Task<List<JsonElement>> EventsAsync(TestDatabase database, Guid deploymentId, string kind)
    {
        await using var db = database.CreateContext();
        var details = await db.DeploymentEvents.Where(e => e.DeploymentId == deploymentId && e.Kind == kind).OrderBy(e => e.At).ThenBy(e => e.Id)
            .Select(e => e.Detail).ToListAsync();
        return details.Select(d => JsonDocument.Parse(d!).RootElement.Clone()).ToList();
    }
}
