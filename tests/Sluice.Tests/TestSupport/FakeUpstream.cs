using System.Collections.Concurrent;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;

namespace Sluice.Tests.TestSupport;

/// <summary>
/// A model provider stand-in: a real HTTP server on 127.0.0.1 speaking the OpenAI API (and Anthropic's Messages API),
/// whose behaviour a test sets: answer, fail with a status, stall, break mid-stream.
/// </summary>
public sealed class FakeUpstream : IAsyncDisposable
{
    private static readonly JsonSerializerOptions SkipNulls = new() { DefaultIgnoreCondition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull };

    private readonly WebApplication _app;

    private FakeUpstream(WebApplication app) => _app = app;

    public ConcurrentQueue<(string Path, string Body, IHeaderDictionary Headers)> Requests { get; } = new();

    /// <summary>Status to answer with instead of success (e.g. 503, 429, 400).</summary>
    public int? FailWith { get; set; }

    public TimeSpan DelayBeforeHeaders { get; set; }

    /// <summary>A cookie every answer sets, as providers behind CDNs do.</summary>
    public string? SetCookie { get; set; }

    /// <summary>Stream this many content chunks, then drop the connection.</summary>
    public int? BreakStreamAfter { get; set; }

    public TimeSpan DelayBetweenChunks { get; set; }

    public int Chunks { get; set; } = 5;

    public string Reply { get; set; } = "Hello from upstream";

    /// <summary>The arguments of the tool call answered to a request with <c>tools</c> (a call to the first tool).</summary>
    public string ToolArguments { get; set; } = """{"city":"Paris"}""";

    /// <summary>The content answered to a request with a <c>json_schema</c> or <c>json_object</c> <c>response_format</c>.</summary>
    public string JsonReply { get; set; } = """{"answer":"42"}""";

    /// <summary>Answer chat completions with this one tool call (its arguments streamed in two pieces) instead of text.</summary>
    public (string Name, string Arguments)? ToolCall { get; set; }

    /// <summary>Answer without any usage (streams ignore <c>include_usage</c>), as some servers do.</summary>
    public bool OmitUsage { get; set; }

    /// <summary>A non-streamed 200 answer's exact body instead of a well-formed one (e.g. truncated JSON).</summary>
    public string? RawAnswer { get; set; }

    /// <summary>Declare the whole non-streamed answer's length, send this many bytes of it, then drop the connection.</summary>
    public int? CutAnswerAfterBytes { get; set; }

    /// <summary>A recorded Messages API answer (a JSON body) the Anthropic endpoint replays as it is, instead of its own.</summary>
    public string? AnthropicAnswer { get; set; }

    /// <summary>A recorded Messages API event stream (SSE text) the Anthropic endpoint replays as it is, for streaming requests.</summary>
    public string? AnthropicEvents { get; set; }

    /// <summary>An event stream (SSE text) the chat completions and Responses endpoints replay as it is, for streaming requests.</summary>
    public string? RawEvents { get; set; }

    /// <summary>A chat answer that calls this tool (finish_reason <c>tool_calls</c>) instead of replying; streamed as tool-call deltas, its arguments in two pieces.</summary>
    public (string Id, string Name, string Arguments)? ToolCallWithId { get; set; }

    /// <summary>The usage a non-streamed answer reports.</summary>
    public (int Prompt, int Completion) Usage { get; set; } = (11, 7);

    public TaskCompletionSource StreamCancelled { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public Uri BaseUrl => new(_app.Urls.First() + "/v1/");

    public int Hits => Requests.Count;

    /// <summary>The most OpenAI-API requests this server was answering at one moment.</summary>
    public int PeakInFlight => Volatile.Read(ref _peakInFlight);

    private int _inFlight;
    private int _peakInFlight;

    private async Task CountedAsync(Func<Task> handle)
    {
        var now = Interlocked.Increment(ref _inFlight);
        int peak;
        while (now > (peak = Volatile.Read(ref _peakInFlight)) && Interlocked.CompareExchange(ref _peakInFlight, now, peak) != peak)
        {
        }

        try
        {
            await handle();
        }
        finally
        {
            Interlocked.Decrement(ref _inFlight);
        }
    }

    public static async Task<FakeUpstream> StartAsync()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        var app = builder.Build();
        var fake = new FakeUpstream(app);
        app.MapPost("/v1/chat/completions", context => fake.CountedAsync(() => fake.OpenAiAsync(context, chat: true)));
        app.MapPost("/v1/completions", context => fake.CountedAsync(() => fake.OpenAiAsync(context, chat: false)));
        app.MapPost("/v1/embeddings", context => fake.CountedAsync(() => fake.EmbeddingsAsync(context)));
        app.MapPost("/v1/messages", fake.AnthropicAsync);
        app.MapPost("/v1/responses", fake.ResponsesAsync);
        await app.StartAsync();
        return fake;
    }

    private async Task<JsonObject?> ReceiveAsync(HttpContext context)
    {
        using var reader = new StreamReader(context.Request.Body);
        var body = await reader.ReadToEndAsync();
        Requests.Enqueue((context.Request.Path, body, new HeaderDictionary(context.Request.Headers.ToDictionary(h => h.Key, h => h.Value))));
        if (SetCookie is { } cookie)
        {
            context.Response.Headers.SetCookie = cookie;
        }

        if (DelayBeforeHeaders > TimeSpan.Zero)
        {
            await Task.Delay(DelayBeforeHeaders, context.RequestAborted);
        }

        if (FailWith is { } status)
        {
            context.Response.StatusCode = status;
            context.Response.ContentType = "application/json";
            await context.Response.WriteAsync(JsonSerializer.Serialize(new { error = new { message = $"upstream says {status}", type = "upstream", param = (string?)null, code = $"fake_{status}" } }));
            return null;
        }

        return JsonNode.Parse(body)!.AsObject();
    }

    private async Task OpenAiAsync(HttpContext context, bool chat)
    {
        if (await ReceiveAsync(context) is not { } request)
        {
            return;
        }

        var model = request["model"]!.GetValue<string>();
        if (chat && ToolCallWithId is { } withId)
        {
            await ToolCallAsync(context, request, model, withId);
            return;
        }

        var (content, tool) = chat ? Answer(request) : (Reply, null);
        var arguments = ToolArguments;
        if (chat && ToolCall is { } forced)
        {
            (content, tool, arguments) = (Reply, forced.Name, forced.Arguments);
        }

        if (request["stream"]?.GetValue<bool>() != true)
        {
            context.Response.ContentType = "application/json";
            object choice = chat
                ? tool is null
                    ? (object)new { index = 0, message = new { role = "assistant", content }, finish_reason = "stop" }
                    : new { index = 0, message = new { role = "assistant", content = (string?)null, tool_calls = new[] { new { id = "call_1", type = "function", function = new { name = tool, arguments } } } }, finish_reason = "tool_calls" }
                : new { index = 0, text = Reply, finish_reason = "stop" };
            var answer = RawAnswer ?? JsonSerializer.Serialize(new
            {
                id = "up-1",
                @object = chat ? "chat.completion" : "text_completion",
                created = 1,
                model,
                choices = new[] { choice },
                usage = OmitUsage ? null : new { prompt_tokens = Usage.Prompt, completion_tokens = Usage.Completion, total_tokens = Usage.Prompt + Usage.Completion, prompt_tokens_details = new { cached_tokens = Usage == (11, 7) ? 3 : 0 } },
            }, SkipNulls);
            if (CutAnswerAfterBytes is { } cut)
            {
                var bytes = Encoding.UTF8.GetBytes(answer);
                context.Response.ContentLength = bytes.Length;
                await context.Response.Body.WriteAsync(bytes.AsMemory(0, Math.Min(cut, bytes.Length)));
                await context.Response.Body.FlushAsync();
                await Task.Delay(200); // let the part sent be read before the reset
                context.Abort();
                return;
            }

            await context.Response.WriteAsync(answer);
            return;
        }

        context.Response.ContentType = "text/event-stream";
        if (RawEvents is { } raw)
        {
            await context.Response.WriteAsync(raw.ReplaceLineEndings("\n"));
            return;
        }

        if (chat && ToolCall is { } call)
        {
            var half = call.Arguments.Length / 2;
            foreach (var delta in new object[]
            {
                new { role = "assistant", tool_calls = new[] { new { index = 0, id = "call_1", type = "function", function = new { name = call.Name, arguments = "" } } } },
                new { tool_calls = new[] { new { index = 0, function = new { arguments = call.Arguments[..half] } } } },
                new { tool_calls = new[] { new { index = 0, function = new { arguments = call.Arguments[half..] } } } },
            })
            {
                await context.Response.WriteAsync("data: " + JsonSerializer.Serialize(new { id = "up-1", @object = "chat.completion.chunk", created = 1, model, choices = new[] { new { index = 0, delta, finish_reason = (string?)null } } }) + "\n\n");
            }

            await context.Response.WriteAsync("data: " + JsonSerializer.Serialize(new { id = "up-1", @object = "chat.completion.chunk", created = 1, model, choices = new[] { new { index = 0, delta = new { }, finish_reason = "tool_calls" } } }) + "\n\n");
            await context.Response.WriteAsync("data: " + JsonSerializer.Serialize(new { id = "up-1", @object = "chat.completion.chunk", created = 1, model, choices = Array.Empty<object>(), usage = new { prompt_tokens = 11, completion_tokens = 9, total_tokens = 20 } }) + "\n\n");
            await context.Response.WriteAsync("data: [DONE]\n\n");
            return;
        }

        if (tool is not null || content != Reply)
        {
            await StreamAnswerAsync(context, request, model, content, tool);
            return;
        }

        try
        {
            for (var i = 0; i < Chunks; i++)
            {
                if (BreakStreamAfter == i)
                {
                    // Let the chunks already sent be read before the connection is reset (a reset can discard them).
                    await Task.Delay(300, context.RequestAborted);
                    context.Abort();
                    return;
                }

                var chunk = JsonSerializer.Serialize(new
                {
                    id = "up-1",
                    @object = "chat.completion.chunk",
                    created = 1,
                    model,
                    choices = new[] { new { index = 0, delta = new { content = $"w{i} " }, finish_reason = (string?)null } },
                });
                await context.Response.WriteAsync("data: " + chunk + "\n\n", context.RequestAborted);
                await context.Response.Body.FlushAsync(context.RequestAborted);
                if (DelayBetweenChunks > TimeSpan.Zero)
                {
                    await Task.Delay(DelayBetweenChunks, context.RequestAborted);
                }
            }

            if (!OmitUsage && request["stream_options"]?["include_usage"]?.GetValue<bool>() == true)
            {
                var usage = JsonSerializer.Serialize(new
                {
                    id = "up-1",
                    @object = "chat.completion.chunk",
                    created = 1,
                    model,
                    choices = Array.Empty<object>(),
                    usage = new { prompt_tokens = 11, completion_tokens = Chunks, total_tokens = 11 + Chunks },
                });
                await context.Response.WriteAsync("data: " + usage + "\n\n");
            }

            await context.Response.WriteAsync("data: [DONE]\n\n");
        }
        catch (OperationCanceledException)
        {
            StreamCancelled.TrySetResult();
        }
    }

    /// <summary>
    /// What a chat request gets: a call to its first tool when it offers tools (and the last message is not a tool
    /// result), "Tool said: " and the result after one, <see cref="JsonReply"/> for a JSON <c>response_format</c>,
    /// else <see cref="Reply"/>.
    /// </summary>
    private (string Content, string? Tool) Answer(JsonObject request)
    {
        var last = request["messages"] is JsonArray { Count: > 0 } messages ? messages[^1] : null;
        if (last?["role"]?.GetValue<string>() == "tool")
        {
            return ("Tool said: " + last["content"]?.ToString(), null);
        }

        if (request["tools"] is JsonArray { Count: > 0 } tools && tools[0]?["function"]?["name"]?.GetValue<string>() is { } name
            && request["tool_choice"]?.ToString() != "none")
        {
            return ("", name);
        }

        return request["response_format"]?["type"]?.GetValue<string>() is "json_schema" or "json_object" ? (JsonReply, null) : (Reply, null);
    }

    /// <summary>A streamed tool call (id and name first, the arguments in two pieces) or a streamed content answer in two pieces.</summary>
    private async Task StreamAnswerAsync(HttpContext context, JsonObject request, string model, string content, string? tool)
    {
        context.Response.ContentType = "text/event-stream";
        var chunks = new List<object>();
        if (tool is not null)
        {
            var half = ToolArguments.Length / 2;
            chunks.Add(new { index = 0, delta = new { role = "assistant", tool_calls = new[] { new { index = 0, id = "call_1", type = "function", function = new { name = tool, arguments = "" } } } }, finish_reason = (string?)null });
            chunks.Add(new { index = 0, delta = new { tool_calls = new[] { new { index = 0, function = new { arguments = ToolArguments[..half] } } } }, finish_reason = (string?)null });
            chunks.Add(new { index = 0, delta = new { tool_calls = new[] { new { index = 0, function = new { arguments = ToolArguments[half..] } } } }, finish_reason = (string?)null });
            chunks.Add(new { index = 0, delta = new { }, finish_reason = (string?)"tool_calls" });
        }
        else
        {
            var half = content.Length / 2;
            chunks.Add(new { index = 0, delta = new { role = "assistant", content = content[..half] }, finish_reason = (string?)null });
            chunks.Add(new { index = 0, delta = new { content = content[half..] }, finish_reason = (string?)null });
            chunks.Add(new { index = 0, delta = new { }, finish_reason = (string?)"stop" });
        }

        foreach (var choice in chunks)
        {
            var chunk = JsonSerializer.Serialize(new { id = "up-1", @object = "chat.completion.chunk", created = 1, model, choices = new[] { choice } });
            await context.Response.WriteAsync("data: " + chunk + "\n\n", context.RequestAborted);
        }

        if (request["stream_options"]?["include_usage"]?.GetValue<bool>() == true)
        {
            var usage = JsonSerializer.Serialize(new { id = "up-1", @object = "chat.completion.chunk", created = 1, model, choices = Array.Empty<object>(), usage = new { prompt_tokens = 11, completion_tokens = 5, total_tokens = 16 } });
            await context.Response.WriteAsync("data: " + usage + "\n\n", context.RequestAborted);
        }

        await context.Response.WriteAsync("data: [DONE]\n\n", context.RequestAborted);
    }

    private async Task ToolCallAsync(HttpContext context, JsonObject request, string model, (string Id, string Name, string Arguments) tool)
    {
        if (request["stream"]?.GetValue<bool>() != true)
        {
            context.Response.ContentType = "application/json";
            await context.Response.WriteAsync(JsonSerializer.Serialize(new
            {
                id = "up-1",
                @object = "chat.completion",
                created = 1,
                model,
                choices = new[]
                {
                    new
                    {
                        index = 0,
                        message = new { role = "assistant", content = (string?)null, tool_calls = new[] { new { id = tool.Id, type = "function", function = new { name = tool.Name, arguments = tool.Arguments } } } },
                        finish_reason = "tool_calls",
                    },
                },
                usage = new { prompt_tokens = Usage.Prompt, completion_tokens = Usage.Completion, total_tokens = Usage.Prompt + Usage.Completion },
            }));
            return;
        }

        context.Response.ContentType = "text/event-stream";
        var half = tool.Arguments.Length / 2;
        var deltas = new object[]
        {
            new { role = "assistant", tool_calls = new object[] { new { index = 0, id = tool.Id, type = "function", function = new { name = tool.Name, arguments = "" } } } },
            new { tool_calls = new object[] { new { index = 0, function = new { arguments = tool.Arguments[..half] } } } },
            new { tool_calls = new object[] { new { index = 0, function = new { arguments = tool.Arguments[half..] } } } },
        };
        foreach (var delta in deltas)
        {
            await context.Response.WriteAsync("data: " + JsonSerializer.Serialize(new { id = "up-1", @object = "chat.completion.chunk", created = 1, model, choices = new[] { new { index = 0, delta, finish_reason = (string?)null } } }) + "\n\n");
        }

        await context.Response.WriteAsync("data: " + JsonSerializer.Serialize(new { id = "up-1", @object = "chat.completion.chunk", created = 1, model, choices = new[] { new { index = 0, delta = new { }, finish_reason = "tool_calls" } } }) + "\n\n");
        await context.Response.WriteAsync("data: " + JsonSerializer.Serialize(new { id = "up-1", @object = "chat.completion.chunk", created = 1, model, choices = Array.Empty<object>(), usage = new { prompt_tokens = 11, completion_tokens = 6, total_tokens = 17 } }) + "\n\n");
        await context.Response.WriteAsync("data: [DONE]\n\n");
    }

    private async Task EmbeddingsAsync(HttpContext context)
    {
        if (await ReceiveAsync(context) is not { } request)
        {
            return;
        }

        context.Response.ContentType = "application/json";
        await context.Response.WriteAsync(JsonSerializer.Serialize(new
        {
            @object = "list",
            data = new[] { new { @object = "embedding", index = 0, embedding = new[] { 0.1, 0.2, 0.3 } } },
            model = request["model"]!.GetValue<string>(),
            usage = new { prompt_tokens = 4, total_tokens = 4 },
        }));
    }

    private async Task AnthropicAsync(HttpContext context)
    {
        if (await ReceiveAsync(context) is not { } request)
        {
            return;
        }

        if (request["stream"]?.GetValue<bool>() == true && AnthropicEvents is { } recordedEvents)
        {
            context.Response.ContentType = "text/event-stream";
            await context.Response.WriteAsync(recordedEvents.ReplaceLineEndings("\n"));
            return;
        }

        if (request["stream"]?.GetValue<bool>() != true)
        {
            context.Response.ContentType = "application/json";
            if (AnthropicAnswer is { } recorded)
            {
                await context.Response.WriteAsync(recorded);
                return;
            }

            await context.Response.WriteAsync(JsonSerializer.Serialize(new
            {
                id = "msg_1",
                type = "message",
                role = "assistant",
                model = request["model"]!.GetValue<string>(),
                content = new[] { new { type = "text", text = Reply } },
                stop_reason = "end_turn",
                usage = new { input_tokens = 9, output_tokens = 4, cache_read_input_tokens = 2 },
            }));
            return;
        }

        context.Response.ContentType = "text/event-stream";
        var events = new StringBuilder();
        events.Append("event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"model\":\"claude\",\"usage\":{\"input_tokens\":9,\"output_tokens\":1}}}\n\n");
        events.Append("event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n");
        foreach (var word in new[] { "Hello", " from", " Claude" })
        {
            events.Append($"event: content_block_delta\ndata: {{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{{\"type\":\"text_delta\",\"text\":\"{word}\"}}}}\n\n");
        }

        events.Append("event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n");
        events.Append("event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":3}}\n\n");
        events.Append("event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n");
        await context.Response.WriteAsync(events.ToString());
    }

    /// <summary>OpenAI's Responses API, for providers flagged as speaking it: a whole response object, or its typed events.</summary>
    private async Task ResponsesAsync(HttpContext context)
    {
        if (await ReceiveAsync(context) is not { } request)
        {
            return;
        }

        var model = request["model"]!.GetValue<string>();
        object Response(string status, string text, object? usage) => new
        {
            id = "resp_fake1",
            @object = "response",
            created_at = 1,
            status,
            model,
            output = text.Length == 0 ? Array.Empty<object>() : new object[]
            {
                new { id = "msg_fake1", type = "message", status, role = "assistant", content = new[] { new { type = "output_text", text, annotations = Array.Empty<object>() } } },
            },
            store = false,
            usage,
        };
        object Usage(int output) => new { input_tokens = 13, input_tokens_details = new { cached_tokens = 2 }, output_tokens = output, output_tokens_details = new { reasoning_tokens = 0 }, total_tokens = 13 + output };

        if (request["stream"]?.GetValue<bool>() != true)
        {
            context.Response.ContentType = "application/json";
            await context.Response.WriteAsync(JsonSerializer.Serialize(Response("completed", Reply, Usage(6))));
            return;
        }

        context.Response.ContentType = "text/event-stream";
        if (RawEvents is { } raw)
        {
            await context.Response.WriteAsync(raw.ReplaceLineEndings("\n"));
            return;
        }

        var sequence = 0;
        async Task SendAsync(string type, object data)
        {
            var node = JsonSerializer.SerializeToNode(data)!.AsObject();
            node.Insert(0, "type", type);
            node["sequence_number"] = sequence++;
            await context.Response.WriteAsync($"event: {type}\ndata: {node.ToJsonString()}\n\n", context.RequestAborted);
            await context.Response.Body.FlushAsync(context.RequestAborted);
        }

        await SendAsync("response.created", new { response = Response("in_progress", "", null) });
        var text = new StringBuilder();
        for (var i = 0; i < Chunks; i++)
        {
            if (BreakStreamAfter == i)
            {
                await Task.Delay(300, context.RequestAborted);
                context.Abort();
                return;
            }

            text.Append($"w{i} ");
            await SendAsync("response.output_text.delta", new { item_id = "msg_fake1", output_index = 0, content_index = 0, delta = $"w{i} " });
        }

        await SendAsync("response.completed", new { response = Response("completed", text.ToString(), Usage(Chunks)) });
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
    }
}
