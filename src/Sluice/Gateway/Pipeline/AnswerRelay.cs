using System.Diagnostics;
using System.Text;

namespace Sluice.Gateway.Pipeline;

/// <summary>
/// Relays an upstream's answer to the sink and reads its usage on the way: a whole answer (translated to OpenAI's
/// shape when the provider speaks another), an event stream (passed through byte for byte, or translated event by
/// event), or the provider's refusal.
/// </summary>
public sealed class AnswerRelay(TimeProvider time)
{
    private const int MaxBufferedResponseBytes = 64 * 1024 * 1024;

    /// <summary>
    /// Reads the whole answer before anything reaches the receiver, so an answer cut off mid-body or not valid JSON is
    /// an <see cref="UpstreamAnswerException"/> (the route failed: the next one is tried, else a 502), charged nothing.
    /// An answer without usage is charged from Sluice's own count (<see cref="TokenCounter"/>).
    /// </summary>
    public async Task WholeAsync(IResponseSink sink, InferenceRequest request, UpstreamResponse response, InferenceTrace trace, CancellationToken cancellationToken)
    {
        var started = Stopwatch.GetTimestamp();
        byte[] body;
        try
        {
            body = await BodyReading.ReadAllAsync(response.Body, response.Length, MaxBufferedResponseBytes, cancellationToken);
        }
        catch (Exception ex) when (ex is IOException or HttpRequestException or InvalidDataException)
        {
            throw new UpstreamAnswerException("upstream_incomplete");
        }
        catch (OperationCanceledException) when (!sink.ClientGone.IsCancellationRequested)
        {
            throw new UpstreamAnswerException("upstream_timeout", 504); // the total timeout ran out mid-body
        }
        finally
        {
            trace.UpstreamTicks += Stopwatch.GetTimestamp() - started;
        }

        var protocol = request.Protocol;
        var native = protocol is not null && protocol.NativeFormat == response.Format;
        if (native)
        {
            // The upstream speaks the caller's protocol: its answer goes through as it is, read only for usage.
            if (!protocol!.TryReadNativeUsage(body, out var nativeUsage, out var nativeReported))
            {
                throw new UpstreamAnswerException("upstream_malformed");
            }

            trace.Usage = nativeReported ? nativeUsage : new TokenUsage(TokenCounter.CountPrompt(request.Endpoint, request.Body.Span), TokenCounter.CountAnswer(body), 0);
            trace.CountedLocally = !nativeReported;
            await WriteWholeAsync(sink, body, trace, cancellationToken);
            return;
        }

        if (response.Format == ResponseFormat.Anthropic)
        {
            try
            {
                body = AnthropicTranslation.Response(body, trace.Model ?? request.Model, time.GetUtcNow().ToUnixTimeSeconds(), AnthropicTranslation.AnswersAsJson(request));
            }
            catch (Exception ex) when (ex is System.Text.Json.JsonException or InvalidOperationException or FormatException or NullReferenceException)
            {
                throw new UpstreamAnswerException("upstream_malformed");
            }
        }

        if (!TokenUsage.TryReadAnswer(body, out var usage, out var reported))
        {
            throw new UpstreamAnswerException("upstream_malformed");
        }

        var counted = reported ? usage : new TokenUsage(TokenCounter.CountPrompt(request.Endpoint, request.Body.Span), TokenCounter.CountAnswer(body), 0);
        if (trace.Stamp is { } stamp)
        {
            // The public model id, and usage.cost: what settlement will charge for this usage (before a protocol's
            // translation, which copies it).
            body = stamp.Whole(body, reported ? trace.ChargeFor(usage) : null);
        }

        if (protocol is not null)
        {
            // Translated before any usage is recorded: an answer the protocol cannot express is the route's failure
            // (the next route, else a 502), charged nothing. Usage Sluice counted is the usage the caller is shown.
            try
            {
                body = protocol.FromChatCompletion(reported ? body : TokenUsage.WithUsage(body, counted), request);
            }
            catch (Exception ex) when (ex is System.Text.Json.JsonException or InvalidOperationException or FormatException
                or NullReferenceException or InvalidCastException or ArgumentException or KeyNotFoundException or OpenAiException)
            {
                throw new UpstreamAnswerException("upstream_malformed");
            }
        }

        trace.Usage = counted;
        trace.CountedLocally = !reported;

        await WriteWholeAsync(sink, body, trace, cancellationToken);
    }

    private static async Task WriteWholeAsync(IResponseSink sink, byte[] body, InferenceTrace trace, CancellationToken cancellationToken)
    {
        trace.MarkFirstToken();
        sink.Start(200, "application/json", body.Length, streaming: false);
        trace.ResponseBytes = body.Length;
        await sink.Body.WriteAsync(body, cancellationToken);
    }

    public async Task StreamAsync(IResponseSink sink, InferenceRequest request, UpstreamResponse response, InferenceTrace trace, CancellationToken cancellationToken)
    {
        if (!sink.HasStarted) // already, when keep-alive comments went out while the call waited for a replica
        {
            sink.Start(200, "text/event-stream", null, streaming: true);
        }

        if (request.Protocol is { } protocol)
        {
            await ProtocolStreamAsync(sink, request, protocol, response, trace, cancellationToken);
            return;
        }

        var anthropic = response.Format == ResponseFormat.Anthropic
            ? new AnthropicTranslation.StreamTranslator(trace.Model ?? request.Model, time.GetUtcNow().ToUnixTimeSeconds(), AnthropicTranslation.AnswersAsJson(request))
            : null;
        long contentChunks = 0;
        var sawUsage = false;
        var text = new System.Buffers.ArrayBufferWriter<byte>(256); // the answer's text, counted only if the provider never reports usage
        var stamp = trace.Stamp;
        var rewritten = stamp is null ? null : new System.Buffers.ArrayBufferWriter<byte>(512);
        try
        {
            if (anthropic is null)
            {
                await SseRelay.RelayAsync(response.Body, sink.Body, data =>
                {
                    if (data.SequenceEqual("[DONE]"u8))
                    {
                        trace.ResponseBytes += SseRelay.EventLength(data);
                        return SseRelay.Verdict.WriteAndEnd;
                    }

                    if (IsErrorChunk(data))
                    {
                        throw new UpstreamStreamException("the provider sent an error event mid-stream");
                    }

                    if (data.IndexOf("\"usage\":{"u8) >= 0 && TokenUsage.TryRead(data, out var usage))
                    {
                        trace.Usage = usage;
                        sawUsage = true;
                        if (!request.ClientWantsUsage && TokenUsage.IsUsageOnlyChunk(data))
                        {
                            return SseRelay.Verdict.Skip; // asked for on the client's behalf; it did not ask for it
                        }

                        // usage.cost: what settlement charges for this usage (the stream's last usage is the one charged).
                        if (stamp is not null && stamp.Rewrite(data, trace.ChargeFor(usage), rewritten!))
                        {
                            trace.ResponseBytes += SseRelay.EventLength(rewritten!.WrittenSpan);
                            return SseRelay.Verdict.WriteRewritten;
                        }
                    }
                    else
                    {
                        contentChunks++;
                        TokenCounter.AppendAnswerText(data, text);
                        if (stamp is not null && stamp.Rewrite(data, null, rewritten!))
                        {
                            // Only when the provider named another model: just the model's value changes.
                            trace.ResponseBytes += SseRelay.EventLength(rewritten!.WrittenSpan);
                            return SseRelay.Verdict.WriteRewritten;
                        }
                    }

                    trace.ResponseBytes += SseRelay.EventLength(data);
                    return SseRelay.Verdict.Write;
                }, trace.MarkFirstToken, cancellationToken, sink.ClientGone, rewritten);
                return;
            }

            await foreach (var (eventType, data) in Sse.ReadAsync(response.Body, cancellationToken))
            {
                if (eventType == "message_stop")
                {
                    if (request.ClientWantsUsage)
                    {
                        var usageChunk = anthropic.UsageChunk();
                        await WriteEventAsync(sink, stamp?.Chunk(usageChunk, trace.ChargeFor(trace.Usage)) ?? usageChunk, trace, cancellationToken);
                    }

                    await WriteEventAsync(sink, "[DONE]", trace, cancellationToken);
                    break;
                }

                foreach (var chunk in anthropic.Translate(eventType ?? "", data))
                {
                    contentChunks++;
                    TokenCounter.AppendAnswerText(Encoding.UTF8.GetBytes(chunk), text);
                    await WriteEventAsync(sink, chunk, trace, cancellationToken);
                }

                trace.Usage = new TokenUsage(anthropic.PromptTokens, anthropic.CompletionTokens, anthropic.CachedTokens);
                sawUsage = anthropic.CompletionTokens > 0;
            }
        }
        catch (Exception ex) when (ex is IOException or UpstreamStreamException or HttpRequestException or System.Text.Json.JsonException
            || (ex is OperationCanceledException && !sink.ClientGone.IsCancellationRequested))
        {
            // The receiver already has a 200 and part of the answer: end with an error event, never a silent success.
            trace.Status = ex is OperationCanceledException ? 504 : 502;
            trace.ErrorType = ex is OperationCanceledException ? "upstream_timeout" : "upstream_stream_error";
            await WriteEventAsync(sink, """{"error":{"message":"The provider failed while streaming; the answer is incomplete.","type":"server_error","param":null,"code":"upstream_stream_error"}}""", trace, CancellationToken.None);
        }
        finally
        {
            if (!sawUsage)
            {
                // The provider never reported usage (it ignored include_usage, or the stream ended early: client gone,
                // upstream failed): Sluice counts what was sent and produced (each content chunk at least one token).
                trace.Usage = new TokenUsage(
                    Math.Max(trace.Usage.Prompt, TokenCounter.CountPrompt(request.Endpoint, request.Body.Span)),
                    Math.Max(trace.Usage.Completion, Math.Max(contentChunks, TokenCounter.Count(text.WrittenSpan))),
                    trace.Usage.Cached);
                trace.CountedLocally = true;
            }
        }
    }

    /// <summary>
    /// A stream for a caller that spoke another protocol: the upstream's own events passed through when it speaks that
    /// protocol, otherwise its chat completion chunks (Anthropic's translated first) turned into the protocol's events.
    /// </summary>
    private async Task ProtocolStreamAsync(
        IResponseSink sink, InferenceRequest request, Protocols.IInboundProtocol protocol, UpstreamResponse response, InferenceTrace trace, CancellationToken cancellationToken)
    {
        var native = protocol.NativeFormat == response.Format ? protocol.StartNativeStream() : null;
        var translator = native is null ? protocol.StartStream(request) : null;
        var anthropic = native is null && response.Format == ResponseFormat.Anthropic
            ? new AnthropicTranslation.StreamTranslator(trace.Model ?? request.Model, time.GetUtcNow().ToUnixTimeSeconds(), AnthropicTranslation.AnswersAsJson(request))
            : null;
        var stamp = trace.Stamp;
        long contentChunks = 0;
        var sawUsage = false;
        var ended = false;
        var text = new System.Buffers.ArrayBufferWriter<byte>(256);
        try
        {
            await foreach (var (eventType, data) in Sse.ReadAsync(response.Body, cancellationToken))
            {
                if (native is not null)
                {
                    ended = native.Observe(eventType, data);
                    await WriteEventAsync(sink, new Protocols.SseEvent(eventType, data), trace, cancellationToken);
                    if (ended)
                    {
                        break;
                    }

                    continue;
                }

                IEnumerable<string> chunks = anthropic is null
                    ? [data]
                    : eventType == "message_stop" ? [anthropic.UsageChunk(), "[DONE]"] : anthropic.Translate(eventType ?? "", data);
                foreach (var chunk in chunks)
                {
                    if (chunk == "[DONE]")
                    {
                        ended = true;
                        break;
                    }

                    var bytes = Encoding.UTF8.GetBytes(chunk);
                    if (IsErrorChunk(bytes))
                    {
                        throw new UpstreamStreamException("the provider sent an error event mid-stream");
                    }

                    var stamped = chunk;
                    if (bytes.AsSpan().IndexOf("\"usage\":{"u8) >= 0 && TokenUsage.TryRead(bytes, out var usage))
                    {
                        trace.Usage = usage;
                        sawUsage = true;
                        stamped = stamp?.Chunk(chunk, trace.ChargeFor(usage)) ?? chunk; // the translator copies usage.cost
                    }
                    else
                    {
                        contentChunks++;
                        TokenCounter.AppendAnswerText(bytes, text);
                        stamped = stamp?.Chunk(chunk, null) ?? chunk;
                    }

                    foreach (var translated in translator!.Chunk(stamped))
                    {
                        await WriteEventAsync(sink, translated, trace, cancellationToken);
                    }
                }

                if (anthropic is not null && !sawUsage)
                {
                    trace.Usage = new TokenUsage(anthropic.PromptTokens, anthropic.CompletionTokens, anthropic.CachedTokens);
                }

                if (ended)
                {
                    break;
                }
            }

            if (!ended)
            {
                throw new UpstreamStreamException("the provider's stream ended before its last event");
            }

            if (translator is not null)
            {
                foreach (var closing in translator.Finish())
                {
                    await WriteEventAsync(sink, closing, trace, cancellationToken);
                }
            }
        }
        catch (Exception ex) when (ex is IOException or UpstreamStreamException or HttpRequestException or System.Text.Json.JsonException
            || (ex is OperationCanceledException && !sink.ClientGone.IsCancellationRequested))
        {
            trace.Status = ex is OperationCanceledException ? 504 : 502;
            trace.ErrorType = ex is OperationCanceledException ? "upstream_timeout" : "upstream_stream_error";
            var error = new OpenAiException(trace.Status.Value, "The provider failed while streaming; the answer is incomplete.", "server_error", trace.ErrorType);
            await WriteEventAsync(sink, protocol.ErrorEvent(error), trace, CancellationToken.None);
        }
        finally
        {
            if (native is not null)
            {
                sawUsage = native.SawUsage;
                trace.Usage = native.Usage;
                contentChunks = native.ContentEvents;
                if (native.Failed)
                {
                    // The provider's own error event already reached the caller in its native shape: the call failed.
                    trace.Status = 502;
                    trace.ErrorType = "upstream_stream_error";
                    if (contentChunks == 0)
                    {
                        // Nothing was produced: charged what the provider reported (a final usage), never a local count.
                        trace.Usage = sawUsage ? native.Usage : default;
                        sawUsage = true;
                    }
                }
            }

            if (!sawUsage)
            {
                trace.Usage = new TokenUsage(
                    Math.Max(trace.Usage.Prompt, TokenCounter.CountPrompt(request.Endpoint, request.Body.Span)),
                    Math.Max(trace.Usage.Completion, Math.Max(contentChunks, TokenCounter.Count(text.WrittenSpan))),
                    trace.Usage.Cached);
                trace.CountedLocally = true;
            }
        }
    }

    public async Task ErrorAsync(IResponseSink sink, UpstreamResponse response, InferenceTrace trace, CancellationToken cancellationToken)
    {
        var body = await BodyReading.ReadAllAsync(response.Body, response.Length, 64 * 1024, cancellationToken);
        trace.Status = response.Status;
        trace.ErrorType = "upstream_rejected";
        if (sink.HasStarted)
        {
            // An event stream was committed while the call waited for a replica: the refusal becomes its error event.
            await sink.WriteErrorEventAsync(new OpenAiException(response.Status, $"The model server rejected the request (status {response.Status}).", "invalid_request_error", "upstream_rejected"));
            return;
        }

        // The provider's own error body goes through when it is in the caller's shape.
        var callerFormat = sink.Protocol is null ? ResponseFormat.OpenAi : sink.Protocol.NativeFormat;
        if (response.Format == callerFormat && body.AsSpan().IndexOf("\"error\""u8) >= 0)
        {
            sink.Start(response.Status, "application/json", body.Length, streaming: false);
            trace.ResponseBytes = body.Length;
            await sink.Body.WriteAsync(body, cancellationToken);
            return;
        }

        var message = response.Format == ResponseFormat.Anthropic ? AnthropicTranslation.ErrorMessage(body) : null;
        await sink.WriteErrorAsync(new OpenAiException(response.Status, message ?? $"The provider rejected the request (status {response.Status}).", "invalid_request_error", "upstream_rejected"));
    }

    /// <summary>
    /// A chunk that is the provider's error object (<c>{"error":{...}}</c> at the top level, as vLLM sends mid-stream
    /// before <c>[DONE]</c>) rather than a completion chunk: the stream failed, it is not content.
    /// </summary>
    internal static bool IsErrorChunk(ReadOnlySpan<byte> data)
    {
        if (data.IndexOf("\"error\""u8) < 0)
        {
            return false;
        }

        var reader = new System.Text.Json.Utf8JsonReader(data);
        try
        {
            if (!reader.Read() || reader.TokenType != System.Text.Json.JsonTokenType.StartObject)
            {
                return false;
            }

            while (reader.Read() && reader.TokenType == System.Text.Json.JsonTokenType.PropertyName)
            {
                if (reader.ValueTextEquals("error"u8))
                {
                    return reader.Read() && reader.TokenType == System.Text.Json.JsonTokenType.StartObject;
                }

                reader.Read();
                reader.Skip();
            }
        }
        catch (System.Text.Json.JsonException)
        {
            return false;
        }

        return false;
    }

    private static Task WriteEventAsync(IResponseSink sink, string data, InferenceTrace trace, CancellationToken cancellationToken) =>
        WriteEventAsync(sink, new Protocols.SseEvent(null, data), trace, cancellationToken);

    private static async Task WriteEventAsync(IResponseSink sink, Protocols.SseEvent sse, InferenceTrace trace, CancellationToken cancellationToken)
    {
        trace.MarkFirstToken();
        var bytes = Encoding.UTF8.GetBytes(sse.Format());
        trace.ResponseBytes += bytes.Length;
        await sink.Body.WriteAsync(bytes, sink.ClientGone.IsCancellationRequested ? sink.ClientGone : cancellationToken);
    }
}

/// <summary>The upstream's answer could not be used (cut off, or not valid JSON) and nothing of it reached the receiver.</summary>
public sealed class UpstreamAnswerException(string code, int status = 502) : Exception("The provider's answer could not be used: " + code)
{
    public string Code { get; } = code;

    public int Status { get; } = status;
}
