using System.Globalization;

namespace Sluice.Agent.Machine;

/// <summary>The aggregate CPU line of /proc/stat, in clock ticks since boot.</summary>
public readonly record struct CpuTimes(ulong Busy, ulong Idle)
{
    public ulong Total => Busy + Idle;

    /// <summary>0–100: the share of time busy between <paramref name="earlier"/> and this reading (since boot without one).</summary>
    public double PercentBusySince(CpuTimes? earlier)
    {
        var busy = Busy - (earlier?.Busy ?? 0);
        var total = Total - (earlier?.Total ?? 0);
        if (earlier is { } e && (e.Busy > Busy || e.Total > Total))
        {
            return 0; // counters went backwards (a container restored elsewhere): no figure rather than a wrong one
        }

        return total == 0 ? 0 : Math.Clamp(100.0 * busy / total, 0, 100);
    }
}

/// <summary>Parsers for the /proc files the agent reads. Pure: the text in, figures out.</summary>
public static class ProcParsers
{
    /// <summary>
    /// The first line of /proc/stat: <c>cpu user nice system idle iowait irq softirq steal guest guest_nice</c>. Idle is
    /// idle + iowait; busy is the rest up to steal (guest time is already counted in user).
    /// </summary>
    public static CpuTimes? ParseCpuTimes(string stat)
    {
        foreach (var line in stat.Split('\n'))
        {
            if (!line.StartsWith("cpu ", StringComparison.Ordinal))
            {
                continue;
            }

            var values = line.Split(' ', StringSplitOptions.RemoveEmptyEntries).Skip(1)
                .Select(v => ulong.TryParse(v, NumberStyles.None, CultureInfo.InvariantCulture, out var n) ? n : (ulong?)null)
                .ToList();
            if (values.Count < 4 || values.Any(v => v is null))
            {
                return null;
            }

            ulong At(int i) => i < values.Count ? values[i]!.Value : 0;
            var idle = At(3) + At(4);
            var busy = At(0) + At(1) + At(2) + At(5) + At(6) + At(7);
            return new CpuTimes(busy, idle);
        }

        return null;
    }

    /// <summary>MemTotal and MemAvailable from /proc/meminfo, in bytes (the file says kB and means KiB).</summary>
    public static (long TotalBytes, long AvailableBytes)? ParseMemInfo(string meminfo)
    {
        long? total = null, available = null;
        foreach (var line in meminfo.Split('\n'))
        {
            var parts = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (parts.Length < 2 || !long.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out var kib))
            {
                continue;
            }

            switch (parts[0])
            {
                case "MemTotal:":
                    total = kib * 1024;
                    break;
                case "MemAvailable:":
                    available = kib * 1024;
                    break;
            }
        }

        return total is { } t && available is { } a ? (t, Math.Min(a, t)) : null;
    }

    /// <summary>The one-minute load average, the first figure of /proc/loadavg.</summary>
    public static double? ParseLoad1(string loadavg)
    {
        var first = loadavg.Split(' ', StringSplitOptions.RemoveEmptyEntries).FirstOrDefault();
        return first is not null && double.TryParse(first, NumberStyles.Float, CultureInfo.InvariantCulture, out var load) && load >= 0
            ? load
            : null;
    }
}
