using System.Globalization;

namespace Sluice.WebConsole.Pages.Orgs;

/// <summary>One bar: its axis label, its value and the tooltip (an SVG <c>&lt;title&gt;</c>) that says it in words.</summary>
public sealed record ChartBar(string Label, double Value, string Tooltip);

/// <summary>
/// A server-rendered bar chart (Pages/Orgs/_UsageChart.cshtml): vertical bars for days, horizontal ones for models and
/// keys. Geometry only; colours come from console.css classes. Every chart is shown next to a table of the same figures.
/// </summary>
public sealed record UsageChart(string Label, IReadOnlyList<ChartBar> Bars, bool Alt = false, bool Horizontal = false)
{
    public const double Width = 600;
    public const double ColumnHeight = 180;
    public const double RowHeight = 30;
    public const double LabelWidth = 215;

    public double Max => Bars.Count == 0 ? 0 : Bars.Max(b => b.Value);

    public double Height => Horizontal ? Math.Max(1, Bars.Count) * RowHeight + 8 : ColumnHeight + 26;

    /// <summary>How many bars between two axis labels (days): at most about eight labels.</summary>
    public int LabelEvery => Math.Max(1, (int)Math.Ceiling(Bars.Count / 8.0));

    public string ClassName => Alt ? "bar alt" : "bar";

    public static string N(double value) => value.ToString("0.##", CultureInfo.InvariantCulture);

    public static string Clip(string label, int length) => label.Length <= length ? label : label[..(length - 1)] + "…";
}
