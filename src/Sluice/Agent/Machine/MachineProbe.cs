using System.Runtime.InteropServices;
using Sluice.Compute.Protocol;

namespace Sluice.Agent.Machine;

/// <summary>Where the probe reads the machine: /proc, the data directory's file system, nvidia-smi, Docker.</summary>
public sealed record MachineProbeSources
{
    public string ProcDirectory { get; init; } = "/proc";

    /// <summary>A path on the file system whose size is reported (the agent's data directory).</summary>
    public required string DiskPath { get; init; }

    public NvidiaSmi NvidiaSmi { get; init; } = new(TimeSpan.FromSeconds(10));

    public DockerProbe Docker { get; init; } = new();

    public TimeSpan DockerTimeout { get; init; } = TimeSpan.FromSeconds(2);

    /// <summary>The models directory (<see cref="ModelScanner"/>); null offers no model files.</summary>
    public string? ModelsDirectory { get; init; }

    /// <summary>How often the models directory is scanned again (a change is sent with the next heartbeat).</summary>
    public TimeSpan ModelsRescanInterval { get; init; } = TimeSpan.FromSeconds(30);
}

/// <summary>
/// Reads the machine's inventory and one telemetry sample at a time. CPU use is the change in /proc/stat since the
/// previous sample. A failed or hung nvidia-smi leaves the last GPUs it reported in the inventory (a GPU that stops
/// answering is reported by its missing figures, not by vanishing) and gives a sample without GPU figures. Not
/// thread-safe: one caller (the heartbeat loop) samples at a time.
/// </summary>
public sealed class MachineProbe(MachineProbeSources sources, TimeProvider time, ILogger logger)
{
    private CpuTimes? _lastCpu;
    private IReadOnlyList<GpuDevice> _gpus = [];
    private string? _driverVersion;
    private string? _cudaVersion;
    private bool _cudaKnown;
    private ToolOutcome? _lastGpuOutcome;
    private IReadOnlyList<ModelFile>? _models;
    private DateTimeOffset _modelsScannedAt;

    public async Task<(MachineInventory Inventory, TelemetrySample Telemetry)> SampleAsync(CancellationToken cancellationToken)
    {
        var at = time.GetUtcNow();
        var gpuSamples = await ReadGpusAsync(cancellationToken);

        var cpu = ProcParsers.ParseCpuTimes(ReadProc("stat"));
        var cpuPercent = cpu is { } now ? now.PercentBusySince(_lastCpu) : 0;
        _lastCpu = cpu ?? _lastCpu;
        var memory = ProcParsers.ParseMemInfo(ReadProc("meminfo"));
        var load = ProcParsers.ParseLoad1(ReadProc("loadavg")) ?? 0;
        var (diskTotal, diskFree) = Disk();
        var docker = await sources.Docker.PingAsync(sources.DockerTimeout, cancellationToken);

        var inventory = new MachineInventory
        {
            Gpus = _gpus,
            DriverVersion = _driverVersion,
            CudaVersion = _cudaVersion,
            CpuCores = Environment.ProcessorCount,
            MemoryBytes = memory?.TotalBytes ?? 0,
            DiskBytes = diskTotal,
            OperatingSystem = RuntimeInformation.OSDescription,
            DockerAvailable = docker,
            Models = Models(at),
        };
        var telemetry = new TelemetrySample
        {
            At = at,
            CpuPercent = Math.Round(cpuPercent, 2),
            Load1 = load,
            MemoryTotalBytes = memory?.TotalBytes ?? 0,
            MemoryUsedBytes = memory is { } m ? m.TotalBytes - m.AvailableBytes : 0,
            DiskTotalBytes = diskTotal,
            DiskUsedBytes = diskTotal - diskFree,
            Gpus = gpuSamples,
        };
        return (inventory, telemetry);
    }

    private async Task<IReadOnlyList<GpuSample>> ReadGpusAsync(CancellationToken cancellationToken)
    {
        var query = await sources.NvidiaSmi.QueryAsync(cancellationToken);
        if (query.Outcome != _lastGpuOutcome)
        {
            // Said once per change, not every heartbeat.
            switch (query.Outcome)
            {
                case ToolOutcome.Absent:
                    AgentLog.NoNvidiaSmi(logger);
                    break;
                case ToolOutcome.Failed:
                    AgentLog.NvidiaSmiFailed(logger, query.ExitCode ?? -1);
                    break;
                case ToolOutcome.TimedOut:
                    AgentLog.NvidiaSmiTimedOut(logger, sources.NvidiaSmi.Timeout.TotalSeconds);
                    break;
                case ToolOutcome.Ok when _lastGpuOutcome is not null:
                    AgentLog.NvidiaSmiAnswers(logger);
                    break;
            }

            _lastGpuOutcome = query.Outcome;
        }

        switch (query.Outcome)
        {
            case ToolOutcome.Absent:
                _gpus = [];
                _driverVersion = null;
                _cudaVersion = null;
                return [];
            case ToolOutcome.Failed or ToolOutcome.TimedOut:
                // The GPUs are still in the inventory, and the server wants every one of them in each sample
                // (a missing one is refused as a bad heartbeat): report them with no figures.
                return _gpus.Select(g => new GpuSample { Index = g.Index, Uuid = g.Uuid, MemoryTotalMib = g.MemoryMib }).ToList();
        }

        var readings = NvidiaSmiParser.ParseQuery(query.Output, out var skipped);
        if (skipped > 0)
        {
            AgentLog.NvidiaSmiLinesSkipped(logger, skipped);
        }

        var gpus = readings.Select(g => new GpuDevice { Index = g.Index, Uuid = g.Uuid, Name = g.Name, MemoryMib = g.MemoryTotalMib ?? 0 }).ToList();
        if (!_cudaKnown || !gpus.SequenceEqual(_gpus))
        {
            var banner = await sources.NvidiaSmi.BannerAsync(cancellationToken);
            _cudaVersion = banner.Outcome == ToolOutcome.Ok ? NvidiaSmiParser.ParseCudaVersion(banner.Output) : _cudaVersion;
            _cudaKnown = banner.Outcome == ToolOutcome.Ok;
        }

        _gpus = gpus;
        _driverVersion = readings.Select(g => g.DriverVersion).FirstOrDefault(v => v is not null) ?? _driverVersion;

        var ecc = await sources.NvidiaSmi.EccAsync(cancellationToken);
        var eccByIndex = ecc.Outcome == ToolOutcome.Ok ? NvidiaSmiParser.ParseEcc(ecc.Output) : new Dictionary<int, long?>();

        return readings.Select(g => new GpuSample
        {
            Index = g.Index,
            Uuid = g.Uuid,
            MemoryTotalMib = g.MemoryTotalMib ?? 0,
            MemoryUsedMib = g.MemoryUsedMib ?? 0,
            UtilizationPercent = g.UtilizationPercent is { } u ? Math.Min(u, 100) : null,
            TemperatureC = g.TemperatureC,
            PowerDrawW = g.PowerDrawW,
            EccErrors = eccByIndex.GetValueOrDefault(g.Index),

            // nvidia-smi has no query field for XID errors (the driver logs them to the kernel log as "NVRM: Xid"),
            // so they are not reported yet.
            XidErrors = null,
        }).ToList();
    }

    private IReadOnlyList<ModelFile>? Models(DateTimeOffset now)
    {
        if (sources.ModelsDirectory is null)
        {
            return null;
        }

        if (_models is null || now - _modelsScannedAt >= sources.ModelsRescanInterval || now < _modelsScannedAt)
        {
            _models = ModelScanner.Scan(sources.ModelsDirectory);
            _modelsScannedAt = now;
        }

        return _models;
    }

    private string ReadProc(string name)
    {
        try
        {
            return File.ReadAllText(Path.Combine(sources.ProcDirectory, name));
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return "";
        }
    }

    private (long Total, long Free) Disk()
    {
        try
        {
            var path = Path.GetFullPath(sources.DiskPath);
            while (!Directory.Exists(path) && Path.GetDirectoryName(path) is { } parent)
            {
                path = parent; // not created yet (at join): the file system it will be on
            }

            var drive = new DriveInfo(path);
            return (drive.TotalSize, drive.AvailableFreeSpace);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or ArgumentException)
        {
            return (0, 0);
        }
    }
}
