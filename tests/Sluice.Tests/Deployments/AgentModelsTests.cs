using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Sluice.Agent.Machine;
using Sluice.Agent.Tasks;
using Sluice.Compute.Protocol;
using Sluice.Deployments;
using Sluice.Storage;
using Sluice.Tests.Compute;
using Sluice.Tests.TestSupport;

namespace Sluice.Tests.Deployments;

/// <summary>The agent's side of deployments: the model files it reports, and <c>{sluice}</c>, its own executable, as a task's command.</summary>
public sealed class AgentModelsTests
{
    [Fact]
    public void The_scanner_reports_gguf_files_and_model_directories_one_level_deep_with_sizes_and_nothing_else()
    {
        var root = Directory.CreateTempSubdirectory("sluice-models-").FullName;
        try
        {
            File.WriteAllBytes(Path.Combine(root, "a.gguf"), new byte[10]);
            File.WriteAllBytes(Path.Combine(root, "notes.txt"), new byte[3]);
            Directory.CreateDirectory(Path.Combine(root, "qwen", "sub"));
            File.WriteAllText(Path.Combine(root, "qwen", "config.json"), "{}");
            File.WriteAllBytes(Path.Combine(root, "qwen", "sub", "weights.bin"), new byte[100]);
            Directory.CreateDirectory(Path.Combine(root, "ggufs", "deeper"));
            File.WriteAllBytes(Path.Combine(root, "ggufs", "B.GGUF"), new byte[7]);
            File.WriteAllBytes(Path.Combine(root, "ggufs", "deeper", "too-deep.gguf"), new byte[7]);

            var models = ModelScanner.Scan(root);
            Assert.Equal(
                [(Path.Combine(root, "a.gguf"), 10L), (Path.Combine(root, "ggufs", "B.GGUF"), 7L), (Path.Combine(root, "qwen"), 102L)],
                models.Select(m => (m.Path, m.Bytes)));
            Assert.Empty(ModelScanner.Scan(Path.Combine(root, "missing")));
            Assert.Empty(ModelScanner.Scan(null));

            for (var i = 0; i < 300; i++)
            {
                File.WriteAllBytes(Path.Combine(root, $"m{i:D3}.gguf"), []);
            }

            Assert.Equal(ModelScanner.MaxModels, ModelScanner.Scan(root).Count);
        }
        finally
        {
            Directory.Delete(root, recursive: true);
        }
    }

    [Fact]
    public void The_sluice_command_is_the_agents_own_executable_or_the_dotnet_host_with_its_entry_assembly()
    {
        Assert.Equal(("/usr/bin/sluice", 0), Shape(ProcessRuntime.SluiceExecutable("/usr/bin/sluice", "/usr/lib/sluice/sluice.dll")));
        var (command, leading) = ProcessRuntime.SluiceExecutable("/usr/share/dotnet/dotnet", "/opt/sluice/sluice.dll");
        Assert.Equal("/usr/share/dotnet/dotnet", command);
        Assert.Equal(["/opt/sluice/sluice.dll"], leading);
        Assert.Null(ProcessRuntime.SluiceExecutable(null, null).Command);

        var spec = new TaskSpec
        {
            TaskId = "t", Generation = 1, Kind = TaskKinds.ModelServer, Runtime = TaskRuntimes.Process,
            Process = new ProcessRuntimeSpec { Command = AgentPaths.SluiceCommand, Args = ["engine", "llama", "--port", "{port}"] },
        };
        var info = ProcessRuntime.BuildStartInfo(spec, spec.Process, 4242);
        var arguments = info.ArgumentList.ToList();
        Assert.Contains(Environment.ProcessPath!, arguments.Prepend(info.FileName));
        Assert.Equal(["engine", "llama", "--port", "4242"], arguments.TakeLast(4));

        static (string?, int) Shape((string? Command, IReadOnlyList<string> Leading) x) => (x.Command, x.Leading.Count);
    }

    [Fact]
    public async Task A_bad_model_list_from_an_agent_is_refused_by_field()
    {
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Sqlite);
        await using var sluice = new SluiceFactory(database);
        using var op = await ComputeKit.OperatorAsync(sluice);
        using var agent = sluice.Anonymous();
        var (_, token) = await ComputeKit.CreateJoinTokenAsync(op);
        var cases = new (IReadOnlyList<ModelFile> Models, string Field)[]
        {
            ([new ModelFile { Path = "models/a.gguf" }], "inventory.models[0].path"),
            ([new ModelFile { Path = "/models/../etc/shadow" }], "inventory.models[0].path"),
            ([new ModelFile { Path = "/" + new string('a', 1000) }], "inventory.models[0].path"),
            ([new ModelFile { Path = "/models/a.gguf", Bytes = -1 }], "inventory.models[0].bytes"),
            ([.. Enumerable.Range(0, 257).Select(i => new ModelFile { Path = $"/m/{i}.gguf" })], "inventory.models"),
        };
        foreach (var (models, field) in cases)
        {
            var problem = await ComputeKit.ProblemAsync(await ComputeKit.PostJoinAsync(agent, ComputeKit.Join(token, ComputeKit.Inventory() with { Models = models })), HttpStatusCode.BadRequest);
            Assert.True(problem.GetProperty("errors").TryGetProperty(field, out _), $"{field}: {problem}");
        }

        var joined = await ComputeKit.JoinAsync(agent, token, ComputeKit.Inventory() with { Models = [new ModelFile { Path = "/models/a.gguf", Bytes = 5 }] });
        var machine = await op.GetFromJsonAsync<JsonElement>($"/api/v1/machines/{joined.MachineId}");
        Assert.Equal("/models/a.gguf", machine.GetProperty("inventory").GetProperty("models")[0].GetProperty("path").GetString());
    }
}

/// <summary>
/// A real agent process: it reports its models directory at join and again when it changes, a deployment's artifact
/// is checked against what it reports, and the deployment's task (the built-in engine through <c>{sluice}</c>) runs.
/// </summary>
[Collection(RealProcessLoad.Name)]
public sealed class AgentModelsEndToEndTests
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(90);

    [Fact]
    public async Task A_real_agent_reports_its_models_and_runs_a_deployments_built_in_engine_through_its_own_executable()
    {
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Sqlite);
        var port = SluiceProcess.FreePort();
        await using var sluice = new SluiceFactory(database, new Dictionary<string, string?>
        {
            ["Compute:HeartbeatInterval"] = "00:00:01",
            ["Compute:AllowLoopbackServing"] = "true",
        });
        sluice.UseKestrel(port);
        sluice.StartServer();
        var server = $"http://127.0.0.1:{port}";
        HttpClient Client() => sluice.CreateClient(new Microsoft.AspNetCore.Mvc.Testing.WebApplicationFactoryClientOptions { BaseAddress = new Uri(server), HandleCookies = true });
        using var op = Client();
        var (_, account, secret) = Assert.Single(sluice.Credentials.Written);
        Assert.Equal(HttpStatusCode.OK, (await op.PostAsJsonAsync("/api/v1/auth/login", new { email = account, password = secret })).StatusCode);
        using var owner = Client();
        Assert.Equal(HttpStatusCode.Created, (await owner.PostAsJsonAsync("/api/v1/auth/signup", new { email = "owner@example.com", name = "Owner", password = SluiceFactory.Password, ageAttestation = true })).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await owner.PostAsJsonAsync("/api/v1/auth/login", new { email = "owner@example.com", password = SluiceFactory.Password })).StatusCode);
        var org = await SluiceFactory.CreateOrganizationAsync(owner, "Acme");
        Assert.True((await op.PostAsJsonAsync("/api/v1/gpu-prices", new { gpuType = "NVIDIA H100 80GB HBM3", perGpuHourMicros = 2_500_000 })).IsSuccessStatusCode);
        Assert.True((await op.PostAsJsonAsync($"/api/v1/admin/orgs/{org}/wallet/credits", new { amountMicros = 1_000_000_000, reason = "GPU time" })).IsSuccessStatusCode);

        var work = Directory.CreateTempSubdirectory("sluice-models-e2e-").FullName;
        var models = Path.Combine(work, "my-models");
        var gguf = TinyGguf.Write(models);
        using var nvidiaSmi = FakeNvidiaSmi.H100x8();
        var environment = new Dictionary<string, string?> { ["PATH"] = nvidiaSmi.PathWithFakeFirst };
        var dataDir = Path.Combine(work, "agent");
        var servingPort = SluiceProcess.FreePort();
        var (_, token) = await ComputeKit.CreateJoinTokenAsync(op);
        var (exit, stdout, stderr) = await SluiceProcess.RunAsync(
            ["agent", "join", "--server", server, "--token", token, "--data-dir", dataDir, "--models-dir", models,
             "--listen", $"https://127.0.0.1:{servingPort}", "--advertise", $"https://127.0.0.1:{servingPort}"],
            environment, TimeSpan.FromSeconds(60));
        Assert.True(exit == 0, $"{stdout}\n{stderr}");
        using var identity = JsonDocument.Parse(File.ReadAllText(Path.Combine(dataDir, "agent.json")));
        var machineId = Guid.Parse(identity.RootElement.GetProperty("machine_id").GetString()!);
        Assert.Equal(models, identity.RootElement.GetProperty("models_directory").GetString());

        var machine = await op.GetFromJsonAsync<JsonElement>($"/api/v1/machines/{machineId}");
        Assert.Equal([gguf], machine.GetProperty("inventory").GetProperty("models").EnumerateArray().Select(m => m.GetProperty("path").GetString()));

        // A file the agent does not report cannot be deployed; once it appears (rescanned, sent with a heartbeat), it can.
        var later = Path.Combine(models, "later.gguf");
        var body = new Dictionary<string, object?>
        {
            ["organizationId"] = org, ["name"] = "tiny", ["engine"] = "builtin-llama", ["artifact"] = later, ["gpuType"] = "NVIDIA H100 80GB HBM3", ["gpusPerReplica"] = 1,
        };
        var missing = await ComputeKit.ProblemAsync(await owner.PostAsJsonAsync("/api/v1/deployments", body), HttpStatusCode.BadRequest);
        Assert.True(missing.GetProperty("errors").TryGetProperty("artifact", out _));

        await using var agent = SluiceProcess.Start(["agent", "run", "--data-dir", dataDir, "--models-rescan-seconds", "1"], environment);
        TinyGguf.Write(models, "later.gguf");
        await Eventually.TrueAsync(async () =>
        {
            var m = await op.GetFromJsonAsync<JsonElement>($"/api/v1/machines/{machineId}");
            return m.GetProperty("inventory").GetProperty("models").EnumerateArray().Any(f => f.GetProperty("path").GetString() == later);
        }, "the new model file to be reported", Patience);
        var created = await DeploymentKit.CreatedAsync(await owner.PostAsJsonAsync("/api/v1/deployments", body));

        // The replica's task as the scheduler would place it: the agent runs `{sluice} engine llama` as its own executable.
        Deployment deployment;
        await using (var db = database.CreateContext())
        {
            deployment = db.Deployments.Single(d => d.Id == created.GetProperty("id").GetGuid());
        }

        var spec = DeploymentLaunch.ToTaskSpec(deployment, null);
        Assert.Equal(AgentPaths.SluiceCommand, spec.Process!.Command);
        try
        {
            var task = await op.PostAsJsonAsync($"/api/v1/machines/{machineId}/tasks", new
            {
                kind = spec.Kind,
                runtime = spec.Runtime,
                process = new { command = spec.Process.Command, args = spec.Process.Args },
                gpus = 1,
                probe = new { path = spec.Probe!.Path, startupTimeoutSeconds = 120, intervalSeconds = 1, failureThreshold = 3 },
                organizationId = org,
            });
            Assert.True(task.StatusCode == HttpStatusCode.Created, await task.Content.ReadAsStringAsync());
            var taskId = (await task.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetGuid();
            string? state = null;
            await Eventually.TrueAsync(async () =>
            {
                state = (await op.GetFromJsonAsync<JsonElement>($"/api/v1/machines/{machineId}/tasks/{taskId}")).GetProperty("state").GetString();
                return state is TaskStates.Ready or TaskStates.Terminated;
            }, "the engine's task to be ready", Patience);
            Assert.Equal(TaskStates.Ready, state);
        }
        finally
        {
            foreach (var process in Process.GetProcesses())
            {
                try
                {
                    if (File.ReadAllText($"/proc/{process.Id}/cmdline").Split('\0').Contains(later))
                    {
                        process.Kill(entireProcessTree: true);
                    }
                }
                catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or InvalidOperationException)
                {
                }
                finally
                {
                    process.Dispose();
                }
            }
        }
    }
}
