using System.Diagnostics;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;

namespace Sluice.Engine.Llama;

/// <summary>
/// The HTTP side of <c>sluice engine llama</c>: OpenAI chat completions and completions (streaming too), models,
/// <c>/health</c> (503 while loading, as llama.cpp's server answers) and <c>/metrics</c>.
/// </summary>
internal sealed class LlamaServer(string modelId, LlamaMetrics metrics, ILogger logger, TimeProvider time, CancellationToken stopping)
{
    private readonly long _created = time.GetUtcNow().ToUnixTimeSeconds();
    private volatile LlamaModel? _model;

    public LlamaMetrics Metrics => metrics;

    public void Ready(LlamaModel model) => _model = model;

    public async Task HealthAsync(HttpContext context)
    {
        context.Response.Headers.CacheControl = "no-store";
        if (_model is null)
        {
            await LoadingAsync(context.Response);
            return;
        }

        context.Response.ContentType = "application/json";
        await context.Response.Body.WriteAsync(OpenAiJson.Ok);
    }

    public async Task MetricsAsync(HttpContext context)
    {
        context.Response.ContentType = "text/plain; version=0.0.4; charset=utf-8";
        await context.Response.WriteAsync(metrics.Render());
    }

    public async Task ModelsAsync(HttpContext context)
    {
        if (_model is null)
        {
            await LoadingAsync(context.Response);
            return;
        }

        context.Response.ContentType = "application/json";
        await context.Response.Body.WriteAsync(OpenAiJson.Models(modelId, _created));
    }

    public Task ChatAsync(HttpContext context) => GenerateAsync(context, chat: true);

    public Task CompletionsAsync(HttpContext context) => GenerateAsync(context, chat: false);

    public static Task NotFoundAsync(HttpContext context) =>
        OpenAiJson.WriteErrorAsync(context.Response, StatusCodes.Status404NotFound,
            "Unknown path. This engine serves POST /v1/chat/completions, POST /v1/completions, GET /v1/models, GET /health and GET /metrics.",
            "invalid_request_error", code: "not_found");

    private static async Task LoadingAsync(HttpResponse response)
    {
        response.StatusCode = StatusCodes.Status503ServiceUnavailable;
        response.ContentType = "application/json";
        response.Headers.RetryAfter = "1";
        await response.Body.WriteAsync(OpenAiJson.Loading);
    }

    private async Task GenerateAsync(HttpContext context, bool chat)
    {
        var kind = chat ? "chat.completion" : "text_completion";
        var id = (chat ? "chatcmpl-" : "cmpl-") + Guid.NewGuid().ToString("N");
        var model = _model;
        if (model is null)
        {
            await LoadingAsync(context.Response);
            return;
        }

        var watch = Stopwatch.StartNew();
        var response = context.Response;
        var started = false;
        var includeUsage = false;
        using var cancellation = CancellationTokenSource.CreateLinkedTokenSource(context.RequestAborted, stopping);
        var cancellationToken = cancellation.Token;
        try
        {
            GenerationRequest request;
            try
            {
                using var body = await JsonDocument.ParseAsync(context.Request.Body, default, cancellationToken);
                request = chat ? GenerationRequestParser.ParseChat(body.RootElement) : GenerationRequestParser.ParseCompletion(body.RootElement);
            }
            catch (JsonException)
            {
                throw new InvalidRequestException("The request body is not valid JSON.", null, "invalid_json");
            }

            includeUsage = request.IncludeUsage;
            var prompt = chat ? model.RenderChat(request.Messages) : request.Prompt!;
            var tokens = model.Tokenize(prompt, request);
            var created = time.GetUtcNow().ToUnixTimeSeconds();
            var text = request.Stream ? null : new StringBuilder();

            async Task StartStreamAsync()
            {
                started = true;
                response.StatusCode = StatusCodes.Status200OK;
                response.ContentType = "text/event-stream";
                response.Headers.CacheControl = "no-cache";
                if (chat)
                {
                    await SendAsync(response, OpenAiJson.Chunk(chat, id, created, modelId, includeUsage, role: "assistant", text: string.Empty), cancellationToken);
                }
                else
                {
                    await response.StartAsync(cancellationToken);
                }
            }

            async Task EmitAsync(string piece)
            {
                if (text is not null)
                {
                    text.Append(piece);
                    return;
                }

                if (!started)
                {
                    await StartStreamAsync();
                }

                await SendAsync(response, OpenAiJson.Chunk(chat, id, created, modelId, includeUsage, text: piece), cancellationToken);
            }

            var result = await model.GenerateAsync(tokens, request, EmitAsync, cancellationToken);
            if (text is not null)
            {
                response.ContentType = "application/json";
                await response.Body.WriteAsync(OpenAiJson.Completion(chat, id, created, modelId, text.ToString(), result), cancellationToken);
            }
            else
            {
                if (!started)
                {
                    await StartStreamAsync();
                }

                await SendAsync(response, OpenAiJson.Chunk(chat, id, created, modelId, includeUsage, finish: result.Finish), cancellationToken);
                if (includeUsage)
                {
                    await SendAsync(response, OpenAiJson.Chunk(chat, id, created, modelId, includeUsage, usage: result), cancellationToken);
                }

                await response.Body.WriteAsync("data: [DONE]\n\n"u8.ToArray(), cancellationToken);
                await response.Body.FlushAsync(cancellationToken);
            }

            LlamaLog.Completed(logger, id, kind, result.PromptTokens, result.CompletionTokens, result.Finish == FinishReason.Stop ? "stop" : "length", watch.ElapsedMilliseconds);
        }
        catch (InvalidRequestException refused) when (!started)
        {
            LlamaLog.Refused(logger, id, kind, refused.Param ?? "body", refused.Code ?? "invalid");
            await OpenAiJson.WriteErrorAsync(response, StatusCodes.Status400BadRequest, refused.Message, "invalid_request_error", refused.Param, refused.Code);
        }
        catch (QueueFullException full) when (!started)
        {
            LlamaLog.QueueFull(logger, id, kind, full.Waiting);
            response.Headers.RetryAfter = "1";
            await OpenAiJson.WriteErrorAsync(response, StatusCodes.Status503ServiceUnavailable,
                $"The engine is busy: {full.Waiting} requests already wait for a slot. Retry shortly.", "server_error", code: "queue_full");
        }
        catch (BadHttpRequestException unreadable) when (!started && !response.HasStarted)
        {
            // A body over Kestrel's limit (413), or one the client cut or framed wrongly (400).
            LlamaLog.Refused(logger, id, kind, "body", "unreadable_body");
            await OpenAiJson.WriteErrorAsync(response, unreadable.StatusCode,
                "The request body could not be read (" + unreadable.StatusCode + "): send one complete JSON object.", "invalid_request_error", code: "unreadable_body");
        }
        catch (Exception cancelled) when ((cancelled is OperationCanceledException or IOException) && context.RequestAborted.IsCancellationRequested)
        {
            LlamaLog.Cancelled(logger, id, kind, watch.ElapsedMilliseconds);
        }
        catch (OperationCanceledException) when (stopping.IsCancellationRequested)
        {
            LlamaLog.CancelledByStop(logger, id, kind, watch.ElapsedMilliseconds);
            if (!started && !response.HasStarted)
            {
                await OpenAiJson.WriteErrorAsync(response, StatusCodes.Status503ServiceUnavailable, "The engine is stopping; retry on another replica.", "server_error", code: "stopping");
            }
        }
#pragma warning disable CA1031 // a failed generation is one request's 500, never the engine's end; its message may quote native state, so it is not returned
        catch (Exception failure)
#pragma warning restore CA1031
        {
            LlamaLog.Failed(logger, id, kind, failure.GetType().Name);
            if (!started && !response.HasStarted)
            {
                await OpenAiJson.WriteErrorAsync(response, StatusCodes.Status500InternalServerError,
                    "The engine failed to generate a completion; see the engine's log for the request id " + id + ".", "server_error");
            }
            else if (started)
            {
                await SendAsync(response, OpenAiJson.Error("The engine failed while generating; the completion is incomplete.", "server_error", null, null), CancellationToken.None);
            }
        }
    }

    private static async Task SendAsync(HttpResponse response, byte[] json, CancellationToken cancellationToken)
    {
        var frame = new byte[json.Length + 8];
        "data: "u8.CopyTo(frame);
        json.CopyTo(frame, 6);
        frame[^2] = (byte)'\n';
        frame[^1] = (byte)'\n';
        await response.Body.WriteAsync(frame, cancellationToken);
        await response.Body.FlushAsync(cancellationToken);
    }
}
