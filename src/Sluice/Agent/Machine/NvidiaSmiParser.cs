using System.Globalization;
using System.Text.RegularExpressions;

namespace Sluice.Agent.Machine;

/// <summary>One GPU as <c>nvidia-smi --query-gpu=…</c> reports it; figures the driver does not report are null.</summary>
public sealed record GpuReading
{
    public required int Index { get; init; }
    public required string Uuid { get; init; }
    public required string Name { get; init; }
    public long? MemoryTotalMib { get; init; }
    public long? MemoryUsedMib { get; init; }
    public double? UtilizationPercent { get; init; }
    public double? TemperatureC { get; init; }
    public double? PowerDrawW { get; init; }
    public string? DriverVersion { get; init; }
}

/// <summary>
/// Parses nvidia-smi's output: the CSV of <see cref="NvidiaSmi.QueryArguments"/> (<c>--format=csv,noheader,nounits</c>:
/// one line per GPU, fields separated by ", "), the ECC query, and the banner of a plain <c>nvidia-smi</c> (for the CUDA
/// version). Pure: no process, no file.
/// </summary>
public static partial class NvidiaSmiParser
{
    /// <summary>index, uuid, name, memory.total, memory.used, utilization.gpu, temperature.gpu, power.draw, driver_version.</summary>
    private const int QueryFields = 9;

    /// <summary>The GPUs in the query's output. A line that is not a GPU (a warning, a cut line) is skipped and counted.</summary>
    public static IReadOnlyList<GpuReading> ParseQuery(string output, out int skippedLines)
    {
        var gpus = new List<GpuReading>();
        skippedLines = 0;
        foreach (var raw in output.Split('\n'))
        {
            var line = raw.Trim();
            if (line.Length == 0)
            {
                continue;
            }

            var fields = line.Split(',').Select(f => f.Trim()).ToArray();
            if (fields.Length > QueryFields)
            {
                // A name with a comma in it: the name is everything between the uuid and the six trailing figures.
                var name = string.Join(", ", fields[2..(fields.Length - 6)]);
                fields = [fields[0], fields[1], name, .. fields[^6..]];
            }

            if (fields.Length != QueryFields
                || !int.TryParse(fields[0], NumberStyles.None, CultureInfo.InvariantCulture, out var index)
                || Missing(fields[1]) || Missing(fields[2]))
            {
                skippedLines++;
                continue;
            }

            gpus.Add(new GpuReading
            {
                Index = index,
                Uuid = fields[1],
                Name = fields[2],
                MemoryTotalMib = Long(fields[3]),
                MemoryUsedMib = Long(fields[4]),
                UtilizationPercent = Number(fields[5]),
                TemperatureC = Number(fields[6]),
                PowerDrawW = Number(fields[7]),
                DriverVersion = Missing(fields[8]) ? null : fields[8],
            });
        }

        return gpus;
    }

    /// <summary>Uncorrected volatile ECC errors by GPU index (<c>--query-gpu=index,ecc.errors.uncorrected.volatile.total</c>).</summary>
    public static IReadOnlyDictionary<int, long?> ParseEcc(string output)
    {
        var errors = new Dictionary<int, long?>();
        foreach (var raw in output.Split('\n'))
        {
            var fields = raw.Split(',').Select(f => f.Trim()).ToArray();
            if (fields.Length == 2 && int.TryParse(fields[0], NumberStyles.None, CultureInfo.InvariantCulture, out var index))
            {
                errors[index] = Long(fields[1]);
            }
        }

        return errors;
    }

    /// <summary>The CUDA version from a plain <c>nvidia-smi</c>'s banner ("… CUDA Version: 12.4 |"), or null.</summary>
    public static string? ParseCudaVersion(string output)
    {
        var match = CudaVersion().Match(output);
        return match.Success ? match.Groups[1].Value : null;
    }

    /// <summary>nvidia-smi's ways of saying "no figure": [N/A], [Not Supported], [Unknown Error], N/A, empty.</summary>
    public static bool Missing(string field) =>
        field.Length == 0
        || field.StartsWith('[')
        || field.Equals("N/A", StringComparison.OrdinalIgnoreCase)
        || field.Equals("Not Supported", StringComparison.OrdinalIgnoreCase);

    private static double? Number(string field) =>
        !Missing(field) && double.TryParse(field, NumberStyles.Float, CultureInfo.InvariantCulture, out var value)
        && double.IsFinite(value) && value >= 0
            ? value
            : null;

    private static long? Long(string field) => Number(field) is { } value && value < long.MaxValue ? (long)value : null;

    [GeneratedRegex(@"CUDA Version:\s*([0-9]+(?:\.[0-9]+)*)", RegexOptions.CultureInvariant)]
    private static partial Regex CudaVersion();
}
