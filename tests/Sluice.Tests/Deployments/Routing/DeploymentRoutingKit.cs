using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Sluice.Compute;
using Sluice.Compute.Protocol;
using Sluice.Crypto;
using Sluice.Deployments;
using Sluice.Deployments.Routing;
using Sluice.Storage;
using Sluice.Tests.Agent.Serving;
using Sluice.Tests.TestSupport;

namespace Sluice.Tests.Deployments.Routing;

/// <summary>
/// A real server on a real database, with deployment rows inserted as the API and the scheduler would write them (the
/// scheduler itself held off by its interval), and
/// for each machine a real agent serving endpoint (HTTPS, pinned certificate, serving token) in front of OpenAI-compatible
/// engine stand-ins on loopback (<see cref="FakeUpstream"/>: an engine is outside Sluice).
/// </summary>
internal sealed class DeploymentRoutingKit : IAsyncDisposable
{
    private readonly List<IAsyncDisposable> _owned = [];

    private DeploymentRoutingKit(TestDatabase database, SluiceFactory sluice)
    {
        Database = database;
        Sluice = sluice;
    }

    public TestDatabase Database { get; }

    public SluiceFactory Sluice { get; }

    public Guid OrgId { get; private set; }

    public string Key { get; private set; } = "";

    public HttpClient Owner { get; private set; } = null!;

    public HttpClient Client { get; private set; } = null!;

    public DeploymentDirectory Directory => Sluice.Services.GetRequiredService<DeploymentDirectory>();

    public DeploymentLoad Load => Sluice.Services.GetRequiredService<DeploymentLoad>();

    public static async Task<DeploymentRoutingKit> StartAsync(DatabaseProvider provider, Dictionary<string, string?>? settings = null, Action<IServiceCollection>? configure = null)
    {
        var database = await TestDatabase.CreateAsync(provider);
        var all = new Dictionary<string, string?>
        {
            ["Compute:AllowLoopbackServing"] = "true",
            ["Deployments:Routing:DirectoryRefreshInterval"] = "00:00:00.100",
            ["Deployments:Routing:KeepAliveInterval"] = "00:00:00.200",

            // These tests play the scheduler's part by hand (rows inserted as it would write them): its first pass comes
            // after its longest interval, well after any test here ends, so it never converges the hand-made rows.
            ["Deployments:Scheduler:Interval"] = "00:10:00",
            ["Deployments:Scheduler:LeaseDuration"] = "00:30:00",
            ["Deployments:Scheduler:PassOnWake"] = "false",
        };
        foreach (var (name, value) in settings ?? [])
        {
            all[name] = value;
        }

        var sluice = new SluiceFactory(database, all, configure: configure);
        var kit = new DeploymentRoutingKit(database, sluice);
        var (owner, orgId, key) = await GatewayKit.TenantAsync(sluice, "owner@example.com");
        kit.Owner = owner;
        kit.OrgId = orgId;
        kit.Key = key;
        kit.Client = sluice.WithKey(key);
        return kit;
    }

    /// <summary>An engine stand-in.</summary>
    public async Task<FakeUpstream> EngineAsync()
    {
        var engine = await FakeUpstream.StartAsync();
        _owned.Add(engine);
        return engine;
    }

    /// <summary>A machine: a real agent serving endpoint on loopback, and its row (alive, ready) with its pinned certificate and sealed serving token.</summary>
    public async Task<(Guid MachineId, StubSupervisor Tasks)> MachineAsync(string liveness = MachineLiveness.Alive, bool revoked = false)
    {
        var tasks = new StubSupervisor();
        var agent = await ServingKit.StartAsync(tasks);
        _owned.Add(agent);
        var id = Guid.NewGuid();
        await InsertMachineAsync(id, agent.Endpoint.Address.ToString(), agent.Fingerprint, agent.Token, liveness, revoked);
        return (id, tasks);
    }

    /// <summary>A machine row whose serving URL answers nothing (a closed port): connecting fails.</summary>
    public async Task<Guid> UnreachableMachineAsync()
    {
        using var probe = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        probe.Start();
        var port = ((System.Net.IPEndPoint)probe.LocalEndpoint).Port;
        probe.Stop();
        var id = Guid.NewGuid();
        await InsertMachineAsync(id, $"https://127.0.0.1:{port}", new string('0', 64), "st-unreachable", MachineLiveness.Alive, false);
        return id;
    }

    private async Task InsertMachineAsync(Guid id, string servingUrl, string fingerprint, string token, string liveness, bool revoked)
    {
        var box = Sluice.Services.GetRequiredService<SecretBox>();
        var now = DateTimeOffset.UtcNow;
        await using var db = Database.CreateContext();
        db.Machines.Add(new Machine
        {
            Id = id,
            Hostname = "gpu-" + id.ToString("N")[..6],
            ServingUrl = servingUrl,
            CertificateSha256 = fingerprint,
            CredentialHash = "unused-" + id.ToString("N"),
            CredentialRevokedAt = revoked ? now : null,
            ServingTokenSealed = box.Seal(token, AgentExchange.ServingTokenBinding(id)),
            State = MachineStates.Ready,
            Liveness = liveness,
            Inventory = "{}",
            AgentVersion = "test",
            Labels = "{}",
            JoinTokenId = Guid.NewGuid(),
            JoinedAt = now,
            LastHeartbeatAt = now,
            ContactAt = now,
            StateChangedAt = now,
            LivenessChangedAt = now,
        });
        await db.SaveChangesAsync();
    }

    public async Task<Guid> DeploymentAsync(
        string name, Guid? orgId = null, string status = DeploymentStatuses.Ready, int desired = 1, int min = 1, bool isPublic = false, string? reason = null,
        long? inputPrice = null, long? outputPrice = null)
    {
        var id = Guid.NewGuid();
        var now = DateTimeOffset.UtcNow;
        await using var db = Database.CreateContext();
        db.Deployments.Add(new Deployment
        {
            Id = id,
            OrganizationId = orgId ?? OrgId,
            Name = name,
            Engine = DeploymentEngines.BuiltInLlama,
            ArtifactKind = ArtifactKinds.Path,
            Artifact = "/models/tiny.gguf",
            GpusPerReplica = 0,
            MinReplicas = min,
            MaxReplicas = 4,
            TargetConcurrency = 4,
            IdleTimeoutSeconds = 300,
            ScaleDownDelaySeconds = 300,
            LaunchJson = "{}",
            Generation = 1,
            DesiredReplicas = desired,
            Status = status,
            StatusReason = reason,
            Public = isPublic,
            InputPerMillionMicros = inputPrice,
            OutputPerMillionMicros = outputPrice,
            CreatedBy = "test",
            CreatedAt = now,
            UpdatedAt = now,
        });
        await db.SaveChangesAsync();
        return id;
    }

    /// <summary>A replica of <paramref name="deploymentId"/> on <paramref name="machineId"/>; when ready and given an engine, the agent serves its task from that engine.</summary>
    public async Task<Guid> ReplicaAsync(
        Guid deploymentId, Guid machineId, StubSupervisor? tasks, FakeUpstream? engine, string state = ReplicaStates.Ready, bool coldStart = false,
        DateTimeOffset? createdAt = null, DateTimeOffset? readyAt = null)
    {
        var id = Guid.NewGuid();
        var taskId = Guid.NewGuid();
        if (tasks is not null && engine is not null)
        {
            tasks.Ready[taskId.ToString()] = engine.BaseUrl.Port;
        }

        var created = createdAt ?? DateTimeOffset.UtcNow;
        await using var db = Database.CreateContext();
        var orgId = await db.Deployments.Where(d => d.Id == deploymentId).Select(d => d.OrganizationId).SingleAsync();
        db.DeploymentReplicas.Add(new DeploymentReplica
        {
            Id = id,
            DeploymentId = deploymentId,
            OrganizationId = orgId,
            Generation = 1,
            MachineId = machineId,
            TaskId = taskId,
            GpuCount = 0,
            State = state,
            ColdStart = coldStart,
            CreatedAt = created,
            ReadyAt = readyAt ?? (state == ReplicaStates.Ready ? created : null),
        });
        await db.SaveChangesAsync();
        return id;
    }

    /// <summary>Reloads the directory now (as its refresher does every interval), so a test never runs against a stale one.</summary>
    public Task RefreshAsync() => Directory.RefreshAsync(TestContext.Current.CancellationToken);

    public async Task<Deployment> ReadDeploymentAsync(Guid id)
    {
        await using var db = Database.CreateContext();
        return await db.Deployments.AsNoTracking().SingleAsync(d => d.Id == id);
    }

    public async Task<List<DeploymentEvent>> EventsAsync(Guid id)
    {
        await using var db = Database.CreateContext();
        return await db.DeploymentEvents.AsNoTracking().Where(e => e.DeploymentId == id).ToListAsync();
    }

    /// <summary>Credits the organization's wallet (priced deployments hold before they forward).</summary>
    public async Task FundAsync(Guid orgId, long micros)
    {
        using var op = await GatewayKit.OperatorAsync(Sluice);
        var credit = await op.PostAsJsonAsync($"/api/v1/admin/orgs/{orgId}/wallet/credits", new { amountMicros = micros, reason = "test funds" });
        Assert.True(credit.IsSuccessStatusCode, await credit.Content.ReadAsStringAsync());
    }

    public async Task<(HttpClient Owner, Guid OrgId, string Key)> OtherTenantAsync() => await GatewayKit.TenantAsync(Sluice, "other@example.com");

    public static async Task<JsonElement> ErrorAsync(HttpResponseMessage response)
    {
        var body = await response.Content.ReadFromJsonAsync<JsonElement>();
        return body.GetProperty("error");
    }

    public async ValueTask DisposeAsync()
    {
        Client.Dispose();
        Owner.Dispose();
        await Sluice.DisposeAsync();
        foreach (var owned in _owned)
        {
            await owned.DisposeAsync();
        }

        await Database.DisposeAsync();
    }
}
