using Sluice.Agent.Machine;

namespace Sluice.Tests.Agent;

public sealed class ProcParsersTests
{
    // /proc/stat's format (figures made up to give round answers).
    private const string Stat = """
        cpu  1000 50 400 8000 500 0 50 0 0 0
        cpu0 500 25 200 4000 250 0 25 0 0 0
        cpu1 500 25 200 4000 250 0 25 0 0 0
        intr 123456 0 0
        ctxt 987654
        btime 1764300000
        """;

    [Fact]
    public void CPU_use_is_the_busy_share_of_the_ticks_between_two_readings()
    {
        var first = ProcParsers.ParseCpuTimes(Stat)!.Value;
        var second = ProcParsers.ParseCpuTimes(Stat.Replace("cpu  1000 50 400 8000 500 0 50 0 0 0", "cpu  1300 50 500 8500 600 0 50 0 0 0", StringComparison.Ordinal))!.Value;

        Assert.Equal(1500UL, first.Busy); // user + nice + system + irq + softirq + steal
        Assert.Equal(8500UL, first.Idle); // idle + iowait
        Assert.Equal(15.0, first.PercentBusySince(null));
        Assert.Equal(400.0 / 1000 * 100, second.PercentBusySince(first), 6); // +400 busy, +600 idle
        Assert.Equal(0, first.PercentBusySince(second)); // counters that go backwards give no figure
    }

    [Theory]
    [InlineData("")]
    [InlineData("cpu0 1 2 3 4\n")]
    [InlineData("cpu  a b c d\n")]
    [InlineData("cpu  1 2\n")]
    public void Unreadable_stat_gives_no_reading(string stat) => Assert.Null(ProcParsers.ParseCpuTimes(stat));

    [Fact]
    public void Memory_is_MemTotal_and_MemAvailable_in_bytes()
    {
        const string meminfo = """
            MemTotal:       16318412 kB
            MemFree:          712344 kB
            MemAvailable:    9876543 kB
            Buffers:          123456 kB
            """;

        Assert.Equal((16318412L * 1024, 9876543L * 1024), ProcParsers.ParseMemInfo(meminfo));
        Assert.Null(ProcParsers.ParseMemInfo("MemTotal:       16318412 kB\n")); // a kernel without MemAvailable (< 3.14)
    }

    [Fact]
    public void Load_is_the_first_figure_of_loadavg()
    {
        Assert.Equal(0.52, ProcParsers.ParseLoad1("0.52 0.58 0.59 1/389 12345\n"));
        Assert.Null(ProcParsers.ParseLoad1(""));
        Assert.Null(ProcParsers.ParseLoad1("x 1 2"));
    }

    [Fact]
    public void This_machines_proc_files_parse()
    {
        Assert.NotNull(ProcParsers.ParseCpuTimes(File.ReadAllText("/proc/stat")));
        Assert.True(ProcParsers.ParseMemInfo(File.ReadAllText("/proc/meminfo"))!.Value.TotalBytes > 0);
        Assert.NotNull(ProcParsers.ParseLoad1(File.ReadAllText("/proc/loadavg")));
    }
}
