using Microsoft.Extensions.Options;

namespace Sluice.Hosting;

/// <summary>
/// Keeps request URLs (paths and query strings can carry ids, file names, search terms, even keys pasted into a query)
/// out of the log at every level, whatever the <c>Logging</c> settings say: the framework categories that write them
/// (ASP.NET Core's "Request starting … URL", routing's "no candidates for the request path …", Kestrel's bad request
/// lines, redirects, the console's handler arguments, outgoing HttpClient URLs) are raised to Warning (hosting diagnostics: off) for every provider after
/// all configuration is applied.
/// </summary>
internal sealed class RequestUrlLogGuard : IPostConfigureOptions<LoggerFilterOptions>
{
    /// <summary>
    /// Each guarded category and the lowest level it may log at. Hosting diagnostics is off entirely: while any level of
    /// it is on, it opens a logging scope holding the request path around every line logged during the request, which
    /// any provider with scopes turned on (<c>IncludeScopes</c>) would print.
    /// </summary>
    public static readonly IReadOnlyDictionary<string, LogLevel> Floors = new Dictionary<string, LogLevel>(StringComparer.OrdinalIgnoreCase)
    {
        ["Microsoft.AspNetCore.Hosting.Diagnostics"] = LogLevel.None,
        ["Microsoft.AspNetCore.Routing"] = LogLevel.Warning,
        ["Microsoft.AspNetCore.Server.Kestrel"] = LogLevel.Warning,
        ["Microsoft.AspNetCore.HttpLogging"] = LogLevel.Warning,
        ["Microsoft.AspNetCore.Http"] = LogLevel.Warning, // results, and parameter binding (which quotes the raw value)
        ["Microsoft.AspNetCore.Mvc"] = LogLevel.Warning, // the console's pages: redirect targets, and handler arguments at Trace
        ["Microsoft.AspNetCore.Rewrite"] = LogLevel.Warning,
        ["Microsoft.AspNetCore.StaticFiles"] = LogLevel.Warning,
        ["System.Net.Http.HttpClient"] = LogLevel.Warning,
    };

    public void PostConfigure(string? name, LoggerFilterOptions options)
    {
        // A rule naming a provider beats every rule that does not, and a longer category beats a shorter one; so clamp
        // every rule at or below a guarded category, then add the guard for each provider a rule names (and for none).
        for (var i = 0; i < options.Rules.Count; i++)
        {
            var rule = options.Rules[i];
            if (rule.CategoryName is { } category && Floors.FirstOrDefault(f => category.StartsWith(f.Key, StringComparison.OrdinalIgnoreCase)) is { Key: not null } guarded
                && (rule.LogLevel is null || rule.LogLevel < guarded.Value || rule.Filter is not null))
            {
                options.Rules[i] = new LoggerFilterRule(rule.ProviderName, rule.CategoryName, Max(rule.LogLevel, guarded.Value), null);
            }
        }

        foreach (var provider in options.Rules.Select(r => r.ProviderName).Append(null).Distinct(StringComparer.Ordinal).ToList())
        {
            foreach (var (category, floor) in Floors)
            {
                // An operator's stricter setting for the same category (None, say) stays.
                var level = options.Rules.Where(r => string.Equals(r.ProviderName, provider, StringComparison.Ordinal)
                        && string.Equals(r.CategoryName, category, StringComparison.OrdinalIgnoreCase) && r.LogLevel is not null)
                    .Select(r => r.LogLevel!.Value).Append(floor).Max();
                options.Rules.Add(new LoggerFilterRule(provider, category, level, null));
            }
        }
    }

    private static LogLevel Max(LogLevel? level, LogLevel floor) => level is { } set && set > floor ? set : floor;
}
