using System.Net;
using System.Text;
using Sluice.Compute.Protocol;
using Sluice.Tests.Agent.Serving;
using Sluice.Tests.Agent.Tasks;
using Sluice.Tests.TestSupport;

namespace Sluice.Tests.Agent;

/// <summary>
/// The whole serving path on one machine with real processes: a `sluice serve` process as the model server task,
/// started and probed by the supervisor, reached through the agent's HTTPS endpoint by the pinned transport.
/// </summary>
[Collection(RealProcessLoad.Name)]
public sealed partial class ServingPathTests
{
    [Fact]
    public async Task A_model_server_task_becomes_ready_is_served_through_the_endpoint_and_is_restarted_when_its_liveness_probe_fails()
    {
        await using var tasks = new TaskKit(TaskKit.Fast with { ProbeTimeout = TimeSpan.FromSeconds(1), StopGrace = TimeSpan.FromSeconds(1) });
        await using var serving = await ServingKit.StartAsync(tasks.Supervisor, tasks.Supervisor.Load);
        var spec = tasks.SluiceServer("srv", new ProbeSpec { Path = "/healthz", StartupTimeoutSeconds = 120, IntervalSeconds = 1, FailureThreshold = 2 });

        tasks.Supervisor.Apply([spec]);
        using (var early = await serving.SendAsync("srv", "/v1/models"))
        {
            Assert.Equal(HttpStatusCode.ServiceUnavailable, early.StatusCode); // known, still starting
        }

        await tasks.WaitForStateAsync("srv", TaskStates.Ready, TimeSpan.FromSeconds(90));
        var report = tasks.Report("srv")!;
        Assert.NotNull(report.ReadyAt);
        Assert.Equal(0, report.Restarts);
        using (var health = await serving.SendAsync("srv", "/healthz"))
        {
            Assert.Equal(HttpStatusCode.OK, health.StatusCode);
        }

        using (var models = await serving.SendAsync("srv", "/v1/models"))
        {
            // The server behind the agent asks for its own key: the agent's serving token was not passed on.
            Assert.Equal(HttpStatusCode.Unauthorized, models.StatusCode);
            Assert.Contains("invalid_api_key", await models.Content.ReadAsStringAsync(TestContext.Current.CancellationToken), StringComparison.Ordinal);
        }

        // Freeze the server: it still accepts connections but answers nothing, so the liveness probe fails.
        var pid = FindProcess(spec.Process!.WorkingDirectory!);
        Assert.Equal(0, Native.Kill(pid, 19)); // SIGSTOP
        await Eventually.TrueAsync(() => tasks.Report("srv") is { Restarts: 1, State: TaskStates.Ready, Reason: TaskReasons.HealthCheckFailed },
            $"the task to be restarted after failing its liveness probe and ready again (it is {tasks.State("srv")})", TimeSpan.FromSeconds(90));
        Assert.False(TaskKit.ProcessAlive(pid));
        using (var again = await serving.SendAsync("srv", "/healthz"))
        {
            Assert.Equal(HttpStatusCode.OK, again.StatusCode);
        }

        tasks.Supervisor.Apply([]);
        await tasks.WaitForStateAsync("srv", TaskStates.Terminated);
        tasks.Supervisor.Apply([]);
        using var gone = await serving.SendAsync("srv", "/v1/models");
        Assert.Equal(HttpStatusCode.NotFound, gone.StatusCode);
        Assert.Null(tasks.Report("srv"));
    }

    [Fact]
    public async Task The_supervisors_reports_carry_the_endpoints_in_flight_count()
    {
        await using var engine = await EngineStandIn.StartAsync();
        await using var tasks = new TaskKit();
        await using var serving = await ServingKit.StartAsync(tasks.Supervisor, tasks.Supervisor.Load);

        // A job stands in for the task's process; its ready port is what the endpoint proxies to.
        tasks.Supervisor.Apply([tasks.Shell("busy", "exec sleep 300", TaskKinds.ModelServer)]);
        await tasks.WaitForStateAsync("busy", TaskStates.Ready);
        using var load = tasks.Supervisor.Load.Begin("busy");
        Assert.Equal(1, tasks.Report("busy")!.InFlight);
        load.Dispose();
        Assert.Equal(0, tasks.Report("busy")!.InFlight);
        tasks.Supervisor.Load.SetQueueDepth("busy", 4);
        Assert.Equal(4, tasks.Report("busy")!.QueueDepth);
    }

    private static int FindProcess(string marker)
    {
        foreach (var directory in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(directory), out var pid))
            {
                continue;
            }

            try
            {
                var commandLine = Encoding.UTF8.GetString(File.ReadAllBytes(Path.Combine(directory, "cmdline"))).Replace('\0', ' ');
                if (commandLine.Contains(marker, StringComparison.Ordinal) && commandLine.Contains(" serve ", StringComparison.Ordinal))
                {
                    return pid;
                }
            }
            catch (IOException)
            {
            }
            catch (UnauthorizedAccessException)
            {
            }
        }

        Assert.Fail("the task's process was not found");
        return 0;
    }

    private static partial class Native
    {
        [System.Runtime.InteropServices.LibraryImport("libc", EntryPoint = "kill")]
        public static partial int Kill(int pid, int signal);
    }
}
