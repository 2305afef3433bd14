using System.Net;
using System.Text;
using System.Text.Json.Nodes;
using Sluice.Agent.Serving;
using Sluice.Tests.TestSupport;

namespace Sluice.Tests.Agent.Serving;

public sealed class AgentServingEndpointTests
{
    [Fact]
    public async Task A_missing_or_wrong_serving_token_is_refused_with_401_and_reaches_no_task()
    {
        await using var engine = await EngineStandIn.StartAsync();
        var supervisor = new StubSupervisor();
        supervisor.Ready["t"] = engine.Port;
        await using var kit = await ServingKit.StartAsync(supervisor);

        foreach (var authorization in new string?[] { null, "Bearer wrong", "Bearer " + kit.Token + "x", "Basic " + kit.Token, kit.Token, "Bearer " })
        {
            using var response = await kit.RawAsync("/tasks/t/v1/models", authorization);
            Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
            Assert.Equal("authentication_error", JsonNode.Parse(await response.Content.ReadAsStringAsync(TestContext.Current.CancellationToken))!["error"]!["type"]!.GetValue<string>());
            Assert.Equal("Bearer", response.Headers.WwwAuthenticate.Single().Scheme);
        }

        Assert.Empty(engine.Requests);
        using var ok = await kit.RawAsync("/tasks/t/v1/models", "Bearer " + kit.Token);
        Assert.Equal(HttpStatusCode.OK, ok.StatusCode);
    }

    [Fact]
    public async Task A_wake_with_the_serving_token_makes_the_agent_heartbeat_now_and_one_without_it_is_refused()
    {
        var woken = 0;
        await using var kit = await ServingKit.StartAsync(new StubSupervisor(), options: new AgentServingOptions { Wake = () => Interlocked.Increment(ref woken) });

        using var refused = await kit.RawAsync(Sluice.Compute.Protocol.AgentPaths.Wake, "Bearer wrong", HttpMethod.Post);
        Assert.Equal(HttpStatusCode.Unauthorized, refused.StatusCode);
        using var get = await kit.RawAsync(Sluice.Compute.Protocol.AgentPaths.Wake, "Bearer " + kit.Token);
        Assert.Equal(HttpStatusCode.NotFound, get.StatusCode);
        Assert.Equal(0, woken);

        // As the server sends it: through the pinned transport, which adds the token.
        using var request = new HttpRequestMessage(HttpMethod.Post, Sluice.Compute.Serving.MachineTransportPaths.WakeUri(kit.Machine));
        using var accepted = await kit.Transport.Invoker(kit.Machine).SendAsync(request, TestContext.Current.CancellationToken);
        Assert.Equal(HttpStatusCode.NoContent, accepted.StatusCode);
        Assert.Equal(1, woken);
    }

    [Fact]
    public async Task Requests_reach_a_ready_task_on_loopback_with_path_query_body_and_headers_but_not_the_serving_token()
    {
        await using var engine = await EngineStandIn.StartAsync();
        var supervisor = new StubSupervisor();
        supervisor.Ready["t1"] = engine.Port;
        await using var kit = await ServingKit.StartAsync(supervisor);
        var prompt = "prompt-canary-" + Guid.NewGuid().ToString("N");

        using var content = new StringContent($"{{\"model\":\"m\",\"messages\":[{{\"role\":\"user\",\"content\":\"{prompt}\"}}]}}", Encoding.UTF8, "application/json");
        content.Headers.Add("X-Request-Id", "req-1");
        using var response = await kit.SendAsync("t1", "/v1/chat/completions?api-version=2", HttpMethod.Post, content);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("stand-in", response.Headers.GetValues("X-Engine").Single());
        var (pathAndQuery, body, headers) = Assert.Single(engine.Requests);
        Assert.Equal("/v1/chat/completions?api-version=2", pathAndQuery);
        Assert.Contains(prompt, body, StringComparison.Ordinal);
        Assert.Equal("req-1", headers["X-Request-Id"].ToString());
        Assert.Equal("application/json; charset=utf-8", headers.ContentType.ToString());
        Assert.False(headers.ContainsKey("Authorization"));

        // The request's log line is written once the endpoint has finished the response, which the client may see first.
        await Eventually.TrueAsync(() => kit.Logs.Lines.Any(l => l.Contains("Task t1: POST answered 200", StringComparison.Ordinal)), "the request's log line");
        Canary.AssertAbsent(kit.Logs.All, kit.Token, "the agent's log");
        Canary.AssertAbsent(kit.Logs.All, prompt, "the agent's log");
    }

    [Fact]
    public async Task A_task_not_ready_yet_is_503_with_Retry_After_and_an_unknown_one_404()
    {
        var supervisor = new StubSupervisor();
        supervisor.Starting["loading"] = true;
        await using var kit = await ServingKit.StartAsync(supervisor);

        using var starting = await kit.SendAsync("loading", "/v1/models");
        Assert.Equal(HttpStatusCode.ServiceUnavailable, starting.StatusCode);
        Assert.NotNull(starting.Headers.RetryAfter);
        using var unknown = await kit.SendAsync("nope", "/v1/models");
        Assert.Equal(HttpStatusCode.NotFound, unknown.StatusCode);
        using var outside = await kit.RawAsync("/v1/models", "Bearer " + kit.Token);
        Assert.Equal(HttpStatusCode.NotFound, outside.StatusCode);
    }

    [Fact]
    public async Task A_server_sent_event_stream_flows_chunk_by_chunk()
    {
        await using var engine = await EngineStandIn.StartAsync();
        var supervisor = new StubSupervisor();
        supervisor.Ready["t"] = engine.Port;
        await using var kit = await ServingKit.StartAsync(supervisor);

        using var content = new StringContent("{\"stream\":true}", Encoding.UTF8, "application/json");
        using var response = await kit.SendAsync("t", "/v1/chat/completions", HttpMethod.Post, content);
        Assert.Equal("text/event-stream", response.Content.Headers.ContentType!.MediaType);
        await using var stream = await response.Content.ReadAsStreamAsync(TestContext.Current.CancellationToken);
        var received = new StringBuilder();
        var buffer = new byte[1024];
        while (!received.ToString().Contains("data: {\"n\":1}\n\n", StringComparison.Ordinal))
        {
            var read = await stream.ReadAsync(buffer, TestContext.Current.CancellationToken).AsTask().WaitAsync(TimeSpan.FromSeconds(10), TestContext.Current.CancellationToken);
            Assert.True(read > 0, "the stream ended before its first event arrived");
            received.Append(Encoding.UTF8.GetString(buffer, 0, read));
        }

        Assert.False(engine.Gate.Task.IsCompleted); // the first event came through while the engine still held the rest
        Assert.Equal(1, kit.Load.InFlight("t"));
        engine.Gate.TrySetResult();
        using var reader = new StreamReader(stream);
        received.Append(await reader.ReadToEndAsync(TestContext.Current.CancellationToken));
        Assert.Equal("data: {\"n\":1}\n\ndata: {\"n\":2}\n\ndata: [DONE]\n\n", received.ToString());
        await AgentWait.Until(() => kit.Load.InFlight("t") == 0, "the stream to be counted out");
    }

    [Fact]
    public async Task Requests_in_flight_are_counted_per_task_while_they_run()
    {
        await using var engine = await EngineStandIn.StartAsync();
        var supervisor = new StubSupervisor();
        supervisor.Ready["busy"] = engine.Port;
        supervisor.Ready["idle"] = engine.Port;
        await using var kit = await ServingKit.StartAsync(supervisor);

        var slow = Enumerable.Range(0, 3).Select(_ => kit.SendAsync("busy", "/slow")).ToList();
        await AgentWait.Until(() => kit.Load.InFlight("busy") == 3, "three requests in flight");
        Assert.Equal(0, kit.Load.InFlight("idle"));

        engine.Gate.TrySetResult();
        foreach (var response in await Task.WhenAll(slow))
        {
            Assert.Equal("slow done", await response.Content.ReadAsStringAsync(TestContext.Current.CancellationToken));
            response.Dispose();
        }

        await AgentWait.Until(() => kit.Load.InFlight("busy") == 0, "the requests to be counted out");
    }

    [Fact]
    public async Task The_engines_queue_depth_is_read_from_its_metrics()
    {
        await using var engine = await EngineStandIn.StartAsync();
        engine.Metrics = QueueDepthMetricsTests.Vllm;
        var supervisor = new StubSupervisor();
        supervisor.Ready["v"] = engine.Port;
        var clock = new ManualTimeProvider { FollowTimers = true };
        await using var kit = await ServingKit.StartAsync(supervisor, options: new AgentServingOptions { QueueDepthScrapeInterval = TimeSpan.FromSeconds(5), Time = clock });

        await AgentWait.Until(() => kit.Load.QueueDepth("v") == 7, "vLLM's waiting requests to be read at start");
        engine.Metrics = QueueDepthMetricsTests.LlamaCpp;
        await AgentWait.Until(() => clock.PendingTimers == 1, "the scrape timer");
        clock.Advance(TimeSpan.FromSeconds(5));
        await AgentWait.Until(() => kit.Load.QueueDepth("v") == 2, "llama.cpp's deferred requests to be read on the next round");
        engine.Metrics = "# nothing about queues\nprocess_cpu_seconds_total 1\n";
        clock.Advance(TimeSpan.FromSeconds(5));
        await AgentWait.Until(() => kit.Load.QueueDepth("v") is null, "no queue figure when the engine reports none");
    }

    [Fact]
    public async Task The_endpoint_refuses_to_start_with_a_certificate_that_is_not_the_pinned_one()
    {
        var dataDir = Path.Combine(Path.GetTempPath(), "sluice-serving-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dataDir);
        try
        {
            var (file, _) = ServingCertificates.Write(dataDir);
            var (_, other) = ServingCertificates.Write(dataDir, "other.p12");
            using var loggers = Microsoft.Extensions.Logging.Abstractions.NullLoggerFactory.Instance;
            var error = await Assert.ThrowsAsync<InvalidOperationException>(() => AgentServingEndpoint.StartAsync(
                ServingKit.Identity("t", file, other), dataDir, new StubSupervisor(), new TaskLoad(), loggers, TestContext.Current.CancellationToken));
            Assert.Contains("not the one the server pinned", error.Message, StringComparison.Ordinal);

            var missing = await Assert.ThrowsAsync<InvalidOperationException>(() => AgentServingEndpoint.StartAsync(
                ServingKit.Identity("t", "absent.p12", other), dataDir, new StubSupervisor(), new TaskLoad(), loggers, TestContext.Current.CancellationToken));
            Assert.Contains("is missing", missing.Message, StringComparison.Ordinal);
        }
        finally
        {
            Directory.Delete(dataDir, recursive: true);
        }
    }
}
