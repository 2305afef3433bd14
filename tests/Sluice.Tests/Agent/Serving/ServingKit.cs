using System.Collections.Concurrent;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using Sluice.Agent;
using Sluice.Agent.Serving;
using Sluice.Compute.Protocol;
using Sluice.Compute.Serving;
using Sluice.Tests.TestSupport;

namespace Sluice.Tests.Agent.Serving;

/// <summary>A serving certificate as `agent join` makes one: self-signed, PKCS#12 without a password, in the data directory.</summary>
internal static class ServingCertificates
{
    public static (string File, string Sha256) Write(string dataDir, string name = "serving.p12")
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest("CN=sluice-agent", key, HashAlgorithmName.SHA256);
        using var certificate = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddYears(10));
        File.WriteAllBytes(Path.Combine(dataDir, name), certificate.Export(X509ContentType.Pkcs12));
        return (name, Convert.ToHexStringLower(SHA256.HashData(certificate.RawData)));
    }
}

/// <summary>An agent's serving endpoint on loopback in front of tasks, and the server-side transport pinned to it.</summary>
internal sealed class ServingKit : IAsyncDisposable
{
    private readonly ILoggerFactory _loggers;

    private ServingKit(string dataDir, LogCapture logs, ILoggerFactory loggers, string token, string fingerprint)
    {
        DataDir = dataDir;
        Logs = logs;
        _loggers = loggers;
        Token = token;
        Fingerprint = fingerprint;
    }

    public string DataDir { get; }

    public string Token { get; }

    public string Fingerprint { get; }

    public LogCapture Logs { get; }

    public TaskLoad Load { get; } = new();

    public AgentServingEndpoint Endpoint { get; private set; } = null!;

    public DirectMachineTransport Transport { get; } = new(allowLoopback: true);

    public MachineEndpoint Machine => new("machine-1", Endpoint.Address, Fingerprint, Token);

    public static async Task<ServingKit> StartAsync(ITaskSupervisor supervisor, TaskLoad? load = null, AgentServingOptions? options = null)
    {
        var dataDir = Path.Combine(Path.GetTempPath(), "sluice-serving-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dataDir);
        var (file, fingerprint) = ServingCertificates.Write(dataDir);
        var token = "st-canary-" + Guid.NewGuid().ToString("N");
        var logs = new LogCapture();
        var loggers = LoggerFactory.Create(b => b.AddProvider(logs).SetMinimumLevel(LogLevel.Trace));
        var kit = new ServingKit(dataDir, logs, loggers, token, fingerprint);
        var identity = Identity(token, file, fingerprint);
        kit.Endpoint = await AgentServingEndpoint.StartAsync(identity, dataDir, supervisor, load ?? kit.Load, loggers, TestContext.Current.CancellationToken, options);
        return kit;
    }

    public static AgentIdentity Identity(string token, string certificateFile, string fingerprint) => new()
    {
        ServerUrl = "http://127.0.0.1:1",
        MachineId = "machine-1",
        Credential = "unused",
        ServingTokenSha256 = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(token))),
        ServingListenUrl = "https://127.0.0.1:0",
        ServingUrl = "https://127.0.0.1:0",
        CertificateFile = certificateFile,
        CertificateSha256 = fingerprint,
    };

    /// <summary>Through the pinned transport, as the gateway sends.</summary>
    public Task<HttpResponseMessage> SendAsync(string taskId, string path, HttpMethod? method = null, HttpContent? content = null)
    {
        var request = new HttpRequestMessage(method ?? HttpMethod.Get, MachineTransportPaths.TaskUri(Machine, taskId, path)) { Content = content };
        return Transport.Invoker(Machine).SendAsync(request, TestContext.Current.CancellationToken);
    }

    /// <summary>A client that checks the pinned certificate and presents what the test says (or nothing) as Authorization.</summary>
    public async Task<HttpResponseMessage> RawAsync(string path, string? authorization, HttpMethod? method = null)
    {
        using var client = new HttpClient(new SocketsHttpHandler { SslOptions = { RemoteCertificateValidationCallback = (_, certificate, _, _) => DirectMachineTransport.MatchesPin(certificate, Fingerprint) } });
        using var request = new HttpRequestMessage(method ?? HttpMethod.Get, new Uri(Endpoint.Address, path));
        if (authorization is not null)
        {
            request.Headers.TryAddWithoutValidation("Authorization", authorization);
        }

        return await client.SendAsync(request, TestContext.Current.CancellationToken);
    }

    public async ValueTask DisposeAsync()
    {
        await Endpoint.DisposeAsync();
        Transport.Dispose();
        _loggers.Dispose();
        Directory.Delete(DataDir, recursive: true);
    }
}

/// <summary>Tasks the endpoint asks about: ready ones at a port, known ones not ready yet.</summary>
internal sealed class StubSupervisor : ITaskSupervisor
{
    public ConcurrentDictionary<string, int> Ready { get; } = new();

    public ConcurrentDictionary<string, bool> Starting { get; } = new();

    public void Apply(IReadOnlyList<TaskSpec> desired)
    {
    }

    public IReadOnlyList<TaskReport> Report() =>
    [
        .. Ready.Keys.Select(id => new TaskReport { TaskId = id, Generation = 1, State = TaskStates.Ready }),
        .. Starting.Keys.Select(id => new TaskReport { TaskId = id, Generation = 1, State = TaskStates.Starting }),
    ];

    public int? ReadyPort(string taskId) => Ready.TryGetValue(taskId, out var port) ? port : null;

    public Task StopAllAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}

/// <summary>A model server stand-in on loopback (outside Sluice: an engine): echoes requests, streams SSE, waits on gates.</summary>
internal sealed class EngineStandIn : IAsyncDisposable
{
    private readonly WebApplication _app;

    private EngineStandIn(WebApplication app) => _app = app;

    public int Port => new Uri(_app.Urls.First()).Port;

    public TaskCompletionSource Gate { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public TaskCompletionSource SlowArrived { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public ConcurrentQueue<(string PathAndQuery, string Body, IHeaderDictionary Headers)> Requests { get; } = new();

    public string Metrics { get; set; } = "";

    public static async Task<EngineStandIn> StartAsync()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        var app = builder.Build();
        var engine = new EngineStandIn(app);
        app.Run(async context =>
        {
            using var reader = new StreamReader(context.Request.Body);
            var body = await reader.ReadToEndAsync(context.RequestAborted);
            if (context.Request.Path != "/metrics") // the agent's own scrape is not a proxied request
            {
                engine.Requests.Enqueue((context.Request.Path + context.Request.QueryString, body, new HeaderDictionary(context.Request.Headers.ToDictionary(h => h.Key, h => h.Value, StringComparer.OrdinalIgnoreCase)))); // Kestrel reuses its own
            }

            switch (context.Request.Path.Value)
            {
                case "/metrics":
                    context.Response.ContentType = "text/plain; version=0.0.4";
                    await context.Response.WriteAsync(engine.Metrics, context.RequestAborted);
                    break;
                case "/v1/chat/completions" when body.Contains("\"stream\":true", StringComparison.Ordinal):
                    context.Response.ContentType = "text/event-stream";
                    context.Response.Headers["X-Engine"] = "stand-in";
                    await context.Response.WriteAsync("data: {\"n\":1}\n\n", context.RequestAborted);
                    await context.Response.Body.FlushAsync(context.RequestAborted);
                    await engine.Gate.Task.WaitAsync(context.RequestAborted);
                    await context.Response.WriteAsync("data: {\"n\":2}\n\ndata: [DONE]\n\n", context.RequestAborted);
                    break;
                case "/slow":
                    engine.SlowArrived.TrySetResult();
                    await engine.Gate.Task.WaitAsync(context.RequestAborted);
                    await context.Response.WriteAsync("slow done", context.RequestAborted);
                    break;
                default:
                    context.Response.Headers["X-Engine"] = "stand-in";
                    await context.Response.WriteAsJsonAsync(new { path = context.Request.Path.Value, query = context.Request.QueryString.Value, length = body.Length }, context.RequestAborted);
                    break;
            }
        });
        await app.StartAsync(TestContext.Current.CancellationToken);
        return engine;
    }

    public async ValueTask DisposeAsync()
    {
        Gate.TrySetResult();
        await _app.DisposeAsync();
    }
}
