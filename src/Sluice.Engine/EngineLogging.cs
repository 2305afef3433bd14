using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Sluice.Engine;

/// <summary>
/// Logging for a built-in engine: one line per event on stdout, levels from the environment
/// (<c>Logging__LogLevel__Default=Debug</c>), and the framework categories that write request URLs held at Warning (hosting
/// diagnostics off) at every level, as the server's own guard does: nothing an engine logs quotes a request.
/// </summary>
public static class EngineLogging
{
    /// <summary>Each guarded category and the lowest level it may log at, whatever the settings say.</summary>
    internal static readonly IReadOnlyDictionary<string, LogLevel> Floors = new Dictionary<string, LogLevel>(StringComparer.OrdinalIgnoreCase)
    {
        ["Microsoft.AspNetCore.Hosting.Diagnostics"] = LogLevel.None,
        ["Microsoft.AspNetCore.Routing"] = LogLevel.Warning,
        ["Microsoft.AspNetCore.Server.Kestrel"] = LogLevel.Warning,
        ["Microsoft.AspNetCore.Http"] = LogLevel.Warning,
        ["System.Net.Http.HttpClient"] = LogLevel.Warning,
    };

    public static ILoggingBuilder AddEngineLogging(this ILoggingBuilder logging, IConfiguration configuration)
    {
        ArgumentNullException.ThrowIfNull(logging);
        logging.SetMinimumLevel(LogLevel.Information);
        logging.AddFilter("Microsoft", LogLevel.Warning);
        logging.AddConfiguration(configuration.GetSection("Logging")); // after the defaults, so it overrides them
        logging.AddSimpleConsole(options =>
        {
            options.SingleLine = true;
            options.TimestampFormat = "yyyy-MM-ddTHH:mm:ss.fffZ ";
            options.UseUtcTimestamp = true;
        });
        logging.Services.AddSingleton<IPostConfigureOptions<LoggerFilterOptions>, UrlGuard>();
        return logging;
    }

    private sealed class UrlGuard : IPostConfigureOptions<LoggerFilterOptions>
    {
        public void PostConfigure(string? name, LoggerFilterOptions options)
        {
            // A longer category beats a shorter one, and a rule naming a provider beats one that does not: clamp every
            // rule under a guarded category, then add the floor for each provider a rule names (and for none).
            for (var i = 0; i < options.Rules.Count; i++)
            {
                var rule = options.Rules[i];
                if (rule.CategoryName is { } category
                    && Floors.FirstOrDefault(f => category.StartsWith(f.Key, StringComparison.OrdinalIgnoreCase)) is { Key: not null } floor
                    && (rule.LogLevel is null || rule.LogLevel < floor.Value || rule.Filter is not null))
                {
                    options.Rules[i] = new LoggerFilterRule(rule.ProviderName, rule.CategoryName, floor.Value, null);
                }
            }

            foreach (var provider in options.Rules.Select(r => r.ProviderName).Append(null).Distinct(StringComparer.Ordinal).ToList())
            {
                foreach (var (category, floor) in Floors)
                {
                    options.Rules.Add(new LoggerFilterRule(provider, category, floor, null));
                }
            }
        }
    }
}
