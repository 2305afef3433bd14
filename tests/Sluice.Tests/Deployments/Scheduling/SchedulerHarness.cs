using System.Text.Json;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Sluice.Compute;
using Sluice.Compute.Protocol;
using Sluice.Crypto;
using Sluice.Deployments;
using Sluice.Deployments.Scheduling;
using Sluice.Storage;
using Sluice.Tests.Compute;
using Sluice.Tests.TestSupport;

namespace Sluice.Tests.Deployments.Scheduling;

/// <summary>
/// A real server on a real database whose scheduler the test drives pass by pass on a manual clock (its own loop waits
/// 10 minutes of real time). Machines, deployments and the agents' task reports are written to the database the way the
/// join flow, the deployments API, the autoscaler and heartbeats write them.
/// </summary>
internal sealed class SchedulerHarness : IAsyncDisposable
{
    public const string L4 = "NVIDIA L4";
    public const string H100 = "NVIDIA H100 80GB HBM3";
    public const string Model = "/models/tiny.gguf";

    public static readonly Dictionary<string, string?> Settings = new()
    {
        ["Deployments:Scheduler:Interval"] = "00:10:00",
        ["Deployments:Scheduler:PassOnWake"] = "false",
        ["Deployments:Scheduler:LeaseDuration"] = "00:30:00",
        ["Compute:LivenessCheckInterval"] = "00:10:00",
    };

    private readonly bool _ownsDatabase;

    private SchedulerHarness(TestDatabase database, SluiceFactory sluice, ManualTimeProvider clock, bool ownsDatabase)
    {
        Database = database;
        Sluice = sluice;
        Clock = clock;
        _ownsDatabase = ownsDatabase;
    }

    public TestDatabase Database { get; }

    public SluiceFactory Sluice { get; }

    public ManualTimeProvider Clock { get; }

    public DeploymentScheduler Scheduler => Sluice.Services.GetRequiredService<DeploymentScheduler>();

    public static async Task<SchedulerHarness> StartAsync(DatabaseProvider provider)
    {
        var database = await TestDatabase.CreateAsync(provider);
        // Whole seconds: the database keeps microseconds, so times read back compare equal.
        return Start(database, new ManualTimeProvider(DateTimeOffset.FromUnixTimeSeconds(DateTimeOffset.UtcNow.ToUnixTimeSeconds())), ownsDatabase: true);
    }

    /// <summary>Another server replica on the same database and clock.</summary>
    public SchedulerHarness Replica() => Start(Database, Clock, ownsDatabase: false);

    private static SchedulerHarness Start(TestDatabase database, ManualTimeProvider clock, bool ownsDatabase)
    {
        var sluice = new SluiceFactory(database, Settings, clock);
        _ = sluice.Services; // starts the host (migrations, background loops)
        return new SchedulerHarness(database, sluice, clock, ownsDatabase);
    }

    public Task<SchedulerPass> PassAsync() => Scheduler.PassAsync(CancellationToken.None);

    /// <summary>A ready, alive machine with <paramref name="gpus"/> GPUs (<c>(name, count)</c> groups, indexed in order), the model file unless told otherwise, and the first <paramref name="busy"/> GPUs held by another task.</summary>
    public async Task<Guid> MachineAsync((string Name, int Count)[] gpus, Guid? organizationId = null, bool hasModel = true, int busy = 0, bool docker = false)
    {
        var now = Clock.GetUtcNow();
        var inventory = new MachineInventory
        {
            Gpus = gpus.SelectMany(g => Enumerable.Repeat(g.Name, g.Count)).Select((name, i) => new GpuDevice
            {
                Index = i, Uuid = $"GPU-{Guid.NewGuid()}", Name = name, MemoryMib = 81_559,
            }).ToList(),
            CpuCores = 16,
            MemoryBytes = 64L << 30,
            DockerAvailable = docker,
            Models = hasModel ? [new ModelFile { Path = Model, Bytes = 1234 }] : [],
        };
        var id = Guid.CreateVersion7(now);
        await using var db = Database.CreateContext();
        db.Machines.Add(new Machine
        {
            Id = id,
            OrganizationId = organizationId,
            Hostname = $"gpu-{id:N}"[..12],
            ServingUrl = "https://127.0.0.1:1",
            CertificateSha256 = ComputeKit.Certificate,
            CredentialHash = Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(id.ToByteArray())),
            ServingTokenSealed = "x",
            State = MachineStates.Ready,
            Liveness = MachineLiveness.Alive,
            Inventory = JsonSerializer.Serialize(inventory, ComputeJson.Default.MachineInventory),
            AgentVersion = "test",
            Labels = "{}",
            JoinTokenId = Guid.NewGuid(),
            JoinedAt = now,
            LastHeartbeatAt = now,
            ContactAt = now,
            StateChangedAt = now,
            LivenessChangedAt = now,
        });
        if (busy > 0)
        {
            db.MachineTasks.Add(new MachineTask
            {
                Id = Guid.CreateVersion7(now), MachineId = id, OrganizationId = organizationId, Kind = TaskKinds.Job, Runtime = TaskRuntimes.Process,
                GpuIndices = string.Join(',', Enumerable.Range(0, busy)), Generation = 1, Desired = TaskDesired.Running, SpecSealed = "x",
                State = TaskStates.Ready, CreatedBy = "test", CreatedAt = now, UpdatedAt = now,
            });
        }

        await db.SaveChangesAsync();
        return id;
    }

    public Task<Guid> MachineAsync(string gpuName, int gpus, Guid? organizationId = null, bool hasModel = true, int busy = 0) =>
        MachineAsync([(gpuName, gpus)], organizationId, hasModel, busy);

    /// <summary>A deployment row as the API writes it (built-in GGUF engine on <see cref="Model"/>).</summary>
    public async Task<Guid> DeploymentAsync(
        Guid organizationId, int desired, string? gpuType = L4, int gpus = 1, int minReplicas = -1, string? secretsJson = null, string name = "tiny")
    {
        var now = Clock.GetUtcNow();
        var id = Guid.CreateVersion7(now);
        await using var db = Database.CreateContext();
        db.Deployments.Add(new Deployment
        {
            Id = id,
            OrganizationId = organizationId,
            Name = name,
            Engine = DeploymentEngines.BuiltInLlama,
            ArtifactKind = ArtifactKinds.Path,
            Artifact = Model,
            GpuType = gpuType,
            GpusPerReplica = gpus,
            MinReplicas = minReplicas < 0 ? desired : minReplicas,
            MaxReplicas = Math.Max(desired, 4),
            TargetConcurrency = 4,
            IdleTimeoutSeconds = 300,
            ScaleDownDelaySeconds = 300,
            LaunchJson = JsonSerializer.Serialize(new DeploymentLaunchSettings(), DeploymentJson.Default.DeploymentLaunchSettings),
            SecretsSealed = secretsJson is null ? null : Sluice.Services.GetRequiredService<SecretBox>().Seal(secretsJson, $"deployment:{id}"),
            Generation = 1,
            DesiredReplicas = desired,
            Status = DeploymentStatuses.Pending,
            CreatedBy = "test",
            CreatedAt = now,
            UpdatedAt = now,
        });
        await db.SaveChangesAsync();
        return id;
    }

    public async Task UpdateDeploymentAsync(Guid id, Action<Deployment> change)
    {
        await using var db = Database.CreateContext();
        var deployment = await db.Deployments.SingleAsync(d => d.Id == id);
        change(deployment);
        await db.SaveChangesAsync();
    }

    public async Task UpdateMachineAsync(Guid id, Action<Machine> change)
    {
        await using var db = Database.CreateContext();
        var machine = await db.Machines.SingleAsync(m => m.Id == id);
        change(machine);
        await db.SaveChangesAsync();
    }

    public async Task<Deployment> GetDeploymentAsync(Guid id)
    {
        await using var db = Database.CreateContext();
        return await db.Deployments.AsNoTracking().SingleAsync(d => d.Id == id);
    }

    public async Task<List<DeploymentReplica>> ReplicasAsync(Guid deploymentId)
    {
        await using var db = Database.CreateContext();
        return await db.DeploymentReplicas.AsNoTracking().Where(r => r.DeploymentId == deploymentId).OrderBy(r => r.CreatedAt).ThenBy(r => r.Id).ToListAsync();
    }

    public async Task<List<DeploymentReplica>> ReplicasAsync(Guid deploymentId, string state) =>
        (await ReplicasAsync(deploymentId)).Where(r => r.State == state).ToList();

    public async Task<MachineTask> TaskAsync(Guid taskId)
    {
        await using var db = Database.CreateContext();
        return await db.MachineTasks.AsNoTracking().SingleAsync(t => t.Id == taskId);
    }

    public async Task<List<string>> EventsAsync(Guid deploymentId)
    {
        await using var db = Database.CreateContext();
        return await db.DeploymentEvents.AsNoTracking().Where(e => e.DeploymentId == deploymentId).OrderBy(e => e.At).ThenBy(e => e.Id).Select(e => e.Kind).ToListAsync();
    }

    public async Task<List<DeploymentEvent>> EventsAsync(Guid deploymentId, string kind)
    {
        await using var db = Database.CreateContext();
        return await db.DeploymentEvents.AsNoTracking().Where(e => e.DeploymentId == deploymentId && e.Kind == kind).OrderBy(e => e.At).ThenBy(e => e.Id).ToListAsync();
    }

    /// <summary>What the agent's heartbeat would write for a task.</summary>
    public async Task ReportAsync(Guid taskId, string state, string? reason = null, int? exitCode = null)
    {
        await using var db = Database.CreateContext();
        var task = await db.MachineTasks.SingleAsync(t => t.Id == taskId);
        task.State = state;
        task.Reason = reason;
        task.ExitCode = exitCode;
        task.ReportedGeneration = task.Generation;
        task.ReportedAt = Clock.GetUtcNow();
        await db.SaveChangesAsync();
    }

    /// <summary>The engines of every starting replica report ready.</summary>
    public async Task ReadyAsync(Guid deploymentId)
    {
        foreach (var replica in await ReplicasAsync(deploymentId, ReplicaStates.Starting))
        {
            await ReportAsync(replica.TaskId, TaskStates.Ready);
        }
    }

    /// <summary>The agents stop every task the server took out of their desired set.</summary>
    public async Task AgentsStopAsync()
    {
        await using var db = Database.CreateContext();
        foreach (var task in await db.MachineTasks.Where(t => t.Desired == TaskDesired.Stopped && t.State != TaskStates.Terminated).ToListAsync())
        {
            task.State = TaskStates.Terminated;
            task.Reason = TaskReasons.Stopped;
            task.ReportedGeneration = task.Generation;
        }

        await db.SaveChangesAsync();
    }

    /// <summary>Every GPU of every machine is held by at most one task that has not terminated.</summary>
    public async Task AssertNoGpuAssignedTwiceAsync()
    {
        await using var db = Database.CreateContext();
        var held = await db.MachineTasks.AsNoTracking().Where(t => t.State != TaskStates.Terminated && t.GpuIndices != "").ToListAsync();
        var doubled = held.SelectMany(t => t.Gpus().Select(g => (t.MachineId, g))).GroupBy(x => x).Where(g => g.Count() > 1).ToList();
        Assert.Empty(doubled);
    }

    public async ValueTask DisposeAsync()
    {
        await Sluice.DisposeAsync();
        if (_ownsDatabase)
        {
            await Database.DisposeAsync();
        }
    }
}
