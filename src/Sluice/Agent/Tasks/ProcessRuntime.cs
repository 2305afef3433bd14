using System.ComponentModel;
using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using Sluice.Compute.Protocol;

namespace Sluice.Agent.Tasks;

/// <summary>
/// Runs a task as a local process in its own session and process group (through <c>setsid</c>, which execs the command
/// in place, so the process id is the group id), so stopping it reaches every process it started. The environment is
/// the agent's minus its own settings (SLUICE*), plus the spec's, the secrets, <c>PORT</c> and
/// <c>CUDA_VISIBLE_DEVICES</c>; <c>{port}</c> in arguments and environment values becomes the task's loopback port.
/// Secrets are only ever in the environment: nothing is written to disk.
/// </summary>
internal sealed partial class ProcessRuntime(string? stateDirectory = null) : ITaskRuntime
{
    private static readonly string? Setsid = new[] { "/usr/bin/setsid", "/bin/setsid" }.FirstOrDefault(File.Exists);

    public string? Unavailable => null;

    public Task PrepareAsync(TaskSpec spec, CancellationToken cancellationToken) => Task.CompletedTask;

    public Task<ITaskInstance> StartAsync(TaskSpec spec, int port, TaskLog log, CancellationToken cancellationToken)
    {
        var process = spec.Process ?? throw new TaskSpecException("a process task needs 'process' with a command");
        var info = BuildStartInfo(spec, process, port);
        var child = new Process { StartInfo = info, EnableRaisingEvents = true };
        var exited = new TaskCompletionSource<int>(TaskCreationOptions.RunContinuationsAsynchronously);
        var stdoutClosed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var stderrClosed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        child.Exited += (_, _) => exited.TrySetResult(SafeExitCode(child));
        child.OutputDataReceived += (_, e) => Append(log, e.Data, stdoutClosed);
        child.ErrorDataReceived += (_, e) => Append(log, e.Data, stderrClosed);
        try
        {
            child.Start();
        }
        catch (Win32Exception exception)
        {
            child.Dispose();

            // The exception's message names the command; only the errno leaves here.
            throw new TaskSpecException($"the task's command could not be started (errno {exception.NativeErrorCode.ToString(CultureInfo.InvariantCulture)}: not found, not executable, or its working directory is missing)");
        }

        child.BeginOutputReadLine();
        child.BeginErrorReadLine();
        if (child.HasExited)
        {
            exited.TrySetResult(SafeExitCode(child));
        }

        var record = Setsid is null ? null : Record(child.Id);
        return Task.FromResult<ITaskInstance>(new ProcessInstance(child, DrainedAsync(exited.Task, stdoutClosed.Task, stderrClosed.Task), grouped: Setsid is not null, record));
    }

    internal static ProcessStartInfo BuildStartInfo(TaskSpec spec, ProcessRuntimeSpec process, int port)
    {
        if (string.IsNullOrWhiteSpace(process.Command))
        {
            throw new TaskSpecException("a process task needs a command");
        }

        var (resolved, leading) = process.Command == AgentPaths.SluiceCommand
            ? SluiceExecutable(Environment.ProcessPath, System.Reflection.Assembly.GetEntryAssembly()?.Location)
            : (Resolve(process.Command), []);
        var command = resolved ?? throw new TaskSpecException("the task's command was not found on this machine (or is not executable)");
        var workingDirectory = string.IsNullOrEmpty(process.WorkingDirectory) ? Path.GetTempPath() : process.WorkingDirectory;
        if (!Directory.Exists(workingDirectory))
        {
            throw new TaskSpecException("the task's working directory does not exist on this machine");
        }

        var portText = port.ToString(CultureInfo.InvariantCulture);
        var info = new ProcessStartInfo(Setsid ?? command)
        {
            UseShellExecute = false,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            WorkingDirectory = workingDirectory,
        };
        if (Setsid is not null)
        {
            info.ArgumentList.Add(command);
        }

        foreach (var argument in leading)
        {
            info.ArgumentList.Add(argument);
        }

        foreach (var argument in process.Args)
        {
            info.ArgumentList.Add(argument.Replace("{port}", portText, StringComparison.Ordinal));
        }

        foreach (var name in info.Environment.Keys.Where(k => k.StartsWith("SLUICE", StringComparison.OrdinalIgnoreCase)).ToList())
        {
            info.Environment.Remove(name);
        }

        foreach (var (name, value) in process.Environment ?? new Dictionary<string, string>())
        {
            info.Environment[name] = value.Replace("{port}", portText, StringComparison.Ordinal);
        }

        foreach (var (name, value) in spec.Secrets ?? new Dictionary<string, string>())
        {
            info.Environment[name] = value;
        }

        info.Environment["PORT"] = portText;
        info.Environment["CUDA_VISIBLE_DEVICES"] = string.Join(',', spec.GpuIndices.Select(i => i.ToString(CultureInfo.InvariantCulture)));
        info.Environment["CUDA_DEVICE_ORDER"] = "PCI_BUS_ID"; // CUDA's own default numbers the fastest GPU first; nvidia-smi (and the server's indices) use PCI order
        return info;
    }

    /// <summary>
    /// What <see cref="AgentPaths.SluiceCommand"/> runs: this agent's own executable (<paramref name="processPath"/>), and
    /// when that is the .NET host (<c>dotnet sluice.dll agent run</c>), the host with the entry assembly as its first argument.
    /// </summary>
    internal static (string? Command, IReadOnlyList<string> LeadingArgs) SluiceExecutable(string? processPath, string? entryAssembly)
    {
        if (string.IsNullOrEmpty(processPath))
        {
            return (null, []);
        }

        var name = Path.GetFileNameWithoutExtension(processPath);
        if (string.Equals(name, "dotnet", StringComparison.OrdinalIgnoreCase))
        {
            return string.IsNullOrEmpty(entryAssembly) ? (null, []) : (processPath, [entryAssembly]);
        }

        return (processPath, []);
    }

    /// <summary>The command's full path: as given when it names a path, else the first executable match on PATH.</summary>
    private static string? Resolve(string command)
    {
        if (command.Contains('/', StringComparison.Ordinal))
        {
            return IsExecutable(command) ? Path.GetFullPath(command) : null;
        }

        foreach (var directory in (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries))
        {
            var candidate = Path.Combine(directory, command);
            if (IsExecutable(candidate))
            {
                return candidate;
            }
        }

        return null;
    }

    private static bool IsExecutable(string path) =>
        File.Exists(path) && (OperatingSystem.IsWindows() || (File.GetUnixFileMode(path) & (UnixFileMode.UserExecute | UnixFileMode.GroupExecute | UnixFileMode.OtherExecute)) != 0);

    private static void Append(TaskLog log, string? line, TaskCompletionSource closed)
    {
        if (line is null)
        {
            closed.TrySetResult();
        }
        else
        {
            log.Append(line);
        }
    }

    /// <summary>
    /// The exit code once the process has exited and its last output is in the buffer (a child that inherited the
    /// pipes may keep them open: then no more than a second after the exit).
    /// </summary>
    private static async Task<int> DrainedAsync(Task<int> exited, Task stdoutClosed, Task stderrClosed)
    {
        var code = await exited.ConfigureAwait(false);
        await Task.WhenAny(Task.WhenAll(stdoutClosed, stderrClosed), Task.Delay(TimeSpan.FromSeconds(1))).ConfigureAwait(false);
        return code;
    }

    private static int SafeExitCode(Process process)
    {
        try
        {
            return process.ExitCode;
        }
        catch (InvalidOperationException)
        {
            return -1;
        }
    }

    /// <summary>
    /// Notes a started process group in the state directory (its pid and the kernel's start time for it, nothing else),
    /// so an agent started after this one was SIGKILLed can end the groups it left behind (<see cref="ReapOrphans"/>).
    /// </summary>
    private string? Record(int pid)
    {
        if (stateDirectory is null || StartTime(pid) is not { } started)
        {
            return null;
        }

        Directory.CreateDirectory(stateDirectory);
        var path = Path.Combine(stateDirectory, pid.ToString(CultureInfo.InvariantCulture) + ".pgid");
        File.WriteAllText(path, started);
        return path;
    }

    /// <summary>SIGKILLs each process group a previous agent recorded and did not stop (the same pid and start time), then forgets it.</summary>
    internal static int ReapOrphans(string? stateDirectory)
    {
        if (stateDirectory is null || !Directory.Exists(stateDirectory))
        {
            return 0;
        }

        var reaped = 0;
        foreach (var path in Directory.EnumerateFiles(stateDirectory, "*.pgid"))
        {
            if (int.TryParse(Path.GetFileNameWithoutExtension(path), NumberStyles.None, CultureInfo.InvariantCulture, out var pid)
                && StartTime(pid) is { } started && started == File.ReadAllText(path).Trim())
            {
                _ = Native.Kill(-pid, 9);
                reaped++;
            }

            File.Delete(path);
        }

        return reaped;
    }

    /// <summary>Field 22 of /proc/PID/stat: when the process started, in clock ticks since boot (tells a reused pid apart).</summary>
    private static string? StartTime(int pid)
    {
        try
        {
            var stat = File.ReadAllText($"/proc/{pid.ToString(CultureInfo.InvariantCulture)}/stat");
            var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
            return fields.Length > 19 ? fields[19] : null;
        }
        catch (IOException)
        {
            return null;
        }
        catch (UnauthorizedAccessException)
        {
            return null;
        }
    }

    private sealed partial class ProcessInstance(Process process, Task<int> exited, bool grouped, string? record) : ITaskInstance
    {
        private const int SigTerm = 15;
        private const int SigKill = 9;
        private readonly int _pid = process.Id;
        private readonly Lock _gate = new();
        private Task? _stopping;

        public Task<int> Exited => exited;

        public Task StopAsync(TimeSpan grace)
        {
            lock (_gate)
            {
                return _stopping ??= StopCoreAsync(grace);
            }
        }

        private async Task StopCoreAsync(TimeSpan grace)
        {
            if (!exited.IsCompleted)
            {
                Signal(SigTerm);
                await Task.WhenAny(exited, Task.Delay(grace)).ConfigureAwait(false);
            }

            // Whatever is left of the group (children that ignored SIGTERM, or outlived a main process that exited).
            Signal(SigKill);
            if (!grouped && !exited.IsCompleted)
            {
                try
                {
                    process.Kill(entireProcessTree: true);
                }
                catch (InvalidOperationException)
                {
                }
            }

            await Task.WhenAny(exited, Task.Delay(TimeSpan.FromSeconds(5))).ConfigureAwait(false);
            if (record is not null)
            {
                File.Delete(record);
            }
        }

        /// <summary>Best effort, synchronous: for the agent's own exit.</summary>
        public void KillNow() => Signal(SigKill);

        private void Signal(int signal)
        {
            if (grouped)
            {
                _ = Native.Kill(-_pid, signal); // ESRCH once the whole group is gone
            }
            else if (!exited.IsCompleted)
            {
                _ = Native.Kill(_pid, signal);
            }
        }

        public async ValueTask DisposeAsync()
        {
            await StopAsync(TimeSpan.Zero).ConfigureAwait(false);
            process.Dispose();
        }
    }

    internal static partial class Native
    {
        [LibraryImport("libc", EntryPoint = "kill", SetLastError = true)]
        public static partial int Kill(int pid, int signal);
    }
}
