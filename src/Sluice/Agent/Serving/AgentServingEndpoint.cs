using System.Diagnostics;
using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http.Features;
using Sluice.Compute.Protocol;

namespace Sluice.Agent.Serving;

/// <summary>
/// The agent's one HTTPS endpoint for serving traffic: it accepts only <c>Authorization: Bearer {serving token}</c>
/// (compared by SHA-256 in constant time with the hash kept at join) and proxies <c>/tasks/{task_id}/{rest}</c> to
/// <c>http://127.0.0.1:{task port}/{rest}</c> for ready tasks, streaming both ways without buffering. Not ready: 503
/// with Retry-After; unknown task: 404. It counts requests in flight per task and scrapes each ready task's
/// <c>/metrics</c> for the engine's queue depth (<see cref="TaskLoad"/>). It logs task ids and status codes only.
/// </summary>
public sealed class AgentServingEndpoint : IAsyncDisposable
{
    private static readonly HashSet<string> HopByHop = new(StringComparer.OrdinalIgnoreCase)
    {
        "Connection", "Keep-Alive", "Proxy-Connection", "Proxy-Authenticate", "Proxy-Authorization", "TE", "Trailer",
        "Transfer-Encoding", "Upgrade", "Host", "Authorization",
    };

    private readonly WebApplication _app;
    private readonly CancellationTokenSource _stopping = new();
    private readonly Task _scraper;
    private readonly HttpMessageInvoker _upstream;
    private readonly HttpClient _metrics;

    private AgentServingEndpoint(WebApplication app, HttpMessageInvoker upstream, HttpClient metrics, Uri address, Func<CancellationToken, Task> scrape)
    {
        _app = app;
        _upstream = upstream;
        _metrics = metrics;
        Address = address;
        _scraper = scrape(_stopping.Token);
    }

    /// <summary>Where it listens (the actual port when the listen URL asked for port 0).</summary>
    public Uri Address { get; }

    /// <summary>
    /// Loads the serving certificate (<see cref="AgentIdentity.CertificateFile"/> in <paramref name="dataDir"/>, PKCS#12
    /// without a password), checks it is the one whose fingerprint the server pinned, and starts listening on
    /// <see cref="AgentIdentity.ServingListenUrl"/>.
    /// </summary>
    public static async Task<AgentServingEndpoint> StartAsync(
        AgentIdentity identity, string dataDir, ITaskSupervisor supervisor, TaskLoad load, ILoggerFactory loggers,
        CancellationToken cancellationToken, AgentServingOptions? options = null)
    {
        options ??= new AgentServingOptions();
        var certificate = LoadCertificate(identity, dataDir);
        var tokenHash = ParseTokenHash(identity.ServingTokenSha256);
        var listen = ParseListenUrl(identity.ServingListenUrl);
        var logger = loggers.CreateLogger("Sluice.Agent.Serving");

        var builder = WebApplication.CreateEmptyBuilder(new WebApplicationOptions());
        // The agent's own loggers, with ASP.NET Core's request lines (paths and queries) held back at Warning.
        builder.Logging.ClearProviders();
        builder.Logging.AddProvider(new ForwardingLoggerProvider(loggers));
        builder.Logging.SetMinimumLevel(LogLevel.Trace);
        builder.Logging.AddFilter("Microsoft", LogLevel.Warning);
        builder.WebHost.UseKestrelCore().ConfigureKestrel(kestrel =>
        {
            kestrel.AddServerHeader = false;
            kestrel.Limits.MaxRequestBodySize = null; // bodies stream through; the task and the gateway set their own limits
            void Https(Microsoft.AspNetCore.Server.Kestrel.Core.ListenOptions o) => o.UseHttps(certificate);
            if (listen.Host == "localhost")
            {
                kestrel.ListenLocalhost(listen.Port, Https);
            }
            else
            {
                kestrel.Listen(IPAddress.Parse(listen.Host), listen.Port, Https);
            }
        });

        var upstream = new HttpMessageInvoker(new SocketsHttpHandler
        {
            UseProxy = false,
            AllowAutoRedirect = false,
            UseCookies = false,
            AutomaticDecompression = DecompressionMethods.None,
            ActivityHeadersPropagator = null,
            PooledConnectionIdleTimeout = TimeSpan.FromMinutes(1),
        });
        var metrics = new HttpClient(new SocketsHttpHandler { UseProxy = false, AllowAutoRedirect = false, UseCookies = false })
        {
            Timeout = options.ScrapeTimeout,
        };

        var app = builder.Build();
        app.Run(context => HandleAsync(context, tokenHash, supervisor, load, upstream, logger, options.Wake));
        try
        {
            await app.StartAsync(cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            await app.DisposeAsync().ConfigureAwait(false);
            upstream.Dispose();
            metrics.Dispose();
            throw;
        }

        var bound = app.Services.GetRequiredService<Microsoft.AspNetCore.Hosting.Server.IServer>().Features.GetRequiredFeature<IServerAddressesFeature>().Addresses.First();
        var address = new Uri(bound.Replace("[::]", "localhost", StringComparison.Ordinal).Replace("0.0.0.0", "localhost", StringComparison.Ordinal));
        ServingLog.Listening(logger, address.ToString());
        return new AgentServingEndpoint(app, upstream, metrics, address,
            stopping => ScrapeLoopAsync(supervisor, load, metrics, options, logger, stopping));
    }

    private static async Task HandleAsync(
        HttpContext context, byte[] tokenHash, ITaskSupervisor supervisor, TaskLoad load, HttpMessageInvoker upstream, ILogger logger, Action? wake)
    {
        if (!Authorized(context.Request, tokenHash))
        {
            ServingLog.Unauthorized(logger);
            context.Response.Headers.WWWAuthenticate = "Bearer";
            await ErrorAsync(context, StatusCodes.Status401Unauthorized, "authentication_error",
                "This endpoint accepts only the gateway's serving token for this machine (Authorization: Bearer …).").ConfigureAwait(false);
            return;
        }

        var path = context.Request.Path.Value ?? "";
        if (path == AgentPaths.Wake && wake is not null && HttpMethods.IsPost(context.Request.Method))
        {
            // The server changed this machine's desired set: heartbeat now to fetch it (nothing else is taken from here).
            wake();
            context.Response.StatusCode = StatusCodes.Status204NoContent;
            return;
        }

        if (!path.StartsWith(AgentPaths.TaskPrefix, StringComparison.Ordinal))
        {
            await ErrorAsync(context, StatusCodes.Status404NotFound, "not_found_error", "Only /tasks/{task_id}/… is served here.").ConfigureAwait(false);
            return;
        }

        var rest = path[AgentPaths.TaskPrefix.Length..];
        var slash = rest.IndexOf('/', StringComparison.Ordinal);
        var taskId = slash < 0 ? rest : rest[..slash];
        var remainder = slash < 0 ? "/" : rest[slash..];
        var port = taskId.Length == 0 ? null : supervisor.ReadyPort(taskId);
        if (port is null)
        {
            var known = taskId.Length > 0 && supervisor.Report().Any(r => r.TaskId == taskId && r.State != TaskStates.Terminated);
            if (known)
            {
                context.Response.Headers.RetryAfter = "5";
                await ErrorAsync(context, StatusCodes.Status503ServiceUnavailable, "service_unavailable",
                    "The task is not ready yet on this machine; retry shortly.").ConfigureAwait(false);
            }
            else
            {
                await ErrorAsync(context, StatusCodes.Status404NotFound, "not_found_error", "No such task is running on this machine.").ConfigureAwait(false);
            }

            return;
        }

        using var inFlight = load.Begin(taskId);
        var started = Stopwatch.GetTimestamp();
        using var request = new HttpRequestMessage(new HttpMethod(context.Request.Method), new Uri($"http://127.0.0.1:{port}{remainder}{context.Request.QueryString}"));
        if (context.Features.Get<IHttpRequestBodyDetectionFeature>()?.CanHaveBody == true)
        {
            request.Content = new StreamContent(context.Request.Body);
        }

        foreach (var (name, values) in context.Request.Headers)
        {
            if (HopByHop.Contains(name))
            {
                continue;
            }

            if (!request.Headers.TryAddWithoutValidation(name, (IEnumerable<string?>)values))
            {
                request.Content?.Headers.TryAddWithoutValidation(name, (IEnumerable<string?>)values);
            }
        }

        HttpResponseMessage response;
        try
        {
            response = await upstream.SendAsync(request, context.RequestAborted).ConfigureAwait(false);
        }
        catch (Exception exception) when (exception is HttpRequestException or OperationCanceledException)
        {
            if (!context.RequestAborted.IsCancellationRequested)
            {
                ServingLog.UpstreamFailed(logger, taskId, exception.GetType().Name);
                await ErrorAsync(context, StatusCodes.Status502BadGateway, "upstream_error", "The task did not answer.").ConfigureAwait(false);
            }

            return;
        }

        using (response)
        {
            context.Response.StatusCode = (int)response.StatusCode;
            foreach (var (name, values) in response.Headers.Concat(response.Content.Headers))
            {
                if (!HopByHop.Contains(name))
                {
                    context.Response.Headers[name] = values.ToArray();
                }
            }

            context.Features.Get<IHttpResponseBodyFeature>()?.DisableBuffering();
            try
            {
                await using var body = await response.Content.ReadAsStreamAsync(context.RequestAborted).ConfigureAwait(false);
                await context.Response.StartAsync(context.RequestAborted).ConfigureAwait(false);
                var buffer = new byte[16 * 1024];
                int read;
                while ((read = await body.ReadAsync(buffer, context.RequestAborted).ConfigureAwait(false)) > 0)
                {
                    await context.Response.Body.WriteAsync(buffer.AsMemory(0, read), context.RequestAborted).ConfigureAwait(false);
                    await context.Response.Body.FlushAsync(context.RequestAborted).ConfigureAwait(false);
                }
            }
            catch (Exception exception) when (exception is IOException or OperationCanceledException or HttpRequestException)
            {
                context.Abort(); // the caller left, or the task broke off mid-answer: end the caller's stream unfinished
            }

            ServingLog.Proxied(logger, taskId, context.Request.Method, context.Response.StatusCode, (long)Stopwatch.GetElapsedTime(started).TotalMilliseconds);
        }
    }

    internal static bool Authorized(HttpRequest request, byte[] tokenHash)
    {
        var header = request.Headers.Authorization.ToString();
        var prefix = AgentPaths.ServingScheme + " ";
        if (!header.StartsWith(prefix, StringComparison.OrdinalIgnoreCase))
        {
            return false;
        }

        var presented = SHA256.HashData(Encoding.UTF8.GetBytes(header[prefix.Length..].Trim()));
        return CryptographicOperations.FixedTimeEquals(presented, tokenHash);
    }

    private static async Task ErrorAsync(HttpContext context, int status, string type, string message)
    {
        context.Response.StatusCode = status;
        context.Response.ContentType = "application/json";
        var json = "{\"error\":{\"message\":\"" + message + "\",\"type\":\"" + type + "\",\"param\":null,\"code\":null}}";
        await context.Response.WriteAsync(json, context.RequestAborted).ConfigureAwait(false);
    }

    private static async Task ScrapeLoopAsync(ITaskSupervisor supervisor, TaskLoad load, HttpClient metrics, AgentServingOptions options, ILogger logger, CancellationToken stopping)
    {
        using var timer = new PeriodicTimer(options.QueueDepthScrapeInterval, options.Time);
        try
        {
            do
            {
                foreach (var report in supervisor.Report().Where(r => r.State == TaskStates.Ready))
                {
                    if (supervisor.ReadyPort(report.TaskId) is { } port)
                    {
                        load.SetQueueDepth(report.TaskId, await ScrapeAsync(metrics, report.TaskId, port, logger, stopping).ConfigureAwait(false));
                    }
                }
            }
            while (await timer.WaitForNextTickAsync(stopping).ConfigureAwait(false));
        }
        catch (OperationCanceledException) when (stopping.IsCancellationRequested)
        {
        }
    }

    private static async Task<int?> ScrapeAsync(HttpClient metrics, string taskId, int port, ILogger logger, CancellationToken stopping)
    {
        try
        {
            using var response = await metrics.GetAsync(new Uri($"http://127.0.0.1:{port}/metrics"), stopping).ConfigureAwait(false);
            if (!response.IsSuccessStatusCode)
            {
                ServingLog.ScrapeFailed(logger, taskId, ((int)response.StatusCode).ToString(System.Globalization.CultureInfo.InvariantCulture));
                return null;
            }

            return QueueDepthMetrics.Parse(await response.Content.ReadAsStringAsync(stopping).ConfigureAwait(false));
        }
        catch (Exception exception) when (exception is HttpRequestException or TaskCanceledException && !stopping.IsCancellationRequested)
        {
            ServingLog.ScrapeFailed(logger, taskId, exception.GetType().Name);
            return null;
        }
    }

    private static X509Certificate2 LoadCertificate(AgentIdentity identity, string dataDir)
    {
        var path = Path.Combine(dataDir, identity.CertificateFile);
        if (!File.Exists(path))
        {
            throw new InvalidOperationException($"The serving certificate {path} is missing; join the machine again (sluice agent join).");
        }

        var certificate = X509CertificateLoader.LoadPkcs12FromFile(path, password: null);
        if (!certificate.HasPrivateKey)
        {
            throw new InvalidOperationException($"The serving certificate {path} has no private key; join the machine again.");
        }

        if (!string.Equals(Convert.ToHexStringLower(SHA256.HashData(certificate.RawData)), identity.CertificateSha256, StringComparison.OrdinalIgnoreCase))
        {
            throw new InvalidOperationException($"The serving certificate {path} is not the one the server pinned at join; join the machine again.");
        }

        return certificate;
    }

    private static byte[] ParseTokenHash(string hex)
    {
        try
        {
            var bytes = Convert.FromHexString(hex);
            return bytes.Length == 32 ? bytes : throw new FormatException();
        }
        catch (FormatException)
        {
            throw new InvalidOperationException("The agent identity's serving token hash is not a SHA-256 in hex; join the machine again.");
        }
    }

    internal static (string Host, int Port) ParseListenUrl(string url)
    {
        if (!Uri.TryCreate(url, UriKind.Absolute, out var uri) || uri.Scheme != Uri.UriSchemeHttps)
        {
            throw new InvalidOperationException($"The serving listen URL '{url}' is not an https:// address such as https://0.0.0.0:8443.");
        }

        var host = uri.Host.Trim('[', ']');
        if (host == "localhost" || IPAddress.TryParse(host, out _))
        {
            return (host, uri.Port);
        }

        throw new InvalidOperationException($"The serving listen URL '{url}' must name an IP address (0.0.0.0 for all) or localhost, not a host name.");
    }

    public async ValueTask DisposeAsync()
    {
        await _stopping.CancelAsync().ConfigureAwait(false);
        await _scraper.ConfigureAwait(false);
        await _app.StopAsync().ConfigureAwait(false);
        await _app.DisposeAsync().ConfigureAwait(false);
        _upstream.Dispose();
        _metrics.Dispose();
        _stopping.Dispose();
    }
}

/// <summary>Settings of the agent's serving endpoint.</summary>
public sealed record AgentServingOptions
{
    /// <summary>How often each ready task's /metrics is read for its queue depth.</summary>
    public TimeSpan QueueDepthScrapeInterval { get; init; } = TimeSpan.FromSeconds(5);

    public TimeSpan ScrapeTimeout { get; init; } = TimeSpan.FromSeconds(2);

    /// <summary>The clock of the scrape loop.</summary>
    public TimeProvider Time { get; init; } = TimeProvider.System;

    /// <summary>What <c>POST /agent/wake</c> (<see cref="AgentPaths.Wake"/>) does: the heartbeat loop's <see cref="AgentWake.Signal"/>.</summary>
    public Action? Wake { get; init; }
}

/// <summary>Hands the web host's loggers to the agent's logger factory.</summary>
internal sealed class ForwardingLoggerProvider(ILoggerFactory loggers) : ILoggerProvider
{
    public ILogger CreateLogger(string categoryName) => loggers.CreateLogger(categoryName);

    public void Dispose()
    {
    }
}
