using System.Security.Cryptography;
using System.Text;
using Sluice.Compute.Protocol;
using Sluice.Tests.TestSupport;

namespace Sluice.Tests.Agent.Tasks;

public sealed class TaskSupervisorTests
{
    [Fact]
    public async Task A_job_that_exits_zero_is_completed_and_one_that_exits_non_zero_failed_and_neither_runs_again()
    {
        await using var kit = new TaskKit();
        kit.Supervisor.Apply([kit.Shell("ok", "echo done"), kit.Shell("bad", "exit 7")]);

        await kit.WaitForStateAsync("ok", TaskStates.Terminated);
        await kit.WaitForStateAsync("bad", TaskStates.Terminated);
        var ok = kit.Report("ok")!;
        var bad = kit.Report("bad")!;
        Assert.Equal((TaskReasons.Completed, 0, 0), (ok.Reason, ok.ExitCode, ok.Restarts));
        Assert.Equal((TaskReasons.Failed, 7, 0), (bad.Reason, bad.ExitCode, bad.Restarts));
        Assert.Equal(["done"], kit.Supervisor.Logs("ok"));

        // Still listed at the same generation: kept, reported, not run again.
        kit.Supervisor.Apply([kit.Shell("ok", "echo done"), kit.Shell("bad", "exit 7")]);
        Assert.Equal(["done"], kit.Supervisor.Logs("ok"));
        Assert.Equal(TaskStates.Terminated, kit.State("bad"));
    }

    [Fact]
    public async Task A_crashing_model_server_restarts_with_exponential_backoff_and_counts_its_restarts()
    {
        var clock = new ManualTimeProvider { FollowTimers = true };
        await using var kit = new TaskKit(TaskKit.Fast with { RestartBackoffInitial = TimeSpan.FromSeconds(1), RestartBackoffMax = TimeSpan.FromSeconds(4) }, clock);
        kit.Supervisor.Apply([kit.Shell("crash", "echo run; exit 3", TaskKinds.ModelServer)]);

        async Task WaitingToRestart(int restarts)
        {
            await AgentWait.Until(
                () => kit.Report("crash") is { State: TaskStates.Starting, Reason: TaskReasons.Failed, ExitCode: 3 } r && r.Restarts == restarts && clock.PendingTimers == 1,
                $"the task to have crashed after {restarts} restart(s) and be waiting to restart");
        }

        await WaitingToRestart(0);
        clock.Advance(TimeSpan.FromSeconds(1)); // first backoff: 1 s
        await WaitingToRestart(1);
        clock.Advance(TimeSpan.FromSeconds(1)); // second backoff is 2 s: not yet
        Assert.Equal(1, kit.Report("crash")!.Restarts);
        clock.Advance(TimeSpan.FromSeconds(1));
        await WaitingToRestart(2);
        clock.Advance(TimeSpan.FromSeconds(3)); // third backoff is 4 s
        Assert.Equal(2, kit.Report("crash")!.Restarts);
        clock.Advance(TimeSpan.FromSeconds(1));
        await WaitingToRestart(3);
        clock.Advance(TimeSpan.FromSeconds(4)); // capped at 4 s
        await WaitingToRestart(4);
        Assert.Equal(5, kit.Supervisor.Logs("crash")!.Count(l => l == "run"));

        kit.Supervisor.Apply([]);
        await kit.WaitForStateAsync("crash", TaskStates.Terminated);
        Assert.Equal(TaskReasons.Stopped, kit.Report("crash")!.Reason);
    }

    [Fact]
    public async Task A_readiness_probe_that_never_passes_ends_at_the_startup_timeout_as_health_check_failed_and_the_process_is_killed()
    {
        var clock = new ManualTimeProvider { FollowTimers = true };
        await using var kit = new TaskKit(TaskKit.Fast, clock);
        var probe = new ProbeSpec { Path = "/health", StartupTimeoutSeconds = 600 };
        kit.Supervisor.Apply([kit.Shell("hung", "echo pid=$$; exec sleep 600", TaskKinds.ModelServer, probe: probe)]);

        await AgentWait.Until(() => kit.State("hung") == TaskStates.Starting && kit.LogText("hung").Contains("pid=", StringComparison.Ordinal) && clock.PendingTimers == 1,
            "the task to be starting, polling its readiness probe");
        var pid = kit.PrintedNumber("hung", "pid");
        clock.Advance(TimeSpan.FromSeconds(590));
        await AgentWait.Until(() => clock.PendingTimers == 1, "the next readiness poll");
        Assert.Equal(TaskStates.Starting, kit.State("hung"));

        clock.Advance(TimeSpan.FromSeconds(11));
        await kit.WaitForStateAsync("hung", TaskStates.Terminated);
        var report = kit.Report("hung")!;
        Assert.Equal((TaskReasons.HealthCheckFailed, 0), (report.Reason, report.Restarts));
        Assert.Contains("startup timeout", report.Detail, StringComparison.Ordinal);
        await AgentWait.Until(() => !TaskKit.ProcessAlive(pid), "the task's process to be gone");
        Assert.Null(kit.Supervisor.ReadyPort("hung"));
    }

    [Fact]
    public async Task Stopping_a_task_kills_its_whole_process_group_children_included()
    {
        await using var kit = new TaskKit();
        kit.Supervisor.Apply([kit.Shell("tree", "sleep 300 & echo child=$!; echo pid=$$; wait", TaskKinds.ModelServer)]);
        await AgentWait.Until(() => kit.LogText("tree").Contains("pid=", StringComparison.Ordinal), "the task to print its pids");
        var (child, parent) = (kit.PrintedNumber("tree", "child"), kit.PrintedNumber("tree", "pid"));
        Assert.True(TaskKit.ProcessAlive(child));

        kit.Supervisor.Apply([]);
        await kit.WaitForStateAsync("tree", TaskStates.Terminated);
        Assert.Equal(TaskReasons.Stopped, kit.Report("tree")!.Reason);
        await AgentWait.Until(() => !TaskKit.ProcessAlive(child) && !TaskKit.ProcessAlive(parent), "the task and its child to be gone");
    }

    [Fact]
    public async Task Stopping_the_agent_kills_every_task_group_including_one_that_ignores_SIGTERM()
    {
        await using var kit = new TaskKit(TaskKit.Fast with { StopGrace = TimeSpan.FromMilliseconds(500) });
        kit.Supervisor.Apply([
            kit.Shell("a", "sleep 300 & echo child=$!; wait", TaskKinds.ModelServer),
            kit.Shell("b", "trap '' TERM; sleep 300 & echo child=$!; wait", TaskKinds.Job),
        ]);
        await AgentWait.Until(() => kit.LogText("a").Contains("child=", StringComparison.Ordinal) && kit.LogText("b").Contains("child=", StringComparison.Ordinal), "both tasks to start");
        var children = new[] { kit.PrintedNumber("a", "child"), kit.PrintedNumber("b", "child") };

        await kit.Supervisor.StopAllAsync(TestContext.Current.CancellationToken);
        Assert.All(kit.Supervisor.Report(), r => Assert.Equal((TaskStates.Terminated, TaskReasons.Stopped), (r.State, r.Reason)));
        await AgentWait.Until(() => children.All(c => !TaskKit.ProcessAlive(c)), "every task's children to be gone");
    }

    [Fact]
    public async Task A_new_generation_stops_the_old_process_and_starts_the_new_spec()
    {
        await using var kit = new TaskKit();
        kit.Supervisor.Apply([kit.Shell("g", "echo pid=$$; echo gen=1; exec sleep 300", TaskKinds.ModelServer)]);
        await AgentWait.Until(() => kit.LogText("g").Contains("gen=1", StringComparison.Ordinal) && kit.State("g") == TaskStates.Ready, "generation 1 to run");
        var first = kit.PrintedNumber("g", "pid");

        kit.Supervisor.Apply([kit.Shell("g", "echo pid=$$; echo gen=2; exec sleep 300", TaskKinds.ModelServer, generation: 2)]);
        await AgentWait.Until(() => kit.Report("g") is { Generation: 2, State: TaskStates.Ready } && kit.LogText("g").Contains("gen=2", StringComparison.Ordinal), "generation 2 to run");
        Assert.NotEqual(first, kit.PrintedNumber("g", "pid"));
        Assert.DoesNotContain("gen=1", kit.LogText("g"), StringComparison.Ordinal);
        await AgentWait.Until(() => !TaskKit.ProcessAlive(first), "generation 1's process to be gone");
        Assert.Single(kit.Supervisor.Report());
    }

    [Fact]
    public async Task Environment_port_and_secrets_reach_the_process_but_never_the_reports_the_agent_log_or_the_disk()
    {
        var secret = "sk-canary-" + Guid.NewGuid().ToString("N");
        var secretHash = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(secret)));
        await using var kit = new TaskKit();
        kit.Supervisor.Apply([kit.Shell(
            "env",
            "printf %s \"$API_TOKEN\" | sha256sum | cut -c1-64 | sed 's/^/hash=/'; echo \"greeting=$GREETING\"; echo \"port=$PORT\"; echo \"arg=$0\"; echo \"agent=${SLUICE_AGENT_SETTING-unset}\"",
            environment: new Dictionary<string, string> { ["GREETING"] = "hello on {port}" },
            secrets: new Dictionary<string, string> { ["API_TOKEN"] = secret })]);
        await kit.WaitForStateAsync("env", TaskStates.Terminated);

        var output = kit.LogText("env");
        Assert.Equal(TaskReasons.Completed, kit.Report("env")!.Reason);
        Assert.Contains($"hash={secretHash}", output, StringComparison.Ordinal);
        var port = output.Split('\n').Single(l => l.StartsWith("port=", StringComparison.Ordinal))[5..];
        Assert.True(int.Parse(port, System.Globalization.CultureInfo.InvariantCulture) > 0);
        Assert.Contains($"greeting=hello on {port}", output, StringComparison.Ordinal);

        Canary.AssertAbsent(kit.ReportJson(), secret, "the task reports");
        Canary.AssertAbsent(kit.Logs.All, secret, "the agent's log");
        Canary.AssertAbsent(await Canary.DumpDirectoryAsync(kit.WorkDir), secret, "the task's working directory");
        Assert.DoesNotContain("hello on", kit.ReportJson() + kit.Logs.All, StringComparison.Ordinal); // nor the environment
        Assert.DoesNotContain("sha256sum", kit.ReportJson() + kit.Logs.All, StringComparison.Ordinal); // nor the command line
        Assert.DoesNotContain(secretHash, kit.ReportJson() + kit.Logs.All, StringComparison.Ordinal); // nor what the task printed
    }

    [Fact]
    public async Task The_agents_own_settings_are_not_inherited_by_a_task()
    {
        Environment.SetEnvironmentVariable("SLUICE_TEST_AGENT_SETTING", "agent-only");
        try
        {
            await using var kit = new TaskKit();
            kit.Supervisor.Apply([kit.Shell("inherit", "echo \"setting=${SLUICE_TEST_AGENT_SETTING-unset}\"")]);
            await kit.WaitForStateAsync("inherit", TaskStates.Terminated);
            Assert.Contains("setting=unset", kit.LogText("inherit"), StringComparison.Ordinal);
        }
        finally
        {
            Environment.SetEnvironmentVariable("SLUICE_TEST_AGENT_SETTING", null);
        }
    }

    [Fact]
    public async Task CUDA_VISIBLE_DEVICES_lists_the_assigned_GPUs_and_is_empty_for_a_task_without_GPUs()
    {
        await using var kit = new TaskKit();
        const string Script = "echo \"gpus=[$CUDA_VISIBLE_DEVICES]\"; echo \"set=${CUDA_VISIBLE_DEVICES+yes}\"";
        kit.Supervisor.Apply([kit.Shell("two", Script, gpus: [0, 2]), kit.Shell("none", Script)]);
        await kit.WaitForStateAsync("two", TaskStates.Terminated);
        await kit.WaitForStateAsync("none", TaskStates.Terminated);

        Assert.Equal(["gpus=[0,2]", "set=yes"], kit.Supervisor.Logs("two"));
        Assert.Equal(["gpus=[]", "set=yes"], kit.Supervisor.Logs("none"));
    }

    [Fact]
    public async Task A_tasks_log_is_bounded_in_memory_and_dropped_with_the_task()
    {
        await using var kit = new TaskKit(TaskKit.Fast with { LogBufferBytes = 4096 });
        kit.Supervisor.Apply([kit.Shell("chatty", "seq 1 20000")]);
        await kit.WaitForStateAsync("chatty", TaskStates.Terminated);

        var lines = kit.Supervisor.Logs("chatty")!;
        Assert.Equal("20000", lines[^1]);
        Assert.NotEqual("1", lines[0]);
        Assert.True(lines.Sum(l => l.Length * 2) <= 4096, $"{lines.Sum(l => l.Length * 2)} bytes kept");

        kit.Supervisor.Apply([]); // no longer listed, and already terminated: forgotten, its log with it
        Assert.Null(kit.Report("chatty"));
        Assert.Null(kit.Supervisor.Logs("chatty"));
    }

    [Fact]
    public async Task A_container_task_without_Docker_fails_with_a_clear_detail()
    {
        await using var kit = new TaskKit(TaskKit.Fast with { DockerSocket = "/nonexistent/docker.sock" });
        kit.Supervisor.Apply([new TaskSpec
        {
            TaskId = "c",
            Generation = 1,
            Kind = TaskKinds.ModelServer,
            Runtime = TaskRuntimes.Container,
            Container = new ContainerRuntimeSpec { Image = "vllm/vllm-openai:latest", ContainerPort = 8000 },
            GpuIndices = [0],
        }]);
        await kit.WaitForStateAsync("c", TaskStates.Terminated);

        var report = kit.Report("c")!;
        Assert.Equal(TaskReasons.Failed, report.Reason);
        Assert.Contains("Docker is not available on this machine", report.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Bad_specs_fail_with_a_clear_content_free_detail_and_nothing_runs()
    {
        await using var kit = new TaskKit();
        var noCommand = kit.Shell("no-command", "x") with { Process = new ProcessRuntimeSpec { Command = " " } };
        var missing = kit.Shell("missing", "x") with { Process = new ProcessRuntimeSpec { Command = "/nonexistent/secret-engine-name", Args = ["--token", "arg-canary"] } };
        kit.Supervisor.Apply([
            kit.Shell("unknown-runtime", "echo ran") with { Runtime = "vm" },
            kit.Shell("unknown-kind", "echo ran") with { Kind = "daemon" },
            noCommand,
            kit.Shell("no-image", "x") with { Runtime = TaskRuntimes.Container, Container = new ContainerRuntimeSpec { Image = "" } },
            kit.Shell("negative-gpu", "echo ran", gpus: [-1]),
            missing,
        ]);
        foreach (var id in new[] { "unknown-runtime", "unknown-kind", "no-command", "no-image", "negative-gpu", "missing" })
        {
            await kit.WaitForStateAsync(id, TaskStates.Terminated);
            Assert.Equal(TaskReasons.Failed, kit.Report(id)!.Reason);
            Assert.Empty(kit.Supervisor.Logs(id)!);
        }

        Assert.Contains("unknown runtime", kit.Report("unknown-runtime")!.Detail, StringComparison.Ordinal);
        Assert.Contains("unknown kind", kit.Report("unknown-kind")!.Detail, StringComparison.Ordinal);
        Assert.Contains("needs 'process' with a command", kit.Report("no-command")!.Detail, StringComparison.Ordinal);
        Assert.Contains("needs 'container' with an image", kit.Report("no-image")!.Detail, StringComparison.Ordinal);
        Assert.Contains("command was not found", kit.Report("missing")!.Detail, StringComparison.Ordinal);
        Assert.DoesNotContain("secret-engine-name", kit.ReportJson() + kit.Logs.All, StringComparison.Ordinal);
        Assert.DoesNotContain("arg-canary", kit.ReportJson() + kit.Logs.All, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Task_groups_left_by_an_agent_that_was_killed_are_ended_by_the_next_agent()
    {
        var state = Path.Combine(Path.GetTempPath(), "sluice-agent-state-" + Guid.NewGuid().ToString("N"));
        try
        {
            // The first agent never stops its task (as if SIGKILLed); the second finds the group it left.
            var first = new TaskKit(TaskKit.Fast with { StateDirectory = state });
            first.Supervisor.Apply([first.Shell("left", "sleep 300 & echo child=$!; echo pid=$$; wait")]);
            await AgentWait.Until(() => first.LogText("left").Contains("pid=", StringComparison.Ordinal), "the task to start");
            var (child, parent) = (first.PrintedNumber("left", "child"), first.PrintedNumber("left", "pid"));
            Assert.Single(Directory.GetFiles(state));

            await using var second = new TaskKit(TaskKit.Fast with { StateDirectory = state });
            await AgentWait.Until(() => !TaskKit.ProcessAlive(child) && !TaskKit.ProcessAlive(parent), "the orphaned group to be gone");
            Assert.Contains(second.Logs.Lines, l => l.Contains("Ended 1 task process group", StringComparison.Ordinal));
            await first.DisposeAsync();
            Assert.Empty(Directory.GetFiles(state));
        }
        finally
        {
            // Only if the runtime made it: a failure before then must be reported as itself, not as a missing folder.
            if (Directory.Exists(state))
            {
                Directory.Delete(state, recursive: true);
            }
        }
    }
}
