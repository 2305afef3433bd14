using System.Globalization;
using System.Text;

namespace Sluice.Tests.TestSupport;

/// <summary>One GPU as the fake reports it; a figure given as a string (e.g. "[N/A]") is printed as is.</summary>
public sealed record FakeGpu(
    int Index,
    string Uuid,
    string Name,
    long MemoryTotalMib,
    long MemoryUsedMib,
    string Utilization,
    string Temperature,
    string PowerDraw,
    string Ecc = "0",
    string BusId = "00000000:18:00.0");

/// <summary>
/// A fake <c>nvidia-smi</c>: an executable script in a temp directory (put it first on PATH, or give its path) that
/// prints, from files the test rewrites between calls, what the real one prints for the agent's three calls: the GPU
/// query (<c>--query-gpu=index,uuid,name,memory.total,memory.used,utilization.gpu,temperature.gpu,power.draw,driver_version
/// --format=csv,noheader,nounits</c>: one line per GPU, ", " between fields, <c>[N/A]</c> for what the driver does not
/// report), the ECC query, and the banner of a plain <c>nvidia-smi</c> (driver and CUDA versions). It can hang (as
/// nvidia-smi does on a wedged driver), fail as it does without a driver (exit 9), or lose a GPU (the "Unable to
/// determine the device handle" line in place of its row).
/// No GPU machine was at hand when this was written: the output is built from nvidia-smi's documented formats and
/// driver 550's banner layout, not recorded. Record the real thing (the three commands above) on a GPU machine and
/// replace <see cref="H100x8"/> and <see cref="L4x1"/> with it when one is available.
/// </summary>
public sealed class FakeNvidiaSmi : IDisposable
{
    private const string Script = """
        #!/bin/sh
        d="$(dirname "$0")"
        echo "$*" >> "$d/calls.log"
        if [ -f "$d/hang" ]; then exec sleep 3600; fi
        if [ -f "$d/fail" ]; then
          echo "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. Make sure that the latest NVIDIA driver is installed and running."
          exit 9
        fi
        case "$1" in
          --query-gpu=index,uuid,*) cat "$d/query.csv" ;;
          --query-gpu=index,ecc.*) cat "$d/ecc.csv" ;;
          "") cat "$d/banner.txt" ;;
          *) echo "Invalid combination of input arguments. Please run 'nvidia-smi -h' for help."; exit 2 ;;
        esac
        """;

    private readonly Lock _gate = new();
    private List<FakeGpu> _gpus;
    private readonly HashSet<int> _lost = [];

    private FakeNvidiaSmi(IEnumerable<FakeGpu> gpus, string driver, string cuda)
    {
        Directory = Path.Combine(Path.GetTempPath(), "sluice-fake-nvidia-smi-" + Guid.NewGuid().ToString("N")[..12]);
        System.IO.Directory.CreateDirectory(Directory);
        Driver = driver;
        Cuda = cuda;
        _gpus = gpus.ToList();
        File.WriteAllText(ExecutablePath, Script.Replace("\r", "", StringComparison.Ordinal) + "\n");
        if (!OperatingSystem.IsWindows())
        {
            File.SetUnixFileMode(ExecutablePath, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute | UnixFileMode.GroupRead | UnixFileMode.GroupExecute);
        }

        Write();
    }

    public string Directory { get; }

    public string ExecutablePath => Path.Combine(Directory, "nvidia-smi");

    public string Driver { get; }

    public string Cuda { get; }

    /// <summary>PATH with the fake first, for a child process's environment.</summary>
    public string PathWithFakeFirst => Directory + Path.PathSeparator + Environment.GetEnvironmentVariable("PATH");

    public IReadOnlyList<FakeGpu> Gpus
    {
        get
        {
            lock (_gate)
            {
                return _gpus.ToList();
            }
        }
    }

    /// <summary>How many times it was run (any arguments).</summary>
    public int Calls => File.Exists(Path.Combine(Directory, "calls.log")) ? File.ReadAllLines(Path.Combine(Directory, "calls.log")).Length : 0;

    /// <summary>Every call sleeps for an hour until this is set back to false.</summary>
    public bool Hang
    {
        get => File.Exists(Path.Combine(Directory, "hang"));
        set => Flag("hang", value);
    }

    /// <summary>Every call fails as nvidia-smi does when the driver is not loaded (exit 9).</summary>
    public bool FailWithoutDriver
    {
        get => File.Exists(Path.Combine(Directory, "fail"));
        set => Flag("fail", value);
    }

    /// <summary>Eight H100 SXM (80 GB HBM3, 81559 MiB) on driver 550.54.15 / CUDA 12.4, one of them busy.</summary>
    public static FakeNvidiaSmi H100x8() => new(
        Enumerable.Range(0, 8).Select(i => new FakeGpu(
            i,
            Uuid(i, 0x5b9c4d3e),
            "NVIDIA H100 80GB HBM3",
            81559,
            i == 3 ? 62311 : 1,
            i == 3 ? "97" : "0",
            (31 + i).ToString(CultureInfo.InvariantCulture),
            i == 3 ? "612.35" : (69.5 + i * 0.25).ToString("0.00", CultureInfo.InvariantCulture),
            BusId: $"00000000:{new[] { 0x18, 0x2A, 0x3A, 0x5D, 0x9A, 0xAB, 0xBA, 0xDB }[i]:X2}:00.0")),
        "550.54.15",
        "12.4");

    /// <summary>One L4 (23034 MiB) on driver 535.104.05 / CUDA 12.2 that does not report its power draw ([N/A]) nor ECC.</summary>
    public static FakeNvidiaSmi L4x1() => new(
        [new FakeGpu(0, "GPU-8e1f2a3b-4c5d-6e7f-8091-a2b3c4d5e6f7", "NVIDIA L4", 23034, 0, "0", "34", "[N/A]", Ecc: "[N/A]", BusId: "00000000:00:03.0")],
        "535.104.05",
        "12.2");

    /// <summary>Changes the figures the next calls print.</summary>
    public void Update(Func<FakeGpu, FakeGpu> change)
    {
        lock (_gate)
        {
            _gpus = _gpus.Select(change).ToList();
            Write();
        }
    }

    /// <summary>The GPU stops answering (fell off the bus): its row becomes nvidia-smi's error line.</summary>
    public void Lose(int index)
    {
        lock (_gate)
        {
            _lost.Add(index);
            Write();
        }
    }

    /// <summary>The query's output exactly as the agent reads it.</summary>
    public string QueryOutput()
    {
        lock (_gate)
        {
            var text = new StringBuilder();
            foreach (var g in _gpus)
            {
                text.Append(_lost.Contains(g.Index)
                    ? $"Unable to determine the device handle for GPU{g.BusId}: Unknown Error\n"
                    : $"{g.Index}, {g.Uuid}, {g.Name}, {g.MemoryTotalMib}, {g.MemoryUsedMib}, {g.Utilization}, {g.Temperature}, {g.PowerDraw}, {Driver}\n");
            }

            return text.ToString();
        }
    }

    public string BannerOutput()
    {
        lock (_gate)
        {
            var text = new StringBuilder();
            text.Append("Sat Nov 28 08:00:00 2026       \n");
            text.Append("+-----------------------------------------------------------------------------------------+\n");
            text.Append(CultureInfo.InvariantCulture, $"| NVIDIA-SMI {Driver,-22} Driver Version: {Driver,-14} CUDA Version: {Cuda,-9}|\n");
            text.Append("|-----------------------------------------+------------------------+----------------------+\n");
            text.Append("| GPU  Name                 Persistence-M | Bus-Id          Disp.A | Volatile Uncorr. ECC |\n");
            text.Append("| Fan  Temp   Perf          Pwr:Usage/Cap |           Memory-Usage | GPU-Util  Compute M. |\n");
            text.Append("|                                         |                        |               MIG M. |\n");
            text.Append("|=========================================+========================+======================|\n");
            foreach (var g in _gpus)
            {
                var name = g.Name.Length > 28 ? g.Name[..28] : g.Name;
                var power = g.PowerDraw.StartsWith('[') ? "N/A" : $"{double.Parse(g.PowerDraw, CultureInfo.InvariantCulture):0}W";
                text.Append(CultureInfo.InvariantCulture, $"| {g.Index,3}  {name,-28}   On  | {g.BusId,16} Off | {g.Ecc.Trim('[', ']'),20} |\n");
                text.Append(CultureInfo.InvariantCulture, $"| N/A   {g.Temperature,2}C    P0   {power,16} /  700W | {g.MemoryUsedMib,8}MiB / {g.MemoryTotalMib,6}MiB | {g.Utilization,7}%      Default |\n");
                text.Append("|                                         |                        |             Disabled |\n");
                text.Append("+-----------------------------------------+------------------------+----------------------+\n");
            }

            return text.ToString();
        }
    }

    private static string Uuid(int index, int seed)
    {
        var random = new Random(seed + index);
        string Hex(int bytes) => Convert.ToHexStringLower(Enumerable.Range(0, bytes).Select(_ => (byte)random.Next(256)).ToArray());
        return $"GPU-{Hex(4)}-{Hex(2)}-{Hex(2)}-{Hex(2)}-{Hex(6)}";
    }

    private void Flag(string name, bool on)
    {
        var path = Path.Combine(Directory, name);
        if (on)
        {
            File.WriteAllText(path, "");
        }
        else
        {
            File.Delete(path);
        }
    }

    /// <summary>Each file is replaced whole (written aside, then renamed), so a call never reads half of one.</summary>
    private void Write()
    {
        Replace("query.csv", QueryOutput());
        Replace("ecc.csv", string.Concat(_gpus.Where(g => !_lost.Contains(g.Index)).Select(g => $"{g.Index}, {g.Ecc}\n")));
        Replace("banner.txt", BannerOutput());
    }

    private void Replace(string name, string content)
    {
        var temporary = Path.Combine(Directory, $".{name}.{Guid.NewGuid():N}");
        File.WriteAllText(temporary, content);
        File.Move(temporary, Path.Combine(Directory, name), overwrite: true);
    }

    public void Dispose()
    {
        Hang = false;
        try
        {
            System.IO.Directory.Delete(Directory, recursive: true);
        }
        catch (IOException)
        {
            // a call still running; the temp directory is left
        }
    }
}
