using System.CommandLine;
using Sluice.Hosting;

namespace Sluice.Cli;

/// <summary>Options that several commands accept, each mapped onto a setting.</summary>
internal sealed class SharedOptions
{
    public Option<string?> DataDir { get; } = new("--data-dir")
    {
        Description = "Directory for the embedded database and key files (setting Server:DataDir, default ./data).",
    };

    public Option<string?> Database { get; } = new("--database")
    {
        Description = "Database connection: postgres://USER:PASS@HOST:PORT/DB, 'Host=…;Database=…', or sqlite:FILE " +
            "(setting ConnectionStrings:Sluice, environment SLUICE_DATABASE; default: SQLite in the data directory).",
    };

    public Option<string?> SettingsFile { get; } = new("--config")
    {
        Description = "A JSON settings file read after appsettings.json (environment SLUICE_CONFIG).",
    };

    public Option<string[]> Set { get; } = new("--set")
    {
        Description = "Override any setting, as Section:Key=value (repeatable), e.g. --set Server:ShutdownTimeout=00:00:10.",
        AllowMultipleArgumentsPerToken = false,
    };

    public Option<LogFormat?> LogFormat { get; } = new("--log-format")
    {
        Description = "Console log format: text or json (setting Server:LogFormat).",
    };

    public void AddTo(Command command)
    {
        command.Options.Add(DataDir);
        command.Options.Add(Database);
        command.Options.Add(SettingsFile);
        command.Options.Add(Set);
        command.Options.Add(LogFormat);
        command.Validators.Add(result =>
        {
            foreach (var pair in result.GetValue(Set) ?? [])
            {
                if (!TrySplit(pair, out _, out _))
                {
                    result.AddError($"--set expects Section:Key=value, got '{pair.Split('=')[0]}…'.");
                }
            }
        });
    }

    public CommandLineSettings Read(ParseResult parse, IDictionary<string, string?>? extra = null)
    {
        var overrides = new Dictionary<string, string?>(StringComparer.OrdinalIgnoreCase);
        foreach (var pair in parse.GetValue(Set) ?? [])
        {
            TrySplit(pair, out var key, out var value);
            overrides[key] = value;
        }

        if (parse.GetValue(DataDir) is { } dataDir)
        {
            overrides[$"{ServerOptions.Section}:{nameof(ServerOptions.DataDir)}"] = dataDir;
        }

        if (parse.GetValue(Database) is { } database)
        {
            overrides[SluiceConfiguration.ConnectionStringKey] = database;
        }

        if (parse.GetValue(LogFormat) is { } logFormat)
        {
            overrides[$"{ServerOptions.Section}:{nameof(ServerOptions.LogFormat)}"] = logFormat.ToString();
        }

        foreach (var (key, value) in extra ?? new Dictionary<string, string?>())
        {
            overrides[key] = value;
        }

        return new CommandLineSettings(parse.GetValue(SettingsFile), overrides);
    }

    private static bool TrySplit(string pair, out string key, out string value)
    {
        var equals = pair.IndexOf('=', StringComparison.Ordinal);
        key = equals > 0 ? pair[..equals].Trim() : "";
        value = equals > 0 ? pair[(equals + 1)..] : "";
        return key.Length > 0;
    }
}
