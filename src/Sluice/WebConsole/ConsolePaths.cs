namespace Sluice.WebConsole;

/// <summary>Which requests are the console's: every path but the APIs and the probes, which answer in their own shapes.</summary>
public static class ConsolePaths
{
    public const string Assets = "/console-assets";

    public static bool IsConsole(PathString path) =>
        !path.StartsWithSegments("/api", StringComparison.OrdinalIgnoreCase)
        && !path.StartsWithSegments("/v1", StringComparison.OrdinalIgnoreCase)
        && !path.StartsWithSegments("/healthz", StringComparison.OrdinalIgnoreCase)
        && !path.StartsWithSegments("/readyz", StringComparison.OrdinalIgnoreCase)
        && !path.StartsWithSegments("/privacy.json", StringComparison.OrdinalIgnoreCase);

    /// <summary>Where sign-in sends a person back to: only a path on this site (never <c>//host</c> or a URL).</summary>
    public static string SafeReturnUrl(string? returnUrl) =>
        !string.IsNullOrEmpty(returnUrl) && returnUrl.Length <= 2048 && returnUrl[0] == '/'
            && (returnUrl.Length == 1 || (returnUrl[1] != '/' && returnUrl[1] != '\\')) && !returnUrl.Any(char.IsControl)
            ? returnUrl
            : "/";
}
