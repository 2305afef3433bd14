using System.Collections.Concurrent;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using Sluice.Compute.Protocol;

namespace Sluice.Tests.Agent;

/// <summary>
/// A stand-in for the server's agent endpoints on 127.0.0.1 (the real ones are built on another branch): join and
/// heartbeat in <see cref="ComputeJson"/>'s shapes, refusals as ProblemDetails, and whatever a test scripts.
/// </summary>
public sealed class FakeControlServer : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly ConcurrentQueue<int> _heartbeatStatuses = new();

    private FakeControlServer(WebApplication app, FakeControlServer? takeOver)
    {
        _app = app;
        MachineId = takeOver?.MachineId ?? "mch_" + Guid.NewGuid().ToString("N")[..16];
        Credential = takeOver?.Credential ?? "smc_CANARY" + Guid.NewGuid().ToString("N");
        ServingToken = takeOver?.ServingToken ?? "sst_CANARY" + Guid.NewGuid().ToString("N");
    }

    public Uri Url { get; private set; } = null!;

    public string MachineId { get; }

    /// <summary>Distinct values a canary scan can look for.</summary>
    public string Credential { get; }

    public string ServingToken { get; }

    public int HeartbeatIntervalSeconds { get; set; } = 1;

    public string MachineState { get; set; } = MachineStates.Ready;

    /// <summary>When set, joins are refused with this status and ProblemDetails detail.</summary>
    public (int Status, string Detail)? RefuseJoin { get; set; }

    public IReadOnlyList<TaskSpec> DesiredTasks { get; set; } = [];

    public ConcurrentQueue<JoinRequest> Joins { get; } = new();

    public ConcurrentQueue<HeartbeatRequest> Heartbeats { get; } = new();

    /// <summary>Heartbeats that were answered with a failure (their status).</summary>
    public ConcurrentQueue<int> Failed { get; } = new();

    /// <summary>The next heartbeats are answered with these statuses (ProblemDetails), in order, before normal service resumes.</summary>
    public void FailNextHeartbeats(params int[] statuses)
    {
        foreach (var status in statuses)
        {
            _heartbeatStatuses.Enqueue(status);
        }
    }

    /// <summary>From now on every heartbeat is answered with this status (401 revoked, 410 decommissioned).</summary>
    public int? AlwaysAnswer { get; set; }

    /// <summary>
    /// Starts on a free port, or on <paramref name="takeOver"/>'s port (after it was stopped) knowing its machine and
    /// credential: the same server coming back after an outage.
    /// </summary>
    public static async Task<FakeControlServer> StartAsync(FakeControlServer? takeOver = null)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseUrls(takeOver is null ? "http://127.0.0.1:0" : $"http://127.0.0.1:{takeOver.Url.Port}");
        var app = builder.Build();
        var fake = new FakeControlServer(app, takeOver);
        app.MapPost(AgentPaths.Join, fake.JoinAsync);
        app.MapPost(AgentPaths.Heartbeat, fake.HeartbeatAsync);
        await app.StartAsync();
        fake.Url = new Uri(app.Urls.First());
        return fake;
    }

    private async Task JoinAsync(HttpContext context)
    {
        var request = await JsonSerializer.DeserializeAsync(context.Request.Body, ComputeJson.Default.JoinRequest);
        Joins.Enqueue(request!);
        if (RefuseJoin is { } refusal)
        {
            await ProblemAsync(context, refusal.Status, refusal.Detail);
            return;
        }

        await Results.Json(new JoinResponse
        {
            MachineId = MachineId,
            Credential = Credential,
            ServingToken = ServingToken,
            HeartbeatIntervalSeconds = HeartbeatIntervalSeconds,
        }, ComputeJson.Default.JoinResponse).ExecuteAsync(context);
    }

    private async Task HeartbeatAsync(HttpContext context)
    {
        var request = await JsonSerializer.DeserializeAsync(context.Request.Body, ComputeJson.Default.HeartbeatRequest);
        if (context.Request.Headers.Authorization.ToString() != $"Bearer {Credential}")
        {
            Failed.Enqueue(401);
            await ProblemAsync(context, 401, "The machine credential is not valid.");
            return;
        }

        if (AlwaysAnswer is { } always || _heartbeatStatuses.TryDequeue(out always))
        {
            Failed.Enqueue(always);
            await ProblemAsync(context, always, always switch
            {
                401 => "The machine's credential was revoked.",
                410 => "The machine was decommissioned.",
                _ => "The control plane is unavailable.",
            });
            return;
        }

        Heartbeats.Enqueue(request!);
        await Results.Json(new HeartbeatResponse
        {
            MachineState = MachineState,
            Tasks = DesiredTasks,
            HeartbeatIntervalSeconds = HeartbeatIntervalSeconds,
        }, ComputeJson.Default.HeartbeatResponse).ExecuteAsync(context);
    }

    private static Task ProblemAsync(HttpContext context, int status, string detail) =>
        Results.Problem(detail: detail, statusCode: status).ExecuteAsync(context);

    private bool _disposed;

    public async ValueTask DisposeAsync()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        await _app.StopAsync();
        await _app.DisposeAsync();
    }
}
