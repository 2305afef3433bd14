using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.EntityFrameworkCore;
using Sluice.Billing;
using Sluice.Cli;
using Sluice.Deployments.Billing;
using Sluice.Storage;
using Sluice.Tests.TestSupport;
using static Sluice.Tests.TestSupport.GatewayKit;

namespace Sluice.Tests.Deployments.Billing;

/// <summary>Prices per GPU-hour: the operator API and CLI, their bad input, their audit; and deployments' per-token pricing.</summary>
public sealed class GpuPricesTests
{
    [Fact]
    public async Task Operators_set_versioned_GPU_prices_that_are_audited_and_listed_with_the_one_in_force_marked()
    {
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Sqlite);
        await using var sluice = new SluiceFactory(database);
        using var op = await OperatorAsync(sluice);

        var now = await op.PostAsJsonAsync("/api/v1/gpu-prices", new { gpuType = GpuKit.L4, perGpuHourMicros = 800_000 });
        var later = await op.PostAsJsonAsync("/api/v1/gpu-prices", new { gpuType = GpuKit.L4, perGpuHourMicros = 900_000, effectiveFrom = DateTimeOffset.UtcNow.AddDays(1) });
        await op.PostAsJsonAsync("/api/v1/gpu-prices", new { gpuType = GpuKit.H100, perGpuHourMicros = 2_500_000 });

        Assert.Equal(HttpStatusCode.Created, now.StatusCode);
        Assert.Equal(HttpStatusCode.Created, later.StatusCode);
        var list = await op.GetFromJsonAsync<JsonElement>("/api/v1/gpu-prices");
        var l4 = list.EnumerateArray().Where(p => p.GetProperty("gpuType").GetString() == GpuKit.L4).ToList();
        Assert.Equal(2, l4.Count);
        Assert.Equal((900_000L, false), (l4[0].GetProperty("perGpuHourMicros").GetInt64(), l4[0].GetProperty("current").GetBoolean())); // newest first, not yet in force
        Assert.Equal((800_000L, true), (l4[1].GetProperty("perGpuHourMicros").GetInt64(), l4[1].GetProperty("current").GetBoolean()));
        Assert.Single((await op.GetFromJsonAsync<JsonElement>($"/api/v1/gpu-prices?gpuType={Uri.EscapeDataString(GpuKit.H100)}")).EnumerateArray());
        await using var db = database.CreateContext();
        var audit = await db.AuditEntries.Where(a => a.Action == "gpu_price.set").ToListAsync();
        Assert.Equal(3, audit.Count);
        Assert.Contains(audit, a => a.Target.Contains(" 800000/h from ", StringComparison.Ordinal) && a.Target.EndsWith(GpuKit.L4, StringComparison.Ordinal));
    }

    [Fact]
    public async Task Bad_GPU_prices_get_a_400_naming_the_field_and_nothing_is_written_and_tenants_cannot_set_them()
    {
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Sqlite);
        await using var sluice = new SluiceFactory(database);
        using var op = await OperatorAsync(sluice);
        var (owner, _, _) = await TenantAsync(sluice);

        async Task<(HttpStatusCode, string)> SetAsync(object body)
        {
            var response = await op.PostAsJsonAsync("/api/v1/gpu-prices", body);
            var problem = await response.Content.ReadFromJsonAsync<JsonElement>();
            return (response.StatusCode, problem.TryGetProperty("errors", out var errors) ? string.Join(',', errors.EnumerateObject().Select(e => e.Name)) : "");
        }

        Assert.Equal((HttpStatusCode.BadRequest, "gpuType"), await SetAsync(new { perGpuHourMicros = 1 }));
        Assert.Equal((HttpStatusCode.BadRequest, "gpuType"), await SetAsync(new { gpuType = new string('x', 101), perGpuHourMicros = 1 }));
        Assert.Equal((HttpStatusCode.BadRequest, "gpuType"), await SetAsync(new { gpuType = "NVIDIA\nL4", perGpuHourMicros = 1 }));
        Assert.Equal((HttpStatusCode.BadRequest, "perGpuHourMicros"), await SetAsync(new { gpuType = GpuKit.L4 }));
        Assert.Equal((HttpStatusCode.BadRequest, "perGpuHourMicros"), await SetAsync(new { gpuType = GpuKit.L4, perGpuHourMicros = -1 }));
        Assert.Equal((HttpStatusCode.BadRequest, "perGpuHourMicros"), await SetAsync(new { gpuType = GpuKit.L4, perGpuHourMicros = 0.5 }));
        Assert.Equal((HttpStatusCode.BadRequest, "perGpuHourMicros"), await SetAsync(new { gpuType = GpuKit.L4, perGpuHourMicros = 10_000_000_001 }));
        Assert.Equal((HttpStatusCode.BadRequest, "effectiveFrom"), await SetAsync(new { gpuType = GpuKit.L4, perGpuHourMicros = 1, effectiveFrom = DateTimeOffset.UtcNow.AddHours(-1) }));
        Assert.Equal(HttpStatusCode.Forbidden, (await owner.PostAsJsonAsync("/api/v1/gpu-prices", new { gpuType = GpuKit.L4, perGpuHourMicros = 1 })).StatusCode);
        Assert.Equal(HttpStatusCode.Forbidden, (await owner.GetAsync("/api/v1/gpu-prices")).StatusCode);

        await using var db = database.CreateContext();
        Assert.Empty(await db.Set<GpuPrice>().ToListAsync());
        Assert.Empty(await db.AuditEntries.Where(a => a.Action == "gpu_price.set").ToListAsync());
    }

    [Fact]
    public async Task The_CLI_sets_and_lists_GPU_prices_and_refuses_bad_ones_with_an_error_line()
    {
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Sqlite);
        var kit = new ProcessKit(database);
        await kit.RunAsync("migrate");

        var set = await kit.RunAsync("gpu-prices", "set", "--gpu", GpuKit.H100, "--per-hour", "2.345679");
        var (code, _, stderr) = await SluiceProcess.RunAsync(kit.OnDatabase("gpu-prices", "set", "--gpu", GpuKit.L4, "--per-hour", "-1"));
        var list = await kit.RunAsync("gpu-prices", "list");

        Assert.StartsWith($"{GpuKit.H100}: 2.345679 per GPU-hour from ", set, StringComparison.Ordinal);
        Assert.Equal(ExitCodes.Failure, code);
        Assert.StartsWith("error: perGpuHourMicros: must be a whole number of micro-units", stderr, StringComparison.Ordinal);
        Assert.Contains($"* {GpuKit.H100}", list, StringComparison.Ordinal);
        Assert.DoesNotContain(GpuKit.L4, list, StringComparison.Ordinal);
    }

    [Fact]
    public void A_deployments_per_token_prices_become_its_route_pricing()
    {
        var deployment = GpuKit.Deployment(Guid.NewGuid(), GpuKit.L4, gpus: 1, minReplicas: 0);
        Assert.Null(DeploymentPricing.ForTokens(deployment)); // no token prices: not charged per token

        deployment.InputPerMillionMicros = 150_000;
        deployment.OutputPerMillionMicros = 600_000;
        var pricing = DeploymentPricing.ForTokens(deployment);

        Assert.Equal(new RoutePricing(150_000, 600_000, 150_000, 0), pricing);
        Assert.Equal(150 + 600 + 1, pricing!.Cost(new Sluice.Gateway.TokenUsage(1_000, 1_001, 0))); // rounded up
        deployment.InputPerMillionMicros = null;
        Assert.Equal(new RoutePricing(0, 600_000, 0, 0), DeploymentPricing.ForTokens(deployment));
    }
}
