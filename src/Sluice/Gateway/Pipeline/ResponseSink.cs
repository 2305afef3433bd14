using System.Buffers;
using System.IO.Pipelines;
using System.Text.Json;
using Microsoft.AspNetCore.Http.Features;

namespace Sluice.Gateway.Pipeline;

/// <summary>
/// Where the pipeline writes its answer, whatever carries it: an HTTP response (streamed as it arrives) or an in-memory
/// buffer (a batch line). The pipeline never sees the transport; a new inbound protocol brings its own sink or reuses one.
/// </summary>
public interface IResponseSink
{
    /// <summary>True once a status has been committed: after this, no error can replace the answer.</summary>
    bool HasStarted { get; }

    /// <summary>The status committed to the client (0 before <see cref="Start"/>).</summary>
    int Status { get; }

    /// <summary>Signalled when whoever receives the answer has gone away.</summary>
    CancellationToken ClientGone { get; }

    PipeWriter Body { get; }

    /// <summary>A header for the answer (rate limits, Retry-After); ignored where the transport has none.</summary>
    void SetHeader(string name, string value);

    /// <summary>Commits the status and content type; <paramref name="streaming"/> turns off response buffering.</summary>
    void Start(int status, string contentType, long? contentLength, bool streaming);

    /// <summary>Ends an answer that was started and cannot be completed, so the receiver cannot take it for a whole one.</summary>
    void Abort();

    /// <summary>The protocol whose shape errors take (null: OpenAI's).</summary>
    Protocols.IInboundProtocol? Protocol => null;
}

/// <summary>The <c>/v1</c> HTTP response.</summary>
internal sealed class HttpResponseSink(HttpContext context, Protocols.IInboundProtocol? protocol = null) : IResponseSink
{
    private int _status;

    public Protocols.IInboundProtocol? Protocol => protocol;

    public bool HasStarted => _status != 0 || context.Response.HasStarted;

    public int Status => _status;

    public CancellationToken ClientGone => context.RequestAborted;

    public PipeWriter Body => context.Response.BodyWriter;

    public void SetHeader(string name, string value) => context.Response.Headers[name] = value;

    public void Start(int status, string contentType, long? contentLength, bool streaming)
    {
        _status = status;
        var response = context.Response;
        if (streaming)
        {
            context.Features.Get<IHttpResponseBodyFeature>()?.DisableBuffering();
            response.Headers.CacheControl = "no-cache";
        }

        response.StatusCode = status;
        response.ContentType = contentType;
        response.ContentLength = contentLength;
    }

    public void Abort() => context.Abort();
}

/// <summary>An answer kept in memory (a batch line's result), never streamed anywhere.</summary>
internal sealed class BufferedResponseSink(CancellationToken clientGone) : IResponseSink, IDisposable
{
    private readonly MemoryStream _buffer = new();
    private PipeWriter? _writer;
    private int _status;

    public bool HasStarted => _status != 0;

    public int Status => _status;

    public CancellationToken ClientGone => clientGone;

    public PipeWriter Body => _writer ??= PipeWriter.Create(_buffer, new StreamPipeWriterOptions(leaveOpen: true));

    public bool Aborted { get; private set; }

    public void SetHeader(string name, string value)
    {
    }

    public void Start(int status, string contentType, long? contentLength, bool streaming) => _status = status;

    public void Abort() => Aborted = true;

    public async Task<byte[]> ToArrayAsync()
    {
        if (_writer is not null)
        {
            await _writer.FlushAsync();
        }

        return _buffer.ToArray();
    }

    public void Dispose() => _buffer.Dispose();
}

public static class ResponseSinkExtensions
{
    /// <summary>Writes an error in OpenAI's shape (with Retry-After when the error carries one) and commits it.</summary>
    public static async Task WriteErrorAsync(this IResponseSink sink, OpenAiException error)
    {
        if (error.RetryAfter is { } retryAfter)
        {
            sink.SetHeader("Retry-After", Math.Max(1, (int)Math.Ceiling(retryAfter.TotalSeconds)).ToString(System.Globalization.CultureInfo.InvariantCulture));
        }

        sink.Start(error.Status, "application/json", null, streaming: false);
        using (var json = new Utf8JsonWriter(sink.Body))
        {
            if (sink.Protocol is { } protocol)
            {
                protocol.WriteError(json, error);
            }
            else
            {
                OpenAiError.Write(json, error.Message, error.Type, error.Code, error.Param);
            }
        }

        await sink.Body.FlushAsync(CancellationToken.None);
    }

    /// <summary>An error as an SSE event in OpenAI's shape, for an event stream already committed; then the stream ends.</summary>
    public static async Task WriteErrorEventAsync(this IResponseSink sink, OpenAiException error)
    {
        if (sink.Protocol is { } protocol)
        {
            await sink.Body.WriteAsync(System.Text.Encoding.UTF8.GetBytes(protocol.ErrorEvent(error).Format()), CancellationToken.None);
            return;
        }

        var buffer = new ArrayBufferWriter<byte>(256);
        buffer.Write("data: "u8);
        using (var json = new Utf8JsonWriter(buffer))
        {
            OpenAiError.Write(json, error.Message, error.Type, error.Code, error.Param);
        }

        buffer.Write("\n\n"u8);
        await sink.Body.WriteAsync(buffer.WrittenMemory, CancellationToken.None);
    }
}
