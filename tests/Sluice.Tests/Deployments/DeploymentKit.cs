using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Sluice.Compute.Protocol;
using Sluice.Tests.Compute;
using Sluice.Tests.TestSupport;

namespace Sluice.Tests.Deployments;

/// <summary>A fleet and organizations to deploy on: the platform pool's H100 machine with a GGUF file, and two organizations.</summary>
internal sealed class DeploymentKit : IAsyncDisposable
{
    public const string H100 = "NVIDIA H100 80GB HBM3";
    public const string L4 = "NVIDIA L4";
    public const string Gguf = "/srv/sluice/models/tiny.gguf";

    private DeploymentKit(SluiceFactory sluice, HttpClient op, HttpClient ownerA, Guid orgA, HttpClient ownerB, Guid orgB, HttpClient memberA)
    {
        Sluice = sluice;
        Operator = op;
        OwnerA = ownerA;
        OrgA = orgA;
        OwnerB = ownerB;
        OrgB = orgB;
        MemberA = memberA;
    }

    public SluiceFactory Sluice { get; }
    public HttpClient Operator { get; }
    public HttpClient OwnerA { get; }
    public Guid OrgA { get; }
    public HttpClient OwnerB { get; }
    public Guid OrgB { get; }
    public HttpClient MemberA { get; }

    /// <summary>
    /// The platform pool: one machine with 2 H100s reporting <see cref="Gguf"/> in its models directory. Organization
    /// B's private fleet: one machine with an L4 (which organization A may not use).
    /// </summary>
    public static async Task<DeploymentKit> CreateAsync(SluiceFactory sluice)
    {
        var op = await ComputeKit.OperatorAsync(sluice);
        var (ownerA, _) = await sluice.SignUpAndLoginAsync("owner-a@example.com");
        var orgA = await SluiceFactory.CreateOrganizationAsync(ownerA, "A");
        var (ownerB, _) = await sluice.SignUpAndLoginAsync("owner-b@example.com");
        var orgB = await SluiceFactory.CreateOrganizationAsync(ownerB, "B");
        var memberA = await sluice.AddMemberAsync(ownerA, orgA, "member-a@example.com", "member");

        using var agent = sluice.Anonymous();
        await ComputeKit.JoinAsync(agent, (await ComputeKit.CreateJoinTokenAsync(op)).Token,
            ComputeKit.Inventory(gpus: 2) with { Models = [new ModelFile { Path = Gguf, Bytes = 4096 }, new ModelFile { Path = "/srv/sluice/models/qwen", Bytes = 1 << 20 }] });
        await ComputeKit.JoinAsync(agent, (await ComputeKit.CreateJoinTokenAsync(ownerB, orgB)).Token, new MachineInventory
        {
            Gpus = [new GpuDevice { Index = 0, Uuid = "GPU-11111111-aaaa-bbbb-cccc-dddddddddddd", Name = L4, MemoryMib = 23034 }],
            CpuCores = 8,
            MemoryBytes = 32L << 30,
            DiskBytes = 1L << 40,
        });
        // GPU time on both types has a price (dedicated work on an unpriced type is refused), and the organizations'
        // wallets can pay for a few replicas.
        foreach (var (gpu, price) in new[] { (H100, 2_500_000L), (L4, 800_000L) })
        {
            var set = await op.PostAsJsonAsync("/api/v1/gpu-prices", new { gpuType = gpu, perGpuHourMicros = price });
            Assert.True(set.IsSuccessStatusCode, await set.Content.ReadAsStringAsync());
        }

        foreach (var org in new[] { orgA, orgB })
        {
            var credit = await op.PostAsJsonAsync($"/api/v1/admin/orgs/{org}/wallet/credits", new { amountMicros = 1_000_000_000, reason = "deployments under test" });
            Assert.True(credit.IsSuccessStatusCode, await credit.Content.ReadAsStringAsync());
        }

        return new DeploymentKit(sluice, op, ownerA, orgA, ownerB, orgB, memberA);
    }

    /// <summary>A valid body: the built-in engine on the platform pool's GGUF, one H100 per replica.</summary>
    public Dictionary<string, object?> Body(string name = "acme-tiny", Guid? org = null) => new()
    {
        ["organizationId"] = org ?? OrgA,
        ["name"] = name,
        ["engine"] = "builtin-llama",
        ["artifact"] = Gguf,
        ["gpuType"] = H100,
        ["gpusPerReplica"] = 1,
        ["minReplicas"] = 1,
        ["maxReplicas"] = 3,
        ["targetConcurrency"] = 4,
    };

    public static async Task<JsonElement> CreatedAsync(HttpResponseMessage response)
    {
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.Created, text);
        return JsonDocument.Parse(text).RootElement;
    }

    public static async Task<JsonElement> OkAsync(HttpResponseMessage response)
    {
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.OK, text);
        return JsonDocument.Parse(text).RootElement;
    }

    public async ValueTask DisposeAsync()
    {
        Operator.Dispose();
        OwnerA.Dispose();
        OwnerB.Dispose();
        MemberA.Dispose();
        await Task.CompletedTask;
    }
}
