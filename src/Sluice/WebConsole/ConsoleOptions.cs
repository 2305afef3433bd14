namespace Sluice.WebConsole;

/// <summary>Settings of the web console (section <c>Console</c>).</summary>
public sealed class ConsoleOptions
{
    public const string Section = "Console";

    /// <summary>How long a form stays valid after its page was rendered; a later post asks the person to reload.</summary>
    public TimeSpan FormLifetime { get; init; } = TimeSpan.FromHours(2);

    /// <summary>How long the playground's key lives; the page asks for a new one when it runs out.</summary>
    public TimeSpan PlaygroundKeyLifetime { get; init; } = TimeSpan.FromMinutes(30);
}
