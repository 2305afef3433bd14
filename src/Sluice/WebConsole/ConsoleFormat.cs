using System.Globalization;

namespace Sluice.WebConsole;

/// <summary>How the console writes numbers, money and times: one place, so every page says them the same way.</summary>
public static class ConsoleFormat
{
    private static readonly CultureInfo Culture = CultureInfo.InvariantCulture;

    /// <summary>Micro-units of a currency as an amount: <c>12.345678 USD</c> trimmed to at least two decimals (<c>12.30 USD</c>).</summary>
    public static string Money(long micros, string currency)
    {
        var amount = micros / 1_000_000m;
        var text = amount.ToString("0.00####", Culture);
        return $"{text} {currency}";
    }

    /// <summary>A whole count with thousands separators: <c>12,345</c>.</summary>
    public static string Count(long value) => value.ToString("#,0", Culture);

    /// <summary>A fraction as a percentage with one decimal: <c>2.5%</c>; a dash when there is nothing to divide.</summary>
    public static string Percent(double? fraction) => fraction is { } f && double.IsFinite(f) ? (f * 100).ToString("0.0", Culture) + "%" : "–";

    /// <summary>Milliseconds: <c>850 ms</c>, <c>1.2 s</c>; a dash when unknown.</summary>
    public static string Duration(double? milliseconds) => milliseconds switch
    {
        null => "–",
        < 1000 => milliseconds.Value.ToString("0", Culture) + " ms",
        _ => (milliseconds.Value / 1000).ToString("0.0", Culture) + " s",
    };

    /// <summary>A moment in UTC, to the minute: <c>2026-11-28 17:30 UTC</c>; a dash for none.</summary>
    public static string Time(DateTimeOffset? at) => at is { } t ? t.UtcDateTime.ToString("yyyy-MM-dd HH:mm", Culture) + " UTC" : "–";

    /// <summary>A day: <c>2026-11-28</c>.</summary>
    public static string Day(DateOnly day) => day.ToString("yyyy-MM-dd", Culture);

    /// <summary>The machine-readable form for a <c>&lt;time datetime=…&gt;</c> attribute.</summary>
    public static string Iso(DateTimeOffset at) => at.UtcDateTime.ToString("yyyy-MM-ddTHH:mm:ssZ", Culture);

    /// <summary>A size in bytes: <c>512 B</c>, <c>1.5 KiB</c>, <c>2.0 MiB</c>.</summary>
    public static string Bytes(long bytes) => bytes switch
    {
        < 1024 => $"{bytes} B",
        < 1024 * 1024 => (bytes / 1024.0).ToString("0.0", Culture) + " KiB",
        < 1024L * 1024 * 1024 => (bytes / 1024.0 / 1024).ToString("0.0", Culture) + " MiB",
        _ => (bytes / 1024.0 / 1024 / 1024).ToString("0.0", Culture) + " GiB",
    };
}
