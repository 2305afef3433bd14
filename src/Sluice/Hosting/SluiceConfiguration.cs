namespace Sluice.Hosting;

/// <summary>Settings given on the command line: an optional settings file and key/value overrides.</summary>
internal sealed record CommandLineSettings(string? SettingsFile, IReadOnlyDictionary<string, string?> Overrides)
{
    public static CommandLineSettings None { get; } = new(null, new Dictionary<string, string?>());
}

/// <summary>
/// Where Sluice reads its settings from, lowest precedence first: <c>appsettings.json</c> beside the binary,
/// <c>appsettings.{Environment}.json</c>, the file named by <c>--config</c> or <c>SLUICE_CONFIG</c>,
/// environment variables <c>SLUICE__Section__Key</c>, <c>SLUICE_DATABASE</c>, then command-line options.
/// </summary>
internal static class SluiceConfiguration
{
    public const string EnvironmentPrefix = "SLUICE__";
    public const string DatabaseVariable = "SLUICE_DATABASE";
    public const string SettingsFileVariable = "SLUICE_CONFIG";
    public const string ConnectionStringKey = "ConnectionStrings:Sluice";

    public static void UseSluiceSources(
        this IConfigurationManager configuration,
        string contentRoot,
        string environmentName,
        CommandLineSettings commandLine,
        string[] hostArguments)
    {
        configuration.Sources.Clear();
        var builder = (IConfigurationBuilder)configuration;
        builder.AddJsonFile(Path.Combine(contentRoot, "appsettings.json"), optional: true, reloadOnChange: false);
        builder.AddJsonFile(Path.Combine(contentRoot, $"appsettings.{environmentName}.json"), optional: true, reloadOnChange: false);

        var settingsFile = commandLine.SettingsFile ?? Environment.GetEnvironmentVariable(SettingsFileVariable);
        if (!string.IsNullOrWhiteSpace(settingsFile))
        {
            var path = Path.GetFullPath(settingsFile);
            if (!File.Exists(path))
            {
                throw new FileNotFoundException($"The settings file {path} does not exist.");
            }

            builder.AddJsonFile(path, optional: false, reloadOnChange: false);
        }

        builder.AddEnvironmentVariables(EnvironmentPrefix);
        var database = Environment.GetEnvironmentVariable(DatabaseVariable);
        if (!string.IsNullOrWhiteSpace(database))
        {
            builder.AddInMemoryCollection([new(ConnectionStringKey, database)]);
        }

        if (hostArguments.Length > 0)
        {
            builder.AddCommandLine(hostArguments);
        }

        builder.AddInMemoryCollection(commandLine.Overrides);
    }
}
