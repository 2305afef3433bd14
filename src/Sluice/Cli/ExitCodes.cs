namespace Sluice.Cli;

public static class ExitCodes
{
    public const int Success = 0;

    /// <summary>The command ran and failed: bad settings, unreachable database, port in use…</summary>
    public const int Failure = 1;

    /// <summary>The command line itself was wrong: unknown command or option, missing value.</summary>
    public const int Usage = 2;
}
