// A mock OpenAI-compatible provider for benchmarks: a fixed answer with usage, optional latency, and streams of
// MOCK_CHUNKS chunks followed by a usage chunk and [DONE]. Binds 127.0.0.1 only.
using System.Text;

var port = Environment.GetEnvironmentVariable("MOCK_PORT") ?? "18081";
var latency = TimeSpan.FromMilliseconds(int.Parse(Environment.GetEnvironmentVariable("MOCK_LATENCY_MS") ?? "0", System.Globalization.CultureInfo.InvariantCulture));
var chunks = int.Parse(Environment.GetEnvironmentVariable("MOCK_CHUNKS") ?? "20", System.Globalization.CultureInfo.InvariantCulture);

// A provider with limited capacity: over MOCK_MAX_CONCURRENCY requests at once are refused with 429. GET /stats reports
// the peak concurrency seen and how many were refused, so a benchmark can show a client kept it full without overrunning it.
var maxConcurrency = int.Parse(Environment.GetEnvironmentVariable("MOCK_MAX_CONCURRENCY") ?? "0", System.Globalization.CultureInfo.InvariantCulture);
var inFlight = 0;
var peak = 0;
var refused = 0;
var served = 0;

var builder = WebApplication.CreateSlimBuilder(args);
builder.Logging.ClearProviders();
builder.WebHost.UseUrls($"http://127.0.0.1:{port}");
var app = builder.Build();
app.Use(async (context, next) =>
{
    if (context.Request.Method != "POST")
    {
        await next(context);
        return;
    }

    var now = Interlocked.Increment(ref inFlight);
    try
    {
        int seen;
        while (now > (seen = Volatile.Read(ref peak)) && Interlocked.CompareExchange(ref peak, now, seen) != seen)
        {
        }

        if (maxConcurrency > 0 && now > maxConcurrency)
        {
            Interlocked.Increment(ref refused);
            context.Response.StatusCode = 429;
            return;
        }

        await next(context);
        Interlocked.Increment(ref served);
    }
    finally
    {
        Interlocked.Decrement(ref inFlight);
    }
});
app.MapGet("/health", () => Results.Ok()); // ready as soon as it listens (a deployment's readiness probe)
app.MapGet("/stats", () => Results.Json(new { peak = Volatile.Read(ref peak), refused = Volatile.Read(ref refused), served = Volatile.Read(ref served) }));

var completion = Encoding.UTF8.GetBytes("""{"id":"chatcmpl-mock","object":"chat.completion","created":1,"model":"mock","choices":[{"index":0,"message":{"role":"assistant","content":"Hello from the mock upstream."},"finish_reason":"stop"}],"usage":{"prompt_tokens":12,"completion_tokens":7,"total_tokens":19}}""");
var embedding = Encoding.UTF8.GetBytes("""{"object":"list","data":[{"object":"embedding","index":0,"embedding":[0.1,0.2,0.3,0.4]}],"model":"mock","usage":{"prompt_tokens":4,"total_tokens":4}}""");
var chunk = Encoding.UTF8.GetBytes("data: {\"id\":\"chatcmpl-mock\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"mock\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\" word\"},\"finish_reason\":null}]}\n\n");
var usage = Encoding.UTF8.GetBytes($"data: {{\"id\":\"chatcmpl-mock\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"mock\",\"choices\":[],\"usage\":{{\"prompt_tokens\":12,\"completion_tokens\":{chunks},\"total_tokens\":{12 + chunks}}}}}\n\n");
var done = "data: [DONE]\n\n"u8.ToArray();

app.MapPost("/v1/chat/completions", async (HttpContext context) =>
{
    using var reader = new StreamReader(context.Request.Body);
    var body = await reader.ReadToEndAsync();
    if (latency > TimeSpan.Zero)
    {
        await Task.Delay(latency);
    }

    if (!body.Contains("\"stream\":true", StringComparison.Ordinal))
    {
        context.Response.ContentType = "application/json";
        await context.Response.Body.WriteAsync(completion);
        return;
    }

    context.Response.ContentType = "text/event-stream";
    for (var i = 0; i < chunks; i++)
    {
        await context.Response.Body.WriteAsync(chunk);
        await context.Response.Body.FlushAsync();
    }

    await context.Response.Body.WriteAsync(usage);
    await context.Response.Body.WriteAsync(done);
});
app.MapPost("/v1/embeddings", async (HttpContext context) =>
{
    using var reader = new StreamReader(context.Request.Body);
    await reader.ReadToEndAsync();
    if (latency > TimeSpan.Zero)
    {
        await Task.Delay(latency);
    }

    context.Response.ContentType = "application/json";
    await context.Response.Body.WriteAsync(embedding);
});
app.Run();
