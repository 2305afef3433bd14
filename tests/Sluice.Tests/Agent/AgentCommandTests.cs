using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using Sluice.Agent;
using Sluice.Compute.Protocol;
using Sluice.Tests.TestSupport;

namespace Sluice.Tests.Agent;

/// <summary>`sluice agent join|run|status` as real processes against the stand-in control server, with the fake nvidia-smi on PATH.</summary>
[System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
public sealed class AgentCommandTests : IAsyncLifetime
{
    private readonly string _root = Path.Combine(Path.GetTempPath(), "sluice-agent-cmd-" + Guid.NewGuid().ToString("N")[..12]);
    private readonly FakeNvidiaSmi _smi = FakeNvidiaSmi.H100x8();
    private readonly string _joinToken = "sjt_CANARY" + Guid.NewGuid().ToString("N");
    private FakeControlServer _server = null!;

    private string DataDir => Path.Combine(_root, "agent");

    private Dictionary<string, string?> Environment => new() { ["PATH"] = _smi.PathWithFakeFirst, ["DOCKER_HOST"] = "unix:///nonexistent/docker.sock" };

    public async ValueTask InitializeAsync() => _server = await FakeControlServer.StartAsync();

    public async ValueTask DisposeAsync()
    {
        await _server.DisposeAsync();
        _smi.Dispose();
        if (Directory.Exists(_root))
        {
            Directory.Delete(_root, recursive: true);
        }
    }

    private string[] JoinArgs(params string[] more) =>
        ["agent", "join", "--server", _server.Url.ToString(), "--token", _joinToken, "--data-dir", DataDir, .. more];

    private Task<(int ExitCode, string Stdout, string Stderr)> JoinAsync(params string[] more) =>
        SluiceProcess.RunAsync(JoinArgs(more), Environment);

    /// <summary>A join for a machine the test then runs: its serving endpoint listens on a free loopback port.</summary>
    private Task<(int ExitCode, string Stdout, string Stderr)> JoinToRunAsync()
    {
        var listen = $"https://127.0.0.1:{SluiceProcess.FreePort()}";
        return JoinAsync("--listen", listen, "--advertise", listen);
    }

    private static TaskSpec CanarySpec() => new()
    {
        TaskId = "t1",
        Generation = 1,
        Kind = TaskKinds.ModelServer,
        Runtime = TaskRuntimes.Process,
        Process = new ProcessRuntimeSpec
        {
            Command = "/opt/CANARY-command",
            Args = ["--api-key", "CANARY-arg"],
            Environment = new Dictionary<string, string> { ["HF_TOKEN"] = "CANARY-env" },
        },
        Secrets = new Dictionary<string, string> { ["UPSTREAM_TOKEN"] = "CANARY-secret" },
    };

    [Fact]
    public async Task Join_sends_the_inventory_and_writes_an_owner_only_identity_holding_only_the_serving_tokens_hash()
    {
        var (code, stdout, stderr) = await JoinAsync("--advertise", "https://10.1.2.3:9443", "--label", "zone=eu-1", "--label", "tier=a");

        Assert.True(code == 0, stderr);
        Assert.Contains($"as machine {_server.MachineId}", stdout, StringComparison.Ordinal);
        var join = Assert.Single(_server.Joins);
        Assert.Equal(_joinToken, join.Token);
        Assert.Equal(8, join.Inventory.Gpus.Count);
        Assert.All(join.Inventory.Gpus, g => Assert.Equal("NVIDIA H100 80GB HBM3", g.Name));
        Assert.Equal(("550.54.15", "12.4"), (join.Inventory.DriverVersion, join.Inventory.CudaVersion));
        Assert.True(join.Inventory.CpuCores > 0 && join.Inventory.MemoryBytes > 0 && join.Inventory.DiskBytes > 0);
        Assert.False(join.Inventory.DockerAvailable);
        Assert.Equal("https://10.1.2.3:9443", join.ServingUrl);
        Assert.Equal(new Dictionary<string, string> { ["zone"] = "eu-1", ["tier"] = "a" }, join.Labels);
        Assert.Equal(ControlClientVersion(), join.AgentVersion);

        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute, File.GetUnixFileMode(DataDir));
        foreach (var file in Directory.GetFiles(DataDir))
        {
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(file));
        }

        var identity = AgentDataDirectory.Read(DataDir);
        Assert.Equal((_server.MachineId, _server.Credential), (identity.MachineId, identity.Credential));
        Assert.Equal(Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(_server.ServingToken))), identity.ServingTokenSha256);
        Assert.Equal(("https://0.0.0.0:8443", "https://10.1.2.3:9443"), (identity.ServingListenUrl, identity.ServingUrl));
        using var certificate = ServingCertificate.Load(DataDir, identity);
        Assert.True(certificate.HasPrivateKey);
        Assert.Equal(join.CertificateSha256, ServingCertificate.Fingerprint(certificate));
        Assert.Equal(join.CertificateSha256, identity.CertificateSha256);
        Assert.Contains(System.Net.IPAddress.Parse("10.1.2.3"), certificate.Extensions.OfType<X509SubjectAlternativeNameExtension>().Single().EnumerateIPAddresses());

        var files = await Canary.DumpDirectoryAsync(DataDir);
        Canary.AssertAbsent(files, _server.ServingToken, "the data directory");
        Canary.AssertAbsent(files, _joinToken, "the data directory");
        foreach (var secret in new[] { _server.Credential, _server.ServingToken, _joinToken })
        {
            Canary.AssertAbsent(stdout + stderr, secret, "join's output");
        }
    }

    [Fact]
    public async Task A_refused_join_prints_the_servers_detail_and_writes_nothing()
    {
        _server.RefuseJoin = (401, "The join token was already used.");

        var (code, stdout, stderr) = await JoinAsync();

        Assert.Equal(1, code);
        Assert.Equal("error: the server refused the join: The join token was already used.", stderr.Trim());
        Assert.Empty(stdout);
        Assert.False(Directory.Exists(DataDir));
        Assert.Single(_server.Joins);
    }

    [Fact]
    public async Task An_unreachable_server_is_a_clear_error_and_writes_nothing()
    {
        var port = SluiceProcess.FreePort();

        var (code, _, stderr) = await SluiceProcess.RunAsync(["agent", "join", "--server", $"http://127.0.0.1:{port}", "--token", _joinToken, "--data-dir", DataDir], Environment);

        Assert.Equal(1, code);
        Assert.Equal($"error: could not join through http://127.0.0.1:{port}: the server refused or dropped the connection", stderr.Trim());
        Assert.False(Directory.Exists(DataDir));
    }

    [Fact]
    public async Task Joining_again_over_an_identity_needs_force()
    {
        Assert.Equal(0, (await JoinAsync()).ExitCode);
        var before = await File.ReadAllBytesAsync(AgentDataDirectory.IdentityPath(DataDir));

        var (code, _, stderr) = await JoinAsync();
        Assert.Equal(1, code);
        Assert.Contains("already joined", stderr, StringComparison.Ordinal);
        Assert.Contains("--force", stderr, StringComparison.Ordinal);
        Assert.Equal(before, await File.ReadAllBytesAsync(AgentDataDirectory.IdentityPath(DataDir)));
        Assert.Single(_server.Joins); // refused before asking the server: the token is not spent

        var forced = await JoinAsync("--force");
        Assert.True(forced.ExitCode == 0, forced.Stderr);
        Assert.Equal(2, _server.Joins.Count);
        Assert.NotEqual(_server.Joins.First().CertificateSha256, AgentDataDirectory.Read(DataDir).CertificateSha256); // a new certificate
        Assert.Equal(_server.Joins.Last().CertificateSha256, AgentDataDirectory.Read(DataDir).CertificateSha256);
    }

    [Theory]
    [InlineData("--server", "http://10.0.0.1:8080", "uses plain http:// to a host that is not loopback")]
    [InlineData("--server", "http://sluice.example.com", "must use https://")]
    [InlineData("--server", "ftp://sluice.example.com", "must be an absolute https:// URL")]
    [InlineData("--server", "sluice.example.com", "must be an absolute https:// URL")]
    [InlineData("--listen", "http://0.0.0.0:8443", "--listen must be https://ADDRESS:PORT")]
    [InlineData("--advertise", "https://0.0.0.0:8443", "--advertise must be https://HOST:PORT")]
    [InlineData("--label", "=x", "--label expects key=value")]
    [InlineData("--label", "zone", "--label expects key=value")]
    [InlineData("--label", "Zone=eu-1", "a label key must be 1-63 characters of a-z")] // the server's rule, checked before the token is spent
    [InlineData("--token", "two words", "--token must be the join token")]
    public async Task Bad_arguments_are_refused_before_anything_is_sent_or_written(string option, string value, string expected)
    {
        var arguments = new List<string> { "agent", "join", "--server", _server.Url.ToString(), "--token", _joinToken, "--data-dir", DataDir };
        var at = arguments.IndexOf(option);
        if (at >= 0)
        {
            arguments[at + 1] = value;
        }
        else
        {
            arguments.AddRange([option, value]);
        }

        var (code, _, stderr) = await SluiceProcess.RunAsync(arguments, Environment);

        Assert.Equal(2, code);
        Assert.StartsWith("error: ", stderr, StringComparison.Ordinal);
        Assert.Contains(expected, stderr, StringComparison.Ordinal);
        Assert.Empty(_server.Joins);
        Assert.False(Directory.Exists(DataDir));
    }

    [Fact]
    public async Task Run_heartbeats_with_inventory_hands_the_task_set_to_the_supervisor_rides_out_server_errors_and_stops_on_SIGTERM()
    {
        Assert.Equal(0, (await JoinToRunAsync()).ExitCode);
        _server.DesiredTasks = [CanarySpec()];

        await using var agent = SluiceProcess.Start(["agent", "run", "--data-dir", DataDir, "--log-level", "Trace"], Environment);
        await Eventually.TrueAsync(() => _server.Heartbeats.Count >= 2, "two heartbeats", TimeSpan.FromSeconds(30));
        await agent.WaitForOutputAsync("desired task set changed: 1 tasks (t1@1)", TimeSpan.FromSeconds(10));
        // The supervisor got the task and ran it: its command does not exist, so it is reported failed.
        await Eventually.TrueAsync(
            () => _server.Heartbeats.Any(h => h.Tasks.Any(t => t.TaskId == "t1" && t.State == TaskStates.Terminated && t.Reason == TaskReasons.Failed)),
            "the task reported failed",
            TimeSpan.FromSeconds(30));

        var beats = _server.Heartbeats.ToArray();
        Assert.Equal(8, beats[0].Inventory!.Gpus.Count);
        Assert.Equal(8, beats[0].Telemetry.Gpus.Count);
        Assert.Null(beats[1].Inventory);
        Assert.Equal(1, beats[0].Sequence);

        _server.FailNextHeartbeats(503, 503);
        var accepted = _server.Heartbeats.Count;
        await Eventually.TrueAsync(() => _server.Failed.Count == 2 && _server.Heartbeats.Count > accepted, "heartbeats to resume after two 503s", TimeSpan.FromSeconds(30));
        await agent.WaitForOutputAsync("The server answers again after 2 failed heartbeats", TimeSpan.FromSeconds(10));

        agent.SendSignal(Signals.Terminate);
        Assert.Equal(0, await agent.WaitForExitAsync(TimeSpan.FromSeconds(30)));
        Assert.Contains("Stopping: every task is being stopped", agent.Stdout, StringComparison.Ordinal);

        var output = agent.Stdout + agent.Stderr;
        foreach (var secret in new[] { _server.Credential, _server.ServingToken, _joinToken, "CANARY-command", "CANARY-arg", "CANARY-env", "CANARY-secret" })
        {
            Canary.AssertAbsent(output, secret, "the agent's output");
        }
    }

    [Fact]
    public async Task Run_keeps_going_while_the_server_is_down_and_reconnects_when_it_is_back()
    {
        Assert.Equal(0, (await JoinToRunAsync()).ExitCode);
        await using var agent = SluiceProcess.Start(["agent", "run", "--data-dir", DataDir], Environment);
        await Eventually.TrueAsync(() => !_server.Heartbeats.IsEmpty, "a heartbeat", TimeSpan.FromSeconds(30));

        await _server.DisposeAsync(); // the control plane goes away: connections are refused
        await Eventually.TrueAsync(
            () => agent.Stdout.Split('\n').Count(l => l.Contains("the server refused or dropped the connection", StringComparison.Ordinal)) >= 2,
            "two refused heartbeats",
            TimeSpan.FromSeconds(30));
        await using var back = await FakeControlServer.StartAsync(takeOver: _server);
        await Eventually.TrueAsync(() => !back.Heartbeats.IsEmpty, "a heartbeat to the server that came back", TimeSpan.FromSeconds(30));

        Assert.True(back.Heartbeats.First().Sequence > 3, "the same agent process carried on through the outage");
        Assert.True(agent.Stdout.Split('\n').Count(l => l.Contains("tasks keep running", StringComparison.Ordinal)) >= 2);
        await agent.WaitForOutputAsync("The server answers again after", TimeSpan.FromSeconds(10));
        agent.SendSignal(Signals.Terminate);
        Assert.Equal(0, await agent.WaitForExitAsync(TimeSpan.FromSeconds(30)));
    }

    [Theory]
    [InlineData(401, "error: the server no longer accepts this machine's credential (The machine's credential was revoked.)")]
    [InlineData(410, "error: this machine was decommissioned (The machine was decommissioned.)")]
    public async Task Run_stops_its_tasks_and_exits_1_when_the_machine_is_revoked_or_decommissioned(int status, string expected)
    {
        Assert.Equal(0, (await JoinToRunAsync()).ExitCode);
        await using var agent = SluiceProcess.Start(["agent", "run", "--data-dir", DataDir], Environment);
        await Eventually.TrueAsync(() => !_server.Heartbeats.IsEmpty, "a heartbeat", TimeSpan.FromSeconds(30));

        _server.AlwaysAnswer = status;

        Assert.Equal(1, await agent.WaitForExitAsync(TimeSpan.FromSeconds(30)));
        Assert.StartsWith(expected, agent.Stderr, StringComparison.Ordinal);
        Assert.Contains("Stopping: every task is being stopped", agent.Stdout, StringComparison.Ordinal);
        Canary.AssertAbsent(agent.Stdout + agent.Stderr, _server.Credential, "the agent's output");
    }

    [Fact]
    public async Task The_join_token_can_come_from_the_environment_and_is_required()
    {
        var withoutToken = new[] { "agent", "join", "--server", _server.Url.ToString(), "--data-dir", DataDir };

        var missing = await SluiceProcess.RunAsync(withoutToken, Environment);
        Assert.Equal(2, missing.ExitCode);
        Assert.Contains("a join token is required", missing.Stderr, StringComparison.Ordinal);
        Assert.Empty(_server.Joins);

        var fromEnvironment = await SluiceProcess.RunAsync(withoutToken, new Dictionary<string, string?>(Environment) { ["SLUICE_AGENT_JOIN_TOKEN"] = _joinToken });
        Assert.True(fromEnvironment.ExitCode == 0, fromEnvironment.Stderr);
        Assert.Equal(_joinToken, Assert.Single(_server.Joins).Token);
    }

    [Fact]
    public async Task Run_and_status_without_a_join_say_so()
    {
        var run = await SluiceProcess.RunAsync(["agent", "run", "--data-dir", DataDir], Environment);
        var status = await SluiceProcess.RunAsync(["agent", "status", "--data-dir", DataDir], Environment);

        Assert.Equal((1, 1), (run.ExitCode, status.ExitCode));
        Assert.StartsWith("error: this machine has not joined", run.Stderr, StringComparison.Ordinal);
        Assert.StartsWith("error: this machine has not joined", status.Stderr, StringComparison.Ordinal);
        Assert.False(Directory.Exists(DataDir));
    }

    [Fact]
    public async Task Status_shows_the_identity_without_the_credential_and_the_data_dir_comes_from_the_environment()
    {
        var environment = new Dictionary<string, string?>(Environment) { [AgentDataDirectory.EnvironmentVariable] = DataDir };
        var join = await SluiceProcess.RunAsync(["agent", "join", "--server", _server.Url.ToString(), "--token", _joinToken, "--advertise", "https://gpu-1.example.com:8443"], environment);
        Assert.True(join.ExitCode == 0, join.Stderr);

        var (code, stdout, _) = await SluiceProcess.RunAsync(["agent", "status"], environment);

        Assert.Equal(0, code);
        Assert.Contains(_server.MachineId, stdout, StringComparison.Ordinal);
        Assert.Contains("https://gpu-1.example.com:8443", stdout, StringComparison.Ordinal);
        Assert.Contains(_server.Url.ToString().TrimEnd('/'), stdout, StringComparison.Ordinal);
        Assert.Contains(DataDir, stdout, StringComparison.Ordinal);
        Canary.AssertAbsent(stdout, _server.Credential, "status");
    }

    private static string ControlClientVersion() => ControlClient.AgentVersion;
}
