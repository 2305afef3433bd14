using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Sluice.Compute.Protocol;
using Sluice.Tests.TestSupport;

namespace Sluice.Tests.Compute;

/// <summary>Intent methods for the compute plane's tests: an operator, join tokens, a joined machine, heartbeats.</summary>
internal static class ComputeKit
{
    public const string Certificate = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    public static async Task<HttpClient> OperatorAsync(SluiceFactory sluice)
    {
        var client = sluice.Anonymous();
        var (_, account, secret) = Assert.Single(sluice.Credentials.Written);
        var login = await client.PostAsJsonAsync("/api/v1/auth/login", new { email = account, password = secret });
        Assert.Equal(HttpStatusCode.OK, login.StatusCode);
        return client;
    }

    public static async Task<(Guid Id, string Token)> CreateJoinTokenAsync(HttpClient client, Guid? orgId = null, int? ttlSeconds = null)
    {
        var response = await client.PostAsJsonAsync("/api/v1/machines/join-tokens", new { organizationId = orgId, ttlSeconds, description = "rack 7" });
        Assert.True(response.StatusCode == HttpStatusCode.Created, await response.Content.ReadAsStringAsync());
        var body = await response.Content.ReadFromJsonAsync<JsonElement>();
        return (body.GetProperty("details").GetProperty("id").GetGuid(), body.GetProperty("token").GetString()!);
    }

    public static MachineInventory Inventory(int gpus = 2, bool docker = false) => new()
    {
        Gpus = Enumerable.Range(0, gpus).Select(i => new GpuDevice { Index = i, Uuid = $"GPU-0000000{i}-aaaa-bbbb-cccc-dddddddddddd", Name = "NVIDIA H100 80GB HBM3", MemoryMib = 81559 }).ToList(),
        DriverVersion = "550.54.15",
        CudaVersion = "12.4",
        CpuCores = 32,
        MemoryBytes = 256L << 30,
        DiskBytes = 2L << 40,
        OperatingSystem = "Ubuntu 22.04",
        DockerAvailable = docker,
    };

    public static JoinRequest Join(string token, MachineInventory? inventory = null) => new()
    {
        Token = token,
        Hostname = "gpu-node-7",
        AgentVersion = "1.0.0",
        Inventory = inventory ?? Inventory(),
        ServingUrl = "https://10.0.0.7:8443",
        CertificateSha256 = Certificate,
        Labels = new Dictionary<string, string> { ["zone"] = "a" },
    };

    public static StringContent Json<T>(T value, System.Text.Json.Serialization.Metadata.JsonTypeInfo<T> type) =>
        new(JsonSerializer.Serialize(value, type), Encoding.UTF8, "application/json");

    public static Task<HttpResponseMessage> PostJoinAsync(HttpClient client, JoinRequest request) =>
        client.PostAsync(AgentPaths.Join, Json(request, ComputeJson.Default.JoinRequest));

    public static async Task<JoinResponse> JoinAsync(HttpClient client, string token, MachineInventory? inventory = null)
    {
        var response = await PostJoinAsync(client, Join(token, inventory));
        Assert.True(response.StatusCode == HttpStatusCode.Created, await response.Content.ReadAsStringAsync());
        return (await response.Content.ReadFromJsonAsync(ComputeJson.Default.JoinResponse))!;
    }

    public static HeartbeatRequest Heartbeat(DateTimeOffset at, MachineInventory? inventory = null, IReadOnlyList<TaskReport>? tasks = null, long sequence = 1)
    {
        var gpus = (inventory ?? Inventory()).Gpus;
        return new HeartbeatRequest
        {
            Sequence = sequence,
            AgentVersion = "1.0.0",
            Inventory = inventory,
            Telemetry = new TelemetrySample
            {
                At = at,
                CpuPercent = 12.5,
                Load1 = 0.7,
                MemoryUsedBytes = 10L << 30,
                MemoryTotalBytes = 256L << 30,
                DiskUsedBytes = 1L << 40,
                DiskTotalBytes = 2L << 40,
                Gpus = gpus.Select(g => new GpuSample
                {
                    Index = g.Index, Uuid = g.Uuid, MemoryUsedMib = 1000, MemoryTotalMib = g.MemoryMib, UtilizationPercent = 50, TemperatureC = 55, PowerDrawW = 300,
                }).ToList(),
            },
            Tasks = tasks ?? [],
        };
    }

    public static Task<HttpResponseMessage> PostHeartbeatAsync(HttpClient client, string credential, HeartbeatRequest request)
    {
        var message = new HttpRequestMessage(HttpMethod.Post, AgentPaths.Heartbeat) { Content = Json(request, ComputeJson.Default.HeartbeatRequest) };
        message.Headers.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", credential);
        return client.SendAsync(message);
    }

    public static async Task<HeartbeatResponse> HeartbeatAsync(HttpClient client, string credential, HeartbeatRequest request)
    {
        var response = await PostHeartbeatAsync(client, credential, request);
        Assert.True(response.StatusCode == HttpStatusCode.OK, await response.Content.ReadAsStringAsync());
        return (await response.Content.ReadFromJsonAsync(ComputeJson.Default.HeartbeatResponse))!;
    }

    public static async Task<JsonElement> ProblemAsync(HttpResponseMessage response, HttpStatusCode status)
    {
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == status, $"expected {status}, got {response.StatusCode}: {text}");
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        return JsonDocument.Parse(text).RootElement;
    }

    public static async Task<List<(string Action, string Target, string Outcome, string Actor)>> AuditAsync(TestDatabase database, string actionPrefix)
    {
        await using var db = database.CreateContext();
        return db.AuditEntries.Where(e => e.Action.StartsWith(actionPrefix)).OrderBy(e => e.Seq).AsEnumerable()
            .Select(e => (e.Action, e.Target, e.Outcome, e.Actor)).ToList();
    }
}
