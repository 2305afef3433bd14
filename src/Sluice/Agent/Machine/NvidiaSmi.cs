using System.Diagnostics;

namespace Sluice.Agent.Machine;

/// <summary>What one run of nvidia-smi gave: its output, or why there is none.</summary>
public sealed record ToolResult(ToolOutcome Outcome, string Output = "", int? ExitCode = null);

public enum ToolOutcome
{
    /// <summary>Exited 0; <see cref="ToolResult.Output"/> is its stdout.</summary>
    Ok,

    /// <summary>Not on PATH: a machine without NVIDIA GPUs. Not an error.</summary>
    Absent,

    /// <summary>Exited with a failure (the driver is not loaded, a GPU fell off the bus).</summary>
    Failed,

    /// <summary>Did not finish within the timeout (nvidia-smi hangs on a wedged driver) and was killed.</summary>
    TimedOut,
}

/// <summary>
/// Runs nvidia-smi, found on PATH, with a bound on how long each call may take. Its output is hardware figures only;
/// it is never logged.
/// </summary>
public sealed class NvidiaSmi(TimeSpan timeout, string? path = null)
{
    public static readonly string[] QueryArguments =
    [
        "--query-gpu=index,uuid,name,memory.total,memory.used,utilization.gpu,temperature.gpu,power.draw,driver_version",
        "--format=csv,noheader,nounits",
    ];

    public static readonly string[] EccArguments =
    [
        "--query-gpu=index,ecc.errors.uncorrected.volatile.total",
        "--format=csv,noheader,nounits",
    ];

    public TimeSpan Timeout { get; } = timeout;

    /// <summary>The executable on PATH (or the given path), or null when there is none.</summary>
    public string? Locate()
    {
        if (path is not null)
        {
            return File.Exists(path) ? path : null;
        }

        foreach (var directory in (Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries))
        {
            var candidate = Path.Combine(directory, "nvidia-smi");
            if (File.Exists(candidate) && (OperatingSystem.IsWindows() || (File.GetUnixFileMode(candidate) & (UnixFileMode.UserExecute | UnixFileMode.GroupExecute | UnixFileMode.OtherExecute)) != 0))
            {
                return candidate;
            }
        }

        return null;
    }

    public Task<ToolResult> QueryAsync(CancellationToken cancellationToken) => RunAsync(QueryArguments, cancellationToken);

    public Task<ToolResult> EccAsync(CancellationToken cancellationToken) => RunAsync(EccArguments, cancellationToken);

    /// <summary>Plain <c>nvidia-smi</c>: its banner carries the CUDA version.</summary>
    public Task<ToolResult> BannerAsync(CancellationToken cancellationToken) => RunAsync([], cancellationToken);

    public async Task<ToolResult> RunAsync(IReadOnlyList<string> arguments, CancellationToken cancellationToken)
    {
        if (Locate() is not { } executable)
        {
            return new ToolResult(ToolOutcome.Absent);
        }

        var info = new ProcessStartInfo(executable)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
        };
        foreach (var argument in arguments)
        {
            info.ArgumentList.Add(argument);
        }

        using var process = new Process { StartInfo = info };
        try
        {
            process.Start();
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return new ToolResult(ToolOutcome.Failed); // not executable after all
        }

        process.StandardInput.Close();
        var stdout = process.StandardOutput.ReadToEndAsync(CancellationToken.None);
        var stderr = process.StandardError.ReadToEndAsync(CancellationToken.None); // drained so a chatty failure cannot block it
        using var bound = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        bound.CancelAfter(Timeout);
        try
        {
            await process.WaitForExitAsync(bound.Token);
        }
        catch (OperationCanceledException)
        {
            try
            {
                process.Kill(entireProcessTree: true);
            }
            catch (InvalidOperationException)
            {
                // exited meanwhile
            }

            cancellationToken.ThrowIfCancellationRequested();
            return new ToolResult(ToolOutcome.TimedOut);
        }

        var output = await WithinAsync(stdout, TimeSpan.FromSeconds(1));
        await WithinAsync(stderr, TimeSpan.FromSeconds(1));
        return process.ExitCode == 0
            ? new ToolResult(ToolOutcome.Ok, output, 0)
            : new ToolResult(ToolOutcome.Failed, "", process.ExitCode);
    }

    /// <summary>A child that inherited the pipe (a hung helper) could hold it open after nvidia-smi exits: read what came.</summary>
    private static async Task<string> WithinAsync(Task<string> read, TimeSpan limit)
    {
        var done = await Task.WhenAny(read, Task.Delay(limit));
        return done == read ? await read : "";
    }
}
