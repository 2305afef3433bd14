using Sluice.Agent.Machine;
using Sluice.Tests.TestSupport;

namespace Sluice.Tests.Agent;

public sealed class NvidiaSmiParserTests
{
    // nvidia-smi --query-gpu=index,uuid,name,memory.total,memory.used,utilization.gpu,temperature.gpu,power.draw,driver_version
    //            --format=csv,noheader,nounits, in its documented format (", " between fields, [N/A] where unsupported).
    private const string TwoH100 = """
        0, GPU-5b9c4d3e-8f1a-2b7c-6d0e-9a8b7c6d5e4f, NVIDIA H100 80GB HBM3, 81559, 1, 0, 31, 69.54, 550.54.15
        1, GPU-0c2a71d9-13e4-8b5f-a6c7-d8e9f0a1b2c3, NVIDIA H100 80GB HBM3, 81559, 62311, 97, 58, 612.35, 550.54.15

        """;

    [Fact]
    public void Parses_every_field_of_the_query()
    {
        var gpus = NvidiaSmiParser.ParseQuery(TwoH100, out var skipped);

        Assert.Equal(0, skipped);
        Assert.Equal(2, gpus.Count);
        Assert.Equal(new GpuReading
        {
            Index = 1,
            Uuid = "GPU-0c2a71d9-13e4-8b5f-a6c7-d8e9f0a1b2c3",
            Name = "NVIDIA H100 80GB HBM3",
            MemoryTotalMib = 81559,
            MemoryUsedMib = 62311,
            UtilizationPercent = 97,
            TemperatureC = 58,
            PowerDrawW = 612.35,
            DriverVersion = "550.54.15",
        }, gpus[1]);
    }

    [Theory]
    [InlineData("[N/A]")]
    [InlineData("[Not Supported]")]
    [InlineData("[Unknown Error]")]
    [InlineData("N/A")]
    [InlineData("")]
    [InlineData("-5")]
    [InlineData("nan")]
    public void A_figure_the_driver_does_not_report_is_null_not_zero(string power)
    {
        var gpus = NvidiaSmiParser.ParseQuery($"0, GPU-8e1f2a3b-4c5d-6e7f-8091-a2b3c4d5e6f7, NVIDIA L4, 23034, 0, [N/A], 34, {power}, 535.104.05\n", out _);

        var gpu = Assert.Single(gpus);
        Assert.Null(gpu.PowerDrawW);
        Assert.Null(gpu.UtilizationPercent);
        Assert.Equal(34, gpu.TemperatureC);
        Assert.Equal(23034, gpu.MemoryTotalMib);
    }

    [Fact]
    public void Lines_that_are_not_GPUs_are_skipped_and_counted()
    {
        var output = """
            0, GPU-5b9c4d3e-8f1a-2b7c-6d0e-9a8b7c6d5e4f, NVIDIA H100 80GB HBM3, 81559, 1, 0, 31, 69.54, 550.54.15
            Unable to determine the device handle for GPU0000:2A:00.0: Unknown Error
            2, GPU-0c2a71d9-13e4-8b5f-a6c7-d8e9f0a1b2c3, NVIDIA H100 80GB HBM3, 81559
            x, GPU-0c2a71d9, NVIDIA, 1, 1, 1, 1, 1, 1
            """;

        var gpus = NvidiaSmiParser.ParseQuery(output, out var skipped);

        Assert.Equal([0], gpus.Select(g => g.Index));
        Assert.Equal(3, skipped);
    }

    [Fact]
    public void A_name_with_a_comma_keeps_the_figures_after_it()
    {
        var gpu = Assert.Single(NvidiaSmiParser.ParseQuery("0, GPU-1, Tesla V100-SXM2-16GB, rev. b, 16384, 0, 0, 30, 40.10, 470.1\n", out _));
        Assert.Equal("Tesla V100-SXM2-16GB, rev. b", gpu.Name);
        Assert.Equal(16384, gpu.MemoryTotalMib);
        Assert.Equal("470.1", gpu.DriverVersion);
    }

    [Fact]
    public void Empty_output_is_no_GPUs()
    {
        Assert.Empty(NvidiaSmiParser.ParseQuery("", out var skipped));
        Assert.Equal(0, skipped);
    }

    [Fact]
    public void Reads_uncorrected_ECC_errors_with_unsupported_as_null()
    {
        var ecc = NvidiaSmiParser.ParseEcc("0, 0\n1, 3\n2, [N/A]\n3, [Not Supported]\n");

        Assert.Equal(0, ecc[0]);
        Assert.Equal(3, ecc[1]);
        Assert.Null(ecc[2]);
        Assert.Null(ecc[3]);
    }

    [Fact]
    public void Reads_the_CUDA_version_from_the_banner()
    {
        using var h100 = FakeNvidiaSmi.H100x8();
        Assert.Equal("12.4", NvidiaSmiParser.ParseCudaVersion(h100.BannerOutput()));
        Assert.Equal("12.2", NvidiaSmiParser.ParseCudaVersion("| NVIDIA-SMI 535.104.05   Driver Version: 535.104.05   CUDA Version: 12.2     |"));
        Assert.Null(NvidiaSmiParser.ParseCudaVersion("| NVIDIA-SMI 535.104.05   Driver Version: 535.104.05   CUDA Version: N/A     |"));
        Assert.Null(NvidiaSmiParser.ParseCudaVersion(""));
    }

    [Fact]
    public void Parses_the_fakes_outputs_in_full()
    {
        using var h100 = FakeNvidiaSmi.H100x8();
        using var l4 = FakeNvidiaSmi.L4x1();

        var eight = NvidiaSmiParser.ParseQuery(h100.QueryOutput(), out _);
        var one = NvidiaSmiParser.ParseQuery(l4.QueryOutput(), out _);

        Assert.Equal(8, eight.Count);
        Assert.All(eight, g => Assert.Equal(81559, g.MemoryTotalMib));
        Assert.Equal(8, eight.Select(g => g.Uuid).Distinct().Count());
        Assert.All(eight, g => Assert.Matches("^GPU-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", g.Uuid));
        Assert.Null(Assert.Single(one).PowerDrawW);
        Assert.Equal("NVIDIA L4", one[0].Name);
    }
}
