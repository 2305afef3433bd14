using System.Buffers;
using System.Buffers.Binary;
using System.Diagnostics;
using System.Net;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Console;

namespace Sluice.Engine.Embeddings;

/// <summary>
/// The embeddings engine's HTTP server (Kestrel): it listens at once, answers <c>/health</c> 503 while the model loads
/// and 200 after, and serves OpenAI's <c>POST /v1/embeddings</c>, <c>GET /v1/models</c> and Prometheus <c>/metrics</c>.
/// On stdout it prints two lines a supervisor can wait on, and nothing else: <c>listening on URL</c> (the bound
/// address, so <c>--port 0</c> works) and <c>ready</c> once the model serves. Logs go to stderr.
/// </summary>
internal sealed class EmbeddingsServer : IDisposable
{
    public const string ListeningLine = "listening on ";
    public const string ReadyLine = "ready";

    private const long MaxBodyBytes = 32 * 1024 * 1024;

    private readonly EmbeddingsEngineSettings _settings;
    private readonly EmbeddingsMetrics _metrics = new();
    private readonly byte[]? _apiKey;
    private readonly long _created;
    private volatile EmbeddingsService? _service;
    private ILogger _logger = Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance;

    public EmbeddingsServer(EmbeddingsEngineSettings settings)
    {
        _settings = settings;
        _apiKey = string.IsNullOrEmpty(settings.ApiKey) ? null : Encoding.UTF8.GetBytes(settings.ApiKey);
        _created = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
    }

    public async Task<int> RunAsync(IPAddress address, CancellationToken cancellationToken)
    {
        var builder = WebApplication.CreateEmptyBuilder(new WebApplicationOptions { ApplicationName = "sluice-engine-embeddings" });
        builder.Logging.AddSimpleConsole(options =>
        {
            options.SingleLine = true;
            options.TimestampFormat = "yyyy-MM-ddTHH:mm:ss.fffZ ";
            options.UseUtcTimestamp = true;
        });
        builder.Services.Configure<ConsoleLoggerOptions>(options => options.LogToStandardErrorThreshold = LogLevel.Trace);
        builder.Logging.SetMinimumLevel(LogLevel.Information);
        builder.Logging.AddFilter("Microsoft", LogLevel.Warning);
        builder.Services.Configure<HostOptions>(options => options.ShutdownTimeout = TimeSpan.FromSeconds(5));
        builder.Services.AddRoutingCore();
        builder.WebHost.UseKestrelCore().ConfigureKestrel(options =>
        {
            options.AddServerHeader = false;
            options.Limits.MaxRequestBodySize = MaxBodyBytes;
            options.Listen(address, _settings.Port);
        });

        await using var app = builder.Build();
        _logger = app.Services.GetRequiredService<ILoggerFactory>().CreateLogger("Sluice.Engine.Embeddings");
        app.MapGet("/health", Health);
        app.MapGet("/metrics", Metrics);
        app.MapGet("/v1/models", Models);
        app.MapGet("/v1/models/{*id}", Model);
        app.MapPost("/v1/embeddings", Embeddings);

        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        if (_settings.ExitWithParent)
        {
            ParentWatch.Start(() =>
            {
                EmbeddingsLog.ParentGone(_logger);
                stop.Cancel();
            });
        }

        await app.StartAsync(stop.Token);
        using var stopping = app.Lifetime.ApplicationStopping.Register(stop.Cancel); // SIGTERM, SIGINT
        var bound = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        EmbeddingsLog.Listening(_logger, bound, _settings.ModelId);
        Console.Out.WriteLine(ListeningLine + bound);
        Console.Out.Flush();

        var exitCode = 0;
        var loading = Task.Run(async () =>
        {
            try
            {
                await LoadAsync(stop.Token);
            }
            catch (OperationCanceledException) when (stop.IsCancellationRequested)
            {
            }
            catch (Exception ex)
            {
                EmbeddingsLog.LoadFailed(_logger, ex.GetType().Name);
                exitCode = 1;
                await stop.CancelAsync();
            }
        }, CancellationToken.None);

        try
        {
            await Task.Delay(Timeout.Infinite, stop.Token);
        }
        catch (OperationCanceledException)
        {
        }

        await app.StopAsync(CancellationToken.None);
        await loading;
        return exitCode;
    }

    public void Dispose() => _service?.Dispose();

    private async Task LoadAsync(CancellationToken cancellationToken)
    {
        if (_settings.LoadWhenExists is { } gate)
        {
            while (!File.Exists(gate))
            {
                await Task.Delay(20, cancellationToken);
            }
        }

        var started = Stopwatch.GetTimestamp();
        var model = MiniLmModel.Load(_settings.Threads);
        model.Embed([model.Tokenizer.Encode("warm up")], cancellationToken); // the first run plans the graph: not a client's wait
        var parallel = Math.Max(1, _settings.Parallel);
        _service = new EmbeddingsService(model, parallel, _metrics);
        _metrics.Loaded = true;
        EmbeddingsLog.Loaded(_logger, _settings.ModelId, (long)Stopwatch.GetElapsedTime(started).TotalMilliseconds, MiniLmModel.Dimensions, model.Tokenizer.VocabularySize, parallel);
        Console.Out.WriteLine(ReadyLine);
        Console.Out.Flush();
    }

    private Task Health(HttpContext context)
    {
        var ready = _service is not null;
        context.Response.StatusCode = ready ? 200 : 503;
        context.Response.ContentType = "application/json";
        context.Response.Headers.CacheControl = "no-store";
        return context.Response.WriteAsync(ready ? """{"status":"ok"}""" : """{"status":"loading"}""");
    }

    private Task Metrics(HttpContext context)
    {
        context.Response.ContentType = "text/plain; version=0.0.4";
        return context.Response.WriteAsync(_metrics.Render());
    }

    private async Task Models(HttpContext context)
    {
        if (!await AuthorizedAsync(context))
        {
            return;
        }

        await WriteJsonAsync(context, 200, json =>
        {
            json.WriteStartObject();
            json.WriteString("object", "list");
            json.WriteStartArray("data");
            WriteModel(json);
            json.WriteEndArray();
            json.WriteEndObject();
        });
    }

    private async Task Model(HttpContext context)
    {
        if (!await AuthorizedAsync(context))
        {
            return;
        }

        var id = context.Request.RouteValues["id"] as string;
        if (!string.Equals(id, _settings.ModelId, StringComparison.Ordinal))
        {
            await WriteErrorAsync(context, new EngineError(404, $"The model does not exist; this engine serves '{_settings.ModelId}'.", "model", "model_not_found"));
            return;
        }

        await WriteJsonAsync(context, 200, WriteModel);
    }

    private void WriteModel(Utf8JsonWriter json)
    {
        json.WriteStartObject();
        json.WriteString("id", _settings.ModelId);
        json.WriteString("object", "model");
        json.WriteNumber("created", _created);
        json.WriteString("owned_by", "sluice");
        json.WriteEndObject();
    }

    private async Task Embeddings(HttpContext context)
    {
        _metrics.Started();
        var started = Stopwatch.GetTimestamp();
        var status = 200;
        try
        {
            if (!await AuthorizedAsync(context))
            {
                status = 401;
                return;
            }

            var service = _service ?? throw new EngineError(503, "The model is still loading; retry shortly.", null, "model_loading", "server_error");
            byte[] body;
            try
            {
                using var buffer = new MemoryStream();
                await context.Request.Body.CopyToAsync(buffer, context.RequestAborted);
                body = buffer.ToArray();
            }
            catch (BadHttpRequestException ex) when (ex.StatusCode == StatusCodes.Status413PayloadTooLarge)
            {
                throw new EngineError(413, $"The request body is larger than {MaxBodyBytes / (1024 * 1024)} MiB.", null, "request_too_large");
            }

            var request = EmbeddingsRequest.Parse(body, _settings.ModelId);
            var (vectors, tokens) = await service.EmbedAsync(request.Inputs, context.RequestAborted);
            _metrics.Embedded(vectors.Length, tokens);
            await WriteJsonAsync(context, 200, json => WriteEmbeddings(json, vectors, tokens, request.Base64));
            EmbeddingsLog.Embedded(_logger, vectors.Length, tokens, Stopwatch.GetElapsedTime(started).TotalMilliseconds);
        }
        catch (EngineError error)
        {
            status = error.Status;
            await WriteErrorAsync(context, error);
        }
        catch (OperationCanceledException) when (context.RequestAborted.IsCancellationRequested)
        {
            status = 499; // the client left
        }
        catch (Exception ex)
        {
            status = 500;
            EmbeddingsLog.Failed(_logger, ex.GetType().Name);
            if (!context.Response.HasStarted)
            {
                await WriteErrorAsync(context, new EngineError(500, "The engine failed to embed the input.", null, "engine_error", "server_error"));
            }
        }
        finally
        {
            _metrics.Finished(status, Stopwatch.GetElapsedTime(started));
        }
    }

    private void WriteEmbeddings(Utf8JsonWriter json, float[][] vectors, int tokens, bool base64)
    {
        json.WriteStartObject();
        json.WriteString("object", "list");
        json.WriteStartArray("data");
        var bytes = base64 ? new byte[MiniLmModel.Dimensions * sizeof(float)] : null;
        for (var i = 0; i < vectors.Length; i++)
        {
            json.WriteStartObject();
            json.WriteString("object", "embedding");
            json.WriteNumber("index", i);
            if (bytes is not null)
            {
                // OpenAI's base64: the float32 values, little-endian, one after another.
                for (var d = 0; d < vectors[i].Length; d++)
                {
                    BinaryPrimitives.WriteSingleLittleEndian(bytes.AsSpan(d * sizeof(float)), vectors[i][d]);
                }

                json.WriteBase64String("embedding", bytes);
            }
            else
            {
                json.WriteStartArray("embedding");
                foreach (var value in vectors[i])
                {
                    json.WriteNumberValue(value);
                }

                json.WriteEndArray();
            }

            json.WriteEndObject();
        }

        json.WriteEndArray();
        json.WriteString("model", _settings.ModelId);
        json.WriteStartObject("usage");
        json.WriteNumber("prompt_tokens", tokens);
        json.WriteNumber("total_tokens", tokens);
        json.WriteEndObject();
        json.WriteEndObject();
    }

    /// <summary>With an API key set (the gateway sets one for its child), <c>/v1</c> needs it as a bearer token.</summary>
    private async Task<bool> AuthorizedAsync(HttpContext context)
    {
        if (_apiKey is null)
        {
            return true;
        }

        var header = context.Request.Headers.Authorization.ToString();
        var presented = header.StartsWith("Bearer ", StringComparison.Ordinal) ? Encoding.UTF8.GetBytes(header[7..].Trim()) : [];
        if (CryptographicOperations.FixedTimeEquals(presented, _apiKey))
        {
            return true;
        }

        await WriteErrorAsync(context, new EngineError(401, "Missing or incorrect API key: send this engine's key as 'Authorization: Bearer KEY'.", null, "invalid_api_key"));
        return false;
    }

    private static Task WriteErrorAsync(HttpContext context, EngineError error)
    {
        if (error.Status == 503)
        {
            context.Response.Headers.RetryAfter = "1";
        }

        return WriteJsonAsync(context, error.Status, json =>
        {
            json.WriteStartObject();
            json.WriteStartObject("error");
            json.WriteString("message", error.Message);
            json.WriteString("type", error.Type);
            if (error.Param is null)
            {
                json.WriteNull("param");
            }
            else
            {
                json.WriteString("param", error.Param);
            }

            json.WriteString("code", error.Code);
            json.WriteEndObject();
            json.WriteEndObject();
        });
    }

    private static async Task WriteJsonAsync(HttpContext context, int status, Action<Utf8JsonWriter> write)
    {
        var output = new ArrayBufferWriter<byte>(4096);
        using (var json = new Utf8JsonWriter(output))
        {
            write(json);
        }

        context.Response.StatusCode = status;
        context.Response.ContentType = "application/json";
        context.Response.ContentLength = output.WrittenCount;
        await context.Response.Body.WriteAsync(output.WrittenMemory, context.RequestAborted);
    }
}
