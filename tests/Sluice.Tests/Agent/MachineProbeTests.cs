using System.Diagnostics;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using Sluice.Agent.Machine;
using Sluice.Compute.Protocol;
using Sluice.Tests.TestSupport;

namespace Sluice.Tests.Agent;

/// <summary>The probe against the fake nvidia-smi (a real process), this machine's /proc, and a Docker stand-in on a Unix socket.</summary>
public sealed class MachineProbeTests
{
    private static MachineProbe Probe(string nvidiaSmi, LogCapture? logs = null, TimeSpan? timeout = null, string? dockerSocket = null) =>
        new(
            new MachineProbeSources
            {
                DiskPath = Path.GetTempPath(),
                NvidiaSmi = new NvidiaSmi(timeout ?? TimeSpan.FromSeconds(10), nvidiaSmi),
                Docker = new DockerProbe(dockerSocket ?? Path.Combine(Path.GetTempPath(), "no-docker-" + Guid.NewGuid().ToString("N"))),
            },
            TimeProvider.System,
            (logs ?? new LogCapture()).CreateLogger("probe"));

    [Fact]
    public async Task Eight_H100s_are_inventoried_with_driver_and_CUDA_versions_and_sampled()
    {
        using var smi = FakeNvidiaSmi.H100x8();

        var (inventory, telemetry) = await Probe(smi.ExecutablePath).SampleAsync(CancellationToken.None);

        Assert.Equal(8, inventory.Gpus.Count);
        Assert.Equal(Enumerable.Range(0, 8), inventory.Gpus.Select(g => g.Index));
        Assert.All(inventory.Gpus, g => Assert.Equal(("NVIDIA H100 80GB HBM3", 81559L), (g.Name, g.MemoryMib)));
        Assert.Equal(smi.Gpus.Select(g => g.Uuid), inventory.Gpus.Select(g => g.Uuid));
        Assert.Equal("550.54.15", inventory.DriverVersion);
        Assert.Equal("12.4", inventory.CudaVersion);
        Assert.Equal(8, telemetry.Gpus.Count);
        var busy = telemetry.Gpus[3];
        Assert.Equal((62311L, 81559L, 97.0, 34.0, 612.35, 0L), (busy.MemoryUsedMib, busy.MemoryTotalMib, busy.UtilizationPercent, busy.TemperatureC, busy.PowerDrawW, busy.EccErrors));
        Assert.Null(busy.XidErrors); // nvidia-smi has no query for them
    }

    [Fact]
    public async Task An_L4_without_power_or_ECC_figures_reports_them_as_null()
    {
        using var smi = FakeNvidiaSmi.L4x1();

        var (inventory, telemetry) = await Probe(smi.ExecutablePath).SampleAsync(CancellationToken.None);

        Assert.Equal(("NVIDIA L4", 23034L), (Assert.Single(inventory.Gpus).Name, inventory.Gpus[0].MemoryMib));
        Assert.Equal("12.2", inventory.CudaVersion);
        var gpu = Assert.Single(telemetry.Gpus);
        Assert.Null(gpu.PowerDrawW);
        Assert.Null(gpu.EccErrors);
        Assert.Equal(34, gpu.TemperatureC);
    }

    [Fact]
    public async Task Figures_changed_between_calls_show_in_the_next_sample()
    {
        using var smi = FakeNvidiaSmi.L4x1();
        var probe = Probe(smi.ExecutablePath);
        await probe.SampleAsync(CancellationToken.None);

        smi.Update(g => g with { MemoryUsedMib = 20000, Utilization = "88", Temperature = "71", Ecc = "2" });
        var (_, telemetry) = await probe.SampleAsync(CancellationToken.None);

        var gpu = Assert.Single(telemetry.Gpus);
        Assert.Equal((20000L, 88.0, 71.0, 2L), (gpu.MemoryUsedMib, gpu.UtilizationPercent, gpu.TemperatureC, gpu.EccErrors));
    }

    [Fact]
    public async Task Without_nvidia_smi_the_machine_has_no_GPUs_and_no_error()
    {
        var logs = new LogCapture();

        var (inventory, telemetry) = await Probe("/nonexistent/nvidia-smi", logs).SampleAsync(CancellationToken.None);

        Assert.Empty(inventory.Gpus);
        Assert.Null(inventory.CudaVersion);
        Assert.Empty(telemetry.Gpus);
        Assert.DoesNotContain(logs.Lines, l => l.StartsWith("Warning", StringComparison.Ordinal) || l.StartsWith("Error", StringComparison.Ordinal));
        Assert.True(inventory.CpuCores > 0);
        Assert.True(inventory.MemoryBytes > 0);
        Assert.True(inventory.DiskBytes > 0);
        Assert.False(string.IsNullOrEmpty(inventory.OperatingSystem));
        Assert.InRange(telemetry.MemoryUsedBytes, 1, telemetry.MemoryTotalBytes);
        Assert.InRange(telemetry.DiskUsedBytes, 1, telemetry.DiskTotalBytes);
        Assert.InRange(telemetry.CpuPercent, 0, 100);
    }

    [Fact]
    public async Task A_hung_nvidia_smi_is_stopped_at_the_timeout_and_the_GPUs_stay_inventoried_without_figures()
    {
        using var smi = FakeNvidiaSmi.H100x8();
        var logs = new LogCapture();
        var probe = Probe(smi.ExecutablePath, logs, TimeSpan.FromSeconds(1));
        await probe.SampleAsync(CancellationToken.None);

        smi.Hang = true;
        var clock = Stopwatch.StartNew();
        var (inventory, telemetry) = await probe.SampleAsync(CancellationToken.None);

        Assert.InRange(clock.Elapsed, TimeSpan.FromSeconds(0.9), TimeSpan.FromSeconds(8));
        Assert.Equal(8, inventory.Gpus.Count); // a wedged driver does not make the GPUs vanish
        AssertEveryGpuReportedWithoutFigures(inventory, telemetry);
        Assert.Contains(logs.Lines, l => l.Contains("did not answer within 1 s", StringComparison.Ordinal));
        await Eventually.TrueAsync(() => SleepingChildren().Count == 0, "the hung nvidia-smi to be killed");
    }

    [Fact]
    public async Task A_failing_driver_gives_no_GPU_figures_and_one_warning_and_recovery_is_noticed()
    {
        using var smi = FakeNvidiaSmi.H100x8();
        var logs = new LogCapture();
        var probe = Probe(smi.ExecutablePath, logs);
        await probe.SampleAsync(CancellationToken.None);

        smi.FailWithoutDriver = true;
        var (inventory, telemetry) = await probe.SampleAsync(CancellationToken.None);
        await probe.SampleAsync(CancellationToken.None);
        Assert.Equal(8, inventory.Gpus.Count);
        AssertEveryGpuReportedWithoutFigures(inventory, telemetry);
        Assert.Single(logs.Lines, l => l.Contains("nvidia-smi failed (exit code 9)", StringComparison.Ordinal));

        smi.FailWithoutDriver = false;
        (_, telemetry) = await probe.SampleAsync(CancellationToken.None);
        Assert.Equal(8, telemetry.Gpus.Count);
        Assert.Contains(logs.Lines, l => l.Contains("answers again", StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_GPU_that_falls_off_the_bus_leaves_the_inventory_and_its_figures()
    {
        using var smi = FakeNvidiaSmi.H100x8();
        var probe = Probe(smi.ExecutablePath);
        await probe.SampleAsync(CancellationToken.None);

        smi.Lose(5);
        var (inventory, telemetry) = await probe.SampleAsync(CancellationToken.None);

        Assert.Equal([0, 1, 2, 3, 4, 6, 7], inventory.Gpus.Select(g => g.Index));
        Assert.Equal([0, 1, 2, 3, 4, 6, 7], telemetry.Gpus.Select(g => g.Index));
    }

    [Fact]
    public async Task Docker_is_available_when_its_socket_answers_ping()
    {
        var socket = Path.Combine(Path.GetTempPath(), $"sluice-docker-{Guid.NewGuid():N}.sock");
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(k => k.ListenUnixSocket(socket));
        await using var docker = builder.Build();
        docker.MapGet("/_ping", () => Results.Text("OK"));
        await docker.StartAsync();

        var (inventory, _) = await Probe("/nonexistent/nvidia-smi", dockerSocket: socket).SampleAsync(CancellationToken.None);
        Assert.True(inventory.DockerAvailable);

        await docker.StopAsync();
        (inventory, _) = await Probe("/nonexistent/nvidia-smi", dockerSocket: socket).SampleAsync(CancellationToken.None);
        Assert.False(inventory.DockerAvailable);
    }

    /// <summary>This process's children still sleeping in a hung fake call.</summary>
    private static List<int> SleepingChildren() =>
        Directory.EnumerateDirectories("/proc")
            .Select(d => int.TryParse(Path.GetFileName(d), out var pid) ? pid : 0)
            .Where(pid =>
            {
                try
                {
                    var stat = File.ReadAllText($"/proc/{pid}/stat");
                    var parent = int.Parse(stat[(stat.LastIndexOf(')') + 2)..].Split(' ')[1], System.Globalization.CultureInfo.InvariantCulture);
                    return parent == Environment.ProcessId && File.ReadAllText($"/proc/{pid}/cmdline").StartsWith("sleep\u00003600", StringComparison.Ordinal);
                }
                catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or FormatException)
                {
                    return false;
                }
            })
            .ToList();

    /// <summary>
    /// The server refuses a heartbeat whose telemetry leaves out a GPU of the inventory, so a GPU whose figures cannot be
    /// read is still reported, with none: the heartbeat the agent builds passes the server's own validation.
    /// </summary>
    private static void AssertEveryGpuReportedWithoutFigures(MachineInventory inventory, TelemetrySample telemetry)
    {
        Assert.Equal(inventory.Gpus.Select(g => (g.Index, g.Uuid)), telemetry.Gpus.Select(g => (g.Index, g.Uuid)));
        Assert.All(telemetry.Gpus, g => Assert.True(g.UtilizationPercent is null && g.TemperatureC is null && g.PowerDrawW is null && g.MemoryUsedMib == 0));
        var errors = new Sluice.Hosting.FieldErrors();
        Sluice.Compute.ProtocolValidation.Heartbeat(
            new HeartbeatRequest { Sequence = 2, AgentVersion = "test", Telemetry = telemetry }, inventory, telemetry.At, errors);
        Assert.False(errors.Any);
    }
}
