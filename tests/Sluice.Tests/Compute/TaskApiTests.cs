using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Sluice.Compute.Protocol;
using Sluice.Storage;
using Sluice.Tests.TestSupport;

namespace Sluice.Tests.Compute;

/// <summary>Placing tasks on machines: validation, GPUs, owners, and secrets that are never stored in the clear.</summary>
public sealed class TaskApiTests
{
    [Theory]
    [InlineData(DatabaseProvider.Sqlite)]
    [InlineData(DatabaseProvider.Postgres)]
    public async Task A_task_reaches_its_machine_in_the_next_heartbeat_with_its_secrets_which_are_stored_only_sealed(DatabaseProvider provider)
    {
        const string SecretCanary = "canary-secret-7f3a9c21d";
        const string EnvCanary = "canary-env-51be0d";
        const string ArgCanary = "canary-arg-c0ffee42";
        await using var database = await TestDatabase.CreateAsync(provider);
        await using var sluice = new SluiceFactory(database);
        using var op = await ComputeKit.OperatorAsync(sluice);
        using var agent = sluice.Anonymous();
        var joined = await ComputeKit.JoinAsync(agent, (await ComputeKit.CreateJoinTokenAsync(op)).Token);

        var created = await op.PostAsJsonAsync($"/api/v1/machines/{joined.MachineId}/tasks", new
        {
            kind = "model_server",
            runtime = "process",
            process = new { command = "sluice", args = new[] { "engine", "llama", "--api-key", ArgCanary }, environment = new Dictionary<string, string> { ["HF_TOKEN"] = EnvCanary } },
            gpus = 2,
            probe = new { path = "/health", startupTimeoutSeconds = 600, intervalSeconds = 10, failureThreshold = 3 },
            secrets = new Dictionary<string, string> { ["UPSTREAM_TOKEN"] = SecretCanary },
        });
        Assert.True(created.StatusCode == HttpStatusCode.Created, await created.Content.ReadAsStringAsync());
        var task = await created.Content.ReadFromJsonAsync<JsonElement>();
        var taskId = task.GetProperty("id").GetString()!;
        Assert.Equal([0, 1], task.GetProperty("gpuIndices").EnumerateArray().Select(i => i.GetInt32()));
        Assert.Equal("pending", task.GetProperty("state").GetString());

        var reply = await ComputeKit.HeartbeatAsync(agent, joined.Credential, ComputeKit.Heartbeat(DateTimeOffset.UtcNow));
        var spec = Assert.Single(reply.Tasks);
        Assert.Equal(taskId, spec.TaskId);
        Assert.Equal(1, spec.Generation);
        Assert.Equal([0, 1], spec.GpuIndices);
        Assert.Equal(SecretCanary, spec.Secrets!["UPSTREAM_TOKEN"]);
        Assert.Equal(EnvCanary, spec.Process!.Environment!["HF_TOKEN"]);
        Assert.Contains(ArgCanary, spec.Process.Args);

        // Listings show metadata only; the database, the log and the audit log hold none of the spec in plain text.
        var listed = await op.GetStringAsync($"/api/v1/machines/{joined.MachineId}/tasks");
        var dump = await Canary.DumpDatabaseAsync(database);
        foreach (var canary in new[] { SecretCanary, EnvCanary, ArgCanary })
        {
            Canary.AssertAbsent(listed, canary, "the task listing");
            Canary.AssertAbsent(dump, canary, "the database");
            Canary.AssertAbsent(sluice.Logs.All, canary, "the log");
        }

        Assert.Contains(await ComputeKit.AuditAsync(database, "machine.task_create"), a => a.Target == $"machine_task:{taskId}" && a.Outcome == "success");

        // Stopped: out of the desired set, generation bumped, GPUs free again.
        var stopped = await (await op.DeleteAsync($"/api/v1/machines/{joined.MachineId}/tasks/{taskId}")).Content.ReadFromJsonAsync<JsonElement>();
        Assert.Equal("stopped", stopped.GetProperty("desired").GetString());
        Assert.Equal(2, stopped.GetProperty("generation").GetInt32());
        Assert.Empty((await ComputeKit.HeartbeatAsync(agent, joined.Credential, ComputeKit.Heartbeat(DateTimeOffset.UtcNow, sequence: 2))).Tasks);
        Assert.Contains(await ComputeKit.AuditAsync(database, "machine.task_stop"), a => a.Target == $"machine_task:{taskId}");
        var again = await op.PostAsJsonAsync($"/api/v1/machines/{joined.MachineId}/tasks", new { kind = "job", runtime = "process", process = new { command = "x" }, gpuIndices = new[] { 0, 1 } });
        Assert.Equal(HttpStatusCode.Created, again.StatusCode);
    }

    [Fact]
    public async Task A_finished_job_leaves_the_desired_set_and_a_stopped_task_keeps_its_gpus_until_the_machine_no_longer_holds_it()
    {
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Sqlite);
        await using var sluice = new SluiceFactory(database);
        using var op = await ComputeKit.OperatorAsync(sluice);
        using var agent = sluice.Anonymous();
        var joined = await ComputeKit.JoinAsync(agent, (await ComputeKit.CreateJoinTokenAsync(op)).Token);
        var machine = $"/api/v1/machines/{joined.MachineId}/tasks";
        var sequence = 1L;
        Task<HeartbeatResponse> Beat(params TaskReport[] tasks) =>
            ComputeKit.HeartbeatAsync(agent, joined.Credential, ComputeKit.Heartbeat(DateTimeOffset.UtcNow, tasks: tasks, sequence: sequence++));
        async Task<string> CreateAsync(string kind, int gpu, HttpStatusCode expected = HttpStatusCode.Created)
        {
            var response = await op.PostAsJsonAsync(machine, new { kind, runtime = "process", process = new { command = "x" }, gpuIndices = new[] { gpu } });
            Assert.True(response.StatusCode == expected, await response.Content.ReadAsStringAsync());
            return expected == HttpStatusCode.Created ? (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetString()! : "";
        }

        // A job that completed is out of the desired set: a restarted agent (which remembers nothing) never runs it again.
        var job = await CreateAsync("job", 0);
        Assert.Single((await Beat()).Tasks);
        var done = await Beat(new TaskReport { TaskId = job, Generation = 1, State = TaskStates.Terminated, Reason = TaskReasons.Completed, ExitCode = 0 });
        Assert.Empty(done.Tasks);
        Assert.Empty((await Beat()).Tasks);
        var finished = await op.GetFromJsonAsync<JsonElement>($"{machine}/{job}");
        Assert.Equal(("stopped", TaskStates.Terminated, TaskReasons.Completed), (finished.GetProperty("desired").GetString(), finished.GetProperty("state").GetString(), finished.GetProperty("reason").GetString()));
        await CreateAsync("job", 0); // its GPU is free

        // A stopped server keeps its GPU while the machine still runs it; once the machine no longer holds it, the GPU is free.
        var server = await CreateAsync("model_server", 1);
        await Beat(new TaskReport { TaskId = server, Generation = 1, State = TaskStates.Ready });
        Assert.Equal(HttpStatusCode.OK, (await op.DeleteAsync($"{machine}/{server}")).StatusCode);
        await CreateAsync("job", 1, HttpStatusCode.Conflict);
        await Beat(new TaskReport { TaskId = server, Generation = 1, State = TaskStates.Terminating, Reason = TaskReasons.Stopped });
        await CreateAsync("job", 1, HttpStatusCode.Conflict);
        await Beat(); // stopped and forgotten by the agent
        Assert.Equal(TaskStates.Terminated, (await op.GetFromJsonAsync<JsonElement>($"{machine}/{server}")).GetProperty("state").GetString());
        await CreateAsync("job", 1);
    }

    [Fact]
    public async Task Bad_task_specs_are_refused_by_field_write_nothing_and_are_audited()
    {
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Sqlite);
        await using var sluice = new SluiceFactory(database);
        using var op = await ComputeKit.OperatorAsync(sluice);
        using var agent = sluice.Anonymous();
        var joined = await ComputeKit.JoinAsync(agent, (await ComputeKit.CreateJoinTokenAsync(op)).Token); // 2 GPUs, no Docker
        var url = $"/api/v1/machines/{joined.MachineId}/tasks";
        var process = new { command = "x" };
        var cases = new (object Body, HttpStatusCode Status, string Field)[]
        {
            (new { kind = "job", runtime = "vm", process }, HttpStatusCode.BadRequest, "runtime"),
            (new { kind = "daemon", runtime = "process", process }, HttpStatusCode.BadRequest, "kind"),
            (new { kind = "job", runtime = "process" }, HttpStatusCode.BadRequest, "process.command"),
            (new { kind = "job", runtime = "process", process = new { command = "" } }, HttpStatusCode.BadRequest, "process.command"),
            (new { kind = "job", runtime = "container", container = new { image = "" } }, HttpStatusCode.BadRequest, "container.image"),
            (new { kind = "job", runtime = "container", container = new { image = "vllm/vllm-openai" } }, HttpStatusCode.BadRequest, "runtime"),
            (new { kind = "job", runtime = "process", process, gpus = 3 }, HttpStatusCode.BadRequest, "gpus"),
            (new { kind = "job", runtime = "process", process, gpuIndices = new[] { 7 } }, HttpStatusCode.BadRequest, "gpuIndices"),
            (new { kind = "job", runtime = "process", process, probe = new { path = "/metrics" } }, HttpStatusCode.BadRequest, "probe"),
        };

        foreach (var (body, status, field) in cases)
        {
            var problem = await ComputeKit.ProblemAsync(await op.PostAsJsonAsync(url, body), status);
            Assert.True(problem.GetProperty("errors").TryGetProperty(field, out _), $"{field} not named: {problem}");
        }

        var first = await op.PostAsJsonAsync(url, new { kind = "job", runtime = "process", process, gpuIndices = new[] { 1 } });
        Assert.Equal(HttpStatusCode.Created, first.StatusCode);
        await ComputeKit.ProblemAsync(await op.PostAsJsonAsync(url, new { kind = "job", runtime = "process", process, gpuIndices = new[] { 1 } }), HttpStatusCode.Conflict);
        await ComputeKit.ProblemAsync(await op.PostAsJsonAsync(url, new { kind = "job", runtime = "process", process, gpus = 2 }), HttpStatusCode.Conflict);
        Assert.Equal(HttpStatusCode.OK, (await op.PostAsync($"/api/v1/machines/{joined.MachineId}/cordon", null)).StatusCode);
        await ComputeKit.ProblemAsync(await op.PostAsJsonAsync(url, new { kind = "job", runtime = "process", process }), HttpStatusCode.Conflict);
        await ComputeKit.ProblemAsync(await op.PostAsJsonAsync($"/api/v1/machines/{Guid.NewGuid()}/tasks", new { kind = "job", runtime = "process", process }), HttpStatusCode.NotFound);

        await using var db = database.CreateContext();
        Assert.Equal(1, db.MachineTasks.Count());
        Assert.Equal(cases.Length + 4, (await ComputeKit.AuditAsync(database, "machine.task_create")).Count(a => a.Outcome == "refused")); // the unknown machine too
    }

    [Fact]
    public async Task An_orgs_private_machine_runs_only_that_orgs_work_and_a_machine_reports_only_its_own_tasks()
    {
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Sqlite);
        await using var sluice = new SluiceFactory(database);
        using var op = await ComputeKit.OperatorAsync(sluice);
        var (ownerA, _) = await sluice.SignUpAndLoginAsync("a@example.com");
        var orgA = await SluiceFactory.CreateOrganizationAsync(ownerA, "A");
        var (ownerB, _) = await sluice.SignUpAndLoginAsync("b@example.com");
        var orgB = await SluiceFactory.CreateOrganizationAsync(ownerB, "B");
        using var agent = sluice.Anonymous();
        var machineA = await ComputeKit.JoinAsync(agent, (await ComputeKit.CreateJoinTokenAsync(ownerA, orgA)).Token);
        var machineB = await ComputeKit.JoinAsync(agent, (await ComputeKit.CreateJoinTokenAsync(ownerB, orgB)).Token);
        var job = new { kind = "job", runtime = "process", process = new { command = "x" } };

        var own = await ownerA.PostAsJsonAsync($"/api/v1/machines/{machineA.MachineId}/tasks", job);
        Assert.Equal(HttpStatusCode.Created, own.StatusCode);
        var taskA = (await own.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetString()!;
        await ComputeKit.ProblemAsync(await ownerB.PostAsJsonAsync($"/api/v1/machines/{machineA.MachineId}/tasks", job), HttpStatusCode.NotFound);
        await ComputeKit.ProblemAsync(await ownerB.GetAsync($"/api/v1/machines/{machineA.MachineId}/tasks"), HttpStatusCode.NotFound);
        await ComputeKit.ProblemAsync(await ownerB.GetAsync($"/api/v1/machines/{machineA.MachineId}/tasks/{taskA}"), HttpStatusCode.NotFound);
        await ComputeKit.ProblemAsync(await ownerB.DeleteAsync($"/api/v1/machines/{machineA.MachineId}/tasks/{taskA}"), HttpStatusCode.NotFound);
        await ComputeKit.ProblemAsync(await ownerB.PostAsJsonAsync($"/api/v1/machines/{machineB.MachineId}/tasks", new { job.kind, job.runtime, job.process, organizationId = orgA }), HttpStatusCode.Forbidden);
        await ComputeKit.ProblemAsync(await op.PostAsJsonAsync($"/api/v1/machines/{machineB.MachineId}/tasks", new { job.kind, job.runtime, job.process, organizationId = orgA }), HttpStatusCode.Forbidden);
        await ComputeKit.ProblemAsync(await op.PostAsJsonAsync($"/api/v1/machines/{machineB.MachineId}/tasks", job), HttpStatusCode.Forbidden); // platform work
        Assert.Equal(HttpStatusCode.Created, (await op.PostAsJsonAsync($"/api/v1/machines/{machineB.MachineId}/tasks", new { job.kind, job.runtime, job.process, organizationId = orgB })).StatusCode);

        // Machine B sees only its own task, and may not report A's.
        var replyB = await ComputeKit.HeartbeatAsync(agent, machineB.Credential, ComputeKit.Heartbeat(DateTimeOffset.UtcNow));
        Assert.DoesNotContain(replyB.Tasks, t => t.TaskId == taskA);
        var foreign = ComputeKit.Heartbeat(DateTimeOffset.UtcNow, sequence: 2) with { Tasks = [new TaskReport { TaskId = taskA, Generation = 1, State = TaskStates.Ready }] };
        var problem = await ComputeKit.ProblemAsync(await ComputeKit.PostHeartbeatAsync(agent, machineB.Credential, foreign), HttpStatusCode.BadRequest);
        Assert.True(problem.GetProperty("errors").TryGetProperty("tasks[0].task_id", out _));
        Assert.Equal("pending", (await ownerA.GetFromJsonAsync<JsonElement>($"/api/v1/machines/{machineA.MachineId}/tasks/{taskA}")).GetProperty("state").GetString());
        var refusals = (await ComputeKit.AuditAsync(database, "machine.task_create")).Where(a => a.Outcome == "refused").ToList();
        Assert.Contains(refusals, a => a.Target == $"machine:{machineA.MachineId}"); // org B's admin offering work to A's machine
        Assert.Equal(4, refusals.Count);
    }

    [Theory]
    [InlineData(DatabaseProvider.Sqlite)]
    [InlineData(DatabaseProvider.Postgres)]
    public async Task Placements_on_one_machine_at_once_take_turns_so_no_gpu_is_given_twice(DatabaseProvider provider)
    {
        await using var database = await TestDatabase.CreateAsync(provider);
        await using var sluice = new SluiceFactory(database);
        using var op = await ComputeKit.OperatorAsync(sluice);
        using var agent = sluice.Anonymous();
        var joined = await ComputeKit.JoinAsync(agent, (await ComputeKit.CreateJoinTokenAsync(op)).Token); // 2 GPUs

        var responses = await Task.WhenAll(Enumerable.Range(0, 6).Select(_ =>
            op.PostAsJsonAsync($"/api/v1/machines/{joined.MachineId}/tasks", new { kind = "job", runtime = "process", process = new { command = "x" }, gpus = 1 })));

        Assert.Equal(2, responses.Count(r => r.StatusCode == HttpStatusCode.Created));
        Assert.All(responses.Where(r => r.StatusCode != HttpStatusCode.Created), r => Assert.Equal(HttpStatusCode.Conflict, r.StatusCode));
        var reply = await ComputeKit.HeartbeatAsync(agent, joined.Credential, ComputeKit.Heartbeat(DateTimeOffset.UtcNow));
        Assert.Equal([0, 1], reply.Tasks.SelectMany(t => t.GpuIndices).Order());
    }
}
