using System.Diagnostics;
using System.Net;
using System.Text;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using Sluice.Deployments;
using Sluice.Storage;
using Sluice.Tests.TestSupport;
using static Sluice.Tests.TestSupport.GatewayKit;

namespace Sluice.Tests.Deployments.Routing;

/// <summary>Issue 17, item 5: a request for a deployment with no ready replica waits in a bounded queue while one starts.</summary>
public sealed class ColdStartQueueTests
{
    [Theory]
    [InlineData(DatabaseProvider.Sqlite)]
    [InlineData(DatabaseProvider.Postgres)]
    public async Task A_request_at_zero_wakes_the_deployment_once_waits_and_succeeds_when_a_replica_is_ready(DatabaseProvider provider)
    {
        await using var kit = await DeploymentRoutingKit.StartAsync(provider);
        var engine = await kit.EngineAsync();
        var (machine, tasks) = await kit.MachineAsync();
        var deployment = await kit.DeploymentAsync("serverless", status: DeploymentStatuses.ScaledToZero, desired: 0, min: 0);
        await kit.RefreshAsync();

        var first = kit.Client.PostAsync("/v1/chat/completions", Chat("serverless", "wake up"));
        var second = kit.Client.PostAsync("/v1/chat/completions", Chat("serverless", "me too"));
        await Eventually.TrueAsync(() => kit.Load.Waiting(deployment) == 2, "two requests waiting in the queue");
        await Eventually.TrueAsync(async () => (await kit.ReadDeploymentAsync(deployment)).DesiredReplicas == 1, "the wake from zero");
        var woken = await kit.ReadDeploymentAsync(deployment);
        Assert.Equal(DeploymentStatuses.Pending, woken.Status);
        Assert.False(first.IsCompleted || second.IsCompleted);

        // The scheduler's part, done by hand: a replica placed for the waiting requests becomes ready.
        var startedAt = DateTimeOffset.UtcNow;
        await kit.ReplicaAsync(deployment, machine, tasks, engine, coldStart: true, createdAt: startedAt, readyAt: startedAt.AddSeconds(2));
        Assert.Equal(HttpStatusCode.OK, (await first.WaitAsync(TimeSpan.FromSeconds(10))).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await second.WaitAsync(TimeSpan.FromSeconds(10))).StatusCode);
        Assert.Equal(0, kit.Load.Waiting(deployment));

        var coldStarts = (await kit.EventsAsync(deployment)).Where(e => e.Kind == DeploymentEventKinds.ColdStart).ToList();
        Assert.Single(coldStarts);
        var usage = await UsageAsync(kit.Database, 2);
        Assert.All(usage, u =>
        {
            Assert.Equal(200, u.Status);
            Assert.True(u.ColdStart);
            Assert.Equal(deployment, u.DeploymentId);
            Assert.True(u.QueueWaitMicros > 0, $"queue wait {u.QueueWaitMicros}");
            Assert.True(u.QueueWaitMicros < u.LatencyMicros, "the wait is part of the latency");
        });

        // The replica is ready now: the next request meets no cold start.
        Assert.Equal(HttpStatusCode.OK, (await kit.Client.PostAsync("/v1/chat/completions", Chat("serverless", "warm"))).StatusCode);
        var warm = (await UsageAsync(kit.Database, 3)).Last();
        Assert.False(warm.ColdStart);
        Assert.Equal(0, warm.QueueWaitMicros);
    }

    [Fact]
    public async Task A_waiting_streaming_client_gets_sse_comments_then_the_answer()
    {
        await using var kit = await DeploymentRoutingKit.StartAsync(DatabaseProvider.Sqlite);
        var engine = await kit.EngineAsync();
        var (machine, tasks) = await kit.MachineAsync();
        var deployment = await kit.DeploymentAsync("streamer", status: DeploymentStatuses.ScaledToZero, desired: 0, min: 0);
        await kit.RefreshAsync();

        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions") { Content = Chat("streamer", "hi", stream: true) };
        using var response = await kit.Client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, TestContext.Current.CancellationToken);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("text/event-stream", response.Content.Headers.ContentType?.MediaType);
        await using var body = await response.Content.ReadAsStreamAsync(TestContext.Current.CancellationToken);
        var seen = new StringBuilder();
        var buffer = new byte[4096];
        while (CountOf(seen.ToString(), ": waiting for a replica to start\n\n") < 2)
        {
            var read = await body.ReadAsync(buffer, TestContext.Current.CancellationToken).AsTask().WaitAsync(TimeSpan.FromSeconds(10));
            Assert.True(read > 0, "the stream ended while waiting");
            seen.Append(Encoding.UTF8.GetString(buffer, 0, read));
        }

        await kit.ReplicaAsync(deployment, machine, tasks, engine, coldStart: true);
        using var reader = new StreamReader(body);
        seen.Append(await reader.ReadToEndAsync(TestContext.Current.CancellationToken).WaitAsync(TimeSpan.FromSeconds(10)));
        var text = seen.ToString();
        Assert.StartsWith(": waiting for a replica to start\n\n", text, StringComparison.Ordinal);
        var events = Events(text);
        Assert.Equal(5, events.Count(e => e.Contains("chat.completion.chunk", StringComparison.Ordinal)));
        Assert.Equal("[DONE]", events[^1]);
        var usage = Assert.Single(await UsageAsync(kit.Database, 1));
        Assert.Equal(200, usage.Status);
        Assert.True(usage.ColdStart);
    }

    [Fact]
    public async Task Beyond_the_queue_bound_a_request_gets_503_with_retry_after_in_openai_shape()
    {
        await using var kit = await DeploymentRoutingKit.StartAsync(DatabaseProvider.Sqlite, new() { ["Deployments:Routing:QueueCapacity"] = "2" });
        var deployment = await kit.DeploymentAsync("tiny-queue", status: DeploymentStatuses.ScaledToZero, desired: 0, min: 0);
        await kit.RefreshAsync();
        using var leave = new CancellationTokenSource();
        var waiting = new[]
        {
            kit.Client.PostAsync("/v1/chat/completions", Chat("tiny-queue", "1"), leave.Token),
            kit.Client.PostAsync("/v1/chat/completions", Chat("tiny-queue", "2"), leave.Token),
        };
        await Eventually.TrueAsync(() => kit.Load.Waiting(deployment) == 2, "two requests waiting");

        var refused = await kit.Client.PostAsync("/v1/chat/completions", Chat("tiny-queue", "3"));
        Assert.Equal(HttpStatusCode.ServiceUnavailable, refused.StatusCode);
        Assert.Equal("5", refused.Headers.GetValues("Retry-After").Single());
        var error = await DeploymentRoutingKit.ErrorAsync(refused);
        Assert.Equal("deployment_queue_full", error.GetProperty("code").GetString());
        Assert.Equal("server_error", error.GetProperty("type").GetString());
        Assert.Contains("tiny-queue", error.GetProperty("message").GetString(), StringComparison.Ordinal);
        Assert.Equal(2, kit.Load.Waiting(deployment));

        await leave.CancelAsync();
        await Task.WhenAll(waiting.Select(w => w.ContinueWith(_ => { }, TaskScheduler.Default)));
        await Eventually.TrueAsync(() => kit.Load.Waiting(deployment) == 0, "the waiting clients left the queue");
    }

    [Fact]
    public async Task A_wait_that_runs_out_is_a_503_with_retry_after_and_a_streaming_client_gets_an_error_event()
    {
        await using var kit = await DeploymentRoutingKit.StartAsync(DatabaseProvider.Sqlite, new()
        {
            ["Deployments:Routing:QueueTimeout"] = "00:00:00.800",
            ["Deployments:Routing:KeepAliveInterval"] = "00:00:00.100",
        });
        var deployment = await kit.DeploymentAsync("never-ready", status: DeploymentStatuses.Pending, desired: 1);
        await kit.RefreshAsync();

        var plain = await kit.Client.PostAsync("/v1/chat/completions", Chat("never-ready", "hi"));
        Assert.Equal(HttpStatusCode.ServiceUnavailable, plain.StatusCode);
        Assert.Equal("30", plain.Headers.GetValues("Retry-After").Single());
        var error = await DeploymentRoutingKit.ErrorAsync(plain);
        Assert.Equal("deployment_not_ready", error.GetProperty("code").GetString());
        Assert.Contains("did not become ready in time", error.GetProperty("message").GetString(), StringComparison.Ordinal);

        var stream = await kit.Client.PostAsync("/v1/chat/completions", Chat("never-ready", "hi", stream: true));
        Assert.Equal(HttpStatusCode.OK, stream.StatusCode); // committed for the keep-alive comments
        var text = await stream.Content.ReadAsStringAsync();
        Assert.StartsWith(": waiting for a replica to start\n\n", text, StringComparison.Ordinal);
        var last = Events(text)[^1];
        Assert.Contains("\"code\":\"deployment_not_ready\"", last, StringComparison.Ordinal);
        Assert.Contains("\"type\":\"server_error\"", last, StringComparison.Ordinal);

        var usage = await UsageAsync(kit.Database, 2);
        Assert.All(usage, u =>
        {
            Assert.Equal(503, u.Status);
            Assert.Equal("deployment_not_ready", u.ErrorType);
            Assert.True(u.ColdStart);
            Assert.True(u.QueueWaitMicros >= 700_000, $"queue wait {u.QueueWaitMicros}");
        });
        Assert.Equal(0, kit.Load.Waiting(deployment));
        Assert.Empty(await kit.EventsAsync(deployment)); // desired was already 1: nothing to wake
    }

    [Fact]
    public async Task A_deployment_that_failed_to_start_answers_503_at_once_saying_so_and_waiters_are_released()
    {
        await using var kit = await DeploymentRoutingKit.StartAsync(DatabaseProvider.Sqlite, new() { ["Deployments:Routing:QueueTimeout"] = "00:05:00" });
        await kit.DeploymentAsync("broken", status: DeploymentStatuses.Failed, reason: "the engine exited with code 1 three times");
        await kit.DeploymentAsync("unpaid", status: DeploymentStatuses.Suspended, desired: 0);
        var later = await kit.DeploymentAsync("fails-later", status: DeploymentStatuses.Pending, desired: 1);
        await kit.RefreshAsync();

        var clock = Stopwatch.StartNew();
        var failed = await kit.Client.PostAsync("/v1/chat/completions", Chat("broken", "hi"));
        Assert.Equal(HttpStatusCode.ServiceUnavailable, failed.StatusCode);
        var error = await DeploymentRoutingKit.ErrorAsync(failed);
        Assert.Equal("deployment_failed", error.GetProperty("code").GetString());
        Assert.Equal("The deployment 'broken' failed to start: the engine exited with code 1 three times. Fix the deployment and update it to try again.",
            error.GetProperty("message").GetString());

        var suspended = await kit.Client.PostAsync("/v1/chat/completions", Chat("unpaid", "hi", stream: true));
        Assert.Equal(HttpStatusCode.ServiceUnavailable, suspended.StatusCode);
        Assert.Equal("deployment_suspended", (await DeploymentRoutingKit.ErrorAsync(suspended)).GetProperty("code").GetString());
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(5), $"answered in {clock.Elapsed}");

        // A request already waiting is answered as soon as the directory sees the deployment fail.
        var waiting = kit.Client.PostAsync("/v1/chat/completions", Chat("fails-later", "hi"));
        await Eventually.TrueAsync(() => kit.Load.Waiting(later) == 1, "the request waiting");
        await kit.Database.ExecuteAsync($"UPDATE deployments SET status = 'failed', status_reason = 'no machine has the artifact' WHERE name = 'fails-later'");
        var released = await waiting.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal(HttpStatusCode.ServiceUnavailable, released.StatusCode);
        Assert.Contains("no machine has the artifact", (await DeploymentRoutingKit.ErrorAsync(released)).GetProperty("message").GetString(), StringComparison.Ordinal);

        // Being deleted: gone, like any unknown model.
        await kit.Database.ExecuteAsync($"UPDATE deployments SET status = 'deleting' WHERE name = 'broken'");
        await kit.RefreshAsync();
        var deleted = await kit.Client.PostAsync("/v1/chat/completions", Chat("broken", "hi"));
        Assert.Equal(HttpStatusCode.NotFound, deleted.StatusCode);
        Assert.Equal("model_not_found", (await DeploymentRoutingKit.ErrorAsync(deleted)).GetProperty("code").GetString());
    }

    private static int CountOf(string text, string part)
    {
        var count = 0;
        for (var at = text.IndexOf(part, StringComparison.Ordinal); at >= 0; at = text.IndexOf(part, at + part.Length, StringComparison.Ordinal))
        {
            count++;
        }

        return count;
    }
}

/// <summary>The wake from zero is one conditional update: servers waking one deployment at once record one cold start.</summary>
public sealed class ColdStartWakeTests
{
    [Theory]
    [InlineData(DatabaseProvider.Sqlite)]
    [InlineData(DatabaseProvider.Postgres)]
    public async Task Servers_waking_one_deployment_at_once_set_one_replica_and_record_one_cold_start(DatabaseProvider provider)
    {
        await using var kit = await DeploymentRoutingKit.StartAsync(provider);
        var id = await kit.DeploymentAsync("contended", status: DeploymentStatuses.ScaledToZero, desired: 0, min: 0);
        var deployment = await kit.ReadDeploymentAsync(id);
        var services = kit.Sluice.Services;

        // Eight servers' worth of waking (each its own ColdStarts, so nothing is shared in memory), all at once.
        var wakers = Enumerable.Range(0, 8).Select(_ => new Sluice.Deployments.Routing.ColdStarts(
            services.GetRequiredService<IServiceScopeFactory>(), services.GetRequiredService<IDeploymentBilling>(), TimeProvider.System,
            NullLogger<Sluice.Deployments.Routing.ColdStarts>.Instance)).ToList();
        await Task.WhenAll(wakers.Select(w => w.WakeAsync(deployment, 1, TestContext.Current.CancellationToken)));

        var woken = await kit.ReadDeploymentAsync(id);
        Assert.Equal((1, DeploymentStatuses.Pending), (woken.DesiredReplicas, woken.Status));
        Assert.Single(await kit.EventsAsync(id), e => e.Kind == DeploymentEventKinds.ColdStart);

        // Not at zero any more (or failed, suspended): a wake changes nothing.
        await Task.WhenAll(wakers.Select(w => w.WakeAsync(deployment, 1, TestContext.Current.CancellationToken)));
        await kit.Database.ExecuteAsync("UPDATE deployments SET desired_replicas = 0, status = 'failed' WHERE name = 'contended'");
        await new Sluice.Deployments.Routing.ColdStarts(services.GetRequiredService<IServiceScopeFactory>(), services.GetRequiredService<IDeploymentBilling>(),
            TimeProvider.System, NullLogger<Sluice.Deployments.Routing.ColdStarts>.Instance).WakeAsync(deployment, 1, TestContext.Current.CancellationToken);
        Assert.Equal(0, (await kit.ReadDeploymentAsync(id)).DesiredReplicas);
        Assert.Single(await kit.EventsAsync(id), e => e.Kind == DeploymentEventKinds.ColdStart);
    }

    [Fact]
    public async Task A_deployment_at_zero_that_the_wallet_cannot_cover_is_refused_402_and_not_woken()
    {
        await using var kit = await DeploymentRoutingKit.StartAsync(DatabaseProvider.Sqlite, configure: services =>
            services.AddSingleton<IDeploymentBilling>(new RefusingBilling()));
        var id = await kit.DeploymentAsync("unfunded", status: DeploymentStatuses.ScaledToZero, desired: 0, min: 0);
        await kit.RefreshAsync();

        var refused = await kit.Client.PostAsync("/v1/chat/completions", Chat("unfunded", "hi"));
        Assert.Equal(HttpStatusCode.PaymentRequired, refused.StatusCode);
        var error = await DeploymentRoutingKit.ErrorAsync(refused);
        Assert.Equal("deployment_not_covered", error.GetProperty("code").GetString());
        Assert.Contains("the wallet covers 0 replicas of this deployment", error.GetProperty("message").GetString(), StringComparison.Ordinal);
        Assert.Equal(0, (await kit.ReadDeploymentAsync(id)).DesiredReplicas);
        var events = await kit.EventsAsync(id);
        Assert.Equal([DeploymentEventKinds.ScaleUpRefused], events.Select(e => e.Kind).ToArray());
        Assert.Equal(0, kit.Load.Waiting(id));
    }

    private sealed class RefusingBilling : IDeploymentBilling
    {
        public ValueTask<(bool Covered, string? Refusal)> CanRunAsync(Deployment deployment, int replicas, CancellationToken cancellationToken) =>
            ValueTask.FromResult<(bool, string?)>((false, "the wallet covers 0 replicas of this deployment"));
    }
}
