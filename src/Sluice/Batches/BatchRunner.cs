using System.Buffers;
using System.Collections.Concurrent;
using System.IO.Pipelines;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Threading.Channels;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using Sluice.Files;
using Sluice.Gateway;
using Sluice.Identity;
using Sluice.Storage;

namespace Sluice.Batches;

/// <summary>
/// Runs batches: claims one with a lease (so replicas share the work and a dead replica's batches are resumed by
/// another), validates its input, runs each line through the gateway with bounded concurrency (per replica, per
/// organization, and per provider through <see cref="ProviderConcurrency"/>), records each result in the encrypted
/// <see cref="BatchJournal"/> before charging it, and finally writes the output and error files. Cancellation,
/// the completion window and a revoked key stop dispatching; a stopping server lets in-flight lines finish and leaves
/// the rest to whoever resumes.
/// </summary>
public sealed partial class BatchRunner(
    IServiceScopeFactory scopes,
    Gateway.Pipeline.BatchLineAdapter gateway,
    Catalog catalog,
    FileStore store,
    TimeProvider time,
    IOptions<BatchesOptions> options,
    IOptions<FilesOptions> files,
    ILogger<BatchRunner> logger, Hosting.BackgroundHealth? health = null) : Hosting.SupervisedService(health)
{
    private const int MaxLineBytes = 8 * 1024 * 1024;
    private const int MaxReportedErrors = 1000;
    private readonly string _owner = $"{Guid.NewGuid():N}:{Environment.ProcessId}";
    private readonly SemaphoreSlim _lines = new(options.Value.MaxConcurrency, options.Value.MaxConcurrency);
    private readonly OrganizationGates _organizationLines = new(options.Value.MaxConcurrencyPerOrganization);
    private readonly ConcurrentDictionary<Guid, Task> _running = new();
    private readonly Channel<bool> _nudges = Channel.CreateBounded<bool>(new BoundedChannelOptions(1) { FullMode = BoundedChannelFullMode.DropWrite });

    /// <summary>Look for work now (a batch was created or cancelled on this replica).</summary>
    public void Nudge() => _nudges.Writer.TryWrite(true);

    protected override async Task RunAsync(CancellationToken stoppingToken)
    {
        try
        {
            while (!stoppingToken.IsCancellationRequested)
            {
                try
                {
                    await ClaimAsync(stoppingToken);
                }
                catch (Exception ex) when (ex is not OperationCanceledException)
                {
                    RoundFailed(logger, ex.GetType().Name);
                }

                using var wait = CancellationTokenSource.CreateLinkedTokenSource(stoppingToken);
                var delay = Task.Delay(options.Value.PollInterval, time, wait.Token);
                await Task.WhenAny(delay, _nudges.Reader.ReadAsync(wait.Token).AsTask());
                await wait.CancelAsync();
                _nudges.Reader.TryRead(out _);
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }

        await Task.WhenAll(_running.Values);
    }

    private async Task ClaimAsync(CancellationToken stoppingToken)
    {
        var free = options.Value.MaxRunningBatches - _running.Count;
        if (free <= 0)
        {
            return;
        }

        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<SluiceDbContext>();
        var now = time.GetUtcNow();
        var candidates = await db.Batches.AsNoTracking()
            .Where(b => Batch.ActiveStatuses.Contains(b.Status) && (b.LeaseUntil == null || b.LeaseUntil < now))
            .OrderBy(b => b.CreatedAt).Select(b => b.Id).Take(free).ToListAsync(stoppingToken);
        foreach (var id in candidates)
        {
            var until = now + options.Value.LeaseDuration;
            var claimed = await db.Batches
                .Where(b => b.Id == id && Batch.ActiveStatuses.Contains(b.Status) && (b.LeaseUntil == null || b.LeaseUntil < now))
                .ExecuteUpdateAsync(u => u.SetProperty(b => b.LeaseOwner, _owner).SetProperty(b => b.LeaseUntil, until), stoppingToken);
            if (claimed == 1)
            {
                _running[id] = Task.Run(() => RunGuardedAsync(id, stoppingToken), CancellationToken.None);
            }
        }
    }

    private async Task RunGuardedAsync(Guid batchId, CancellationToken stoppingToken)
    {
        try
        {
            await RunAsync(batchId, stoppingToken);
        }
        catch (Exception ex) when (ex is not OperationCanceledException || !stoppingToken.IsCancellationRequested)
        {
            BatchFailed(logger, batchId, ex.GetType().Name);
            await ReleaseAsync(batchId);
        }
        finally
        {
            _running.TryRemove(batchId, out _);
        }
    }

    private async Task RunAsync(Guid batchId, CancellationToken stoppingToken)
    {
        Batch batch;
        ApiKey? apiKey;
        await using (var scope = scopes.CreateAsyncScope())
        {
            var db = scope.ServiceProvider.GetRequiredService<SluiceDbContext>();
            batch = await db.Batches.AsNoTracking().SingleAsync(b => b.Id == batchId, stoppingToken);
            apiKey = await db.ApiKeys.AsNoTracking().FirstOrDefaultAsync(k => k.Id == batch.KeyId, stoppingToken);
        }

        if (batch.LeaseOwner != _owner)
        {
            return;
        }

        var journalPath = store.JournalPathOf(batch.Id);
        if (batch.Status == Batch.Cancelling && !File.Exists(journalPath))
        {
            await FinalizeAsync(batch, Batch.Cancelled, stoppingToken);
            return;
        }

        if (batch.Status == Batch.Validating)
        {
            if (!await ValidateAsync(batch, apiKey, stoppingToken))
            {
                return;
            }

            batch.Status = Batch.InProgress;
        }

        var finished = new List<BatchJournal.Entry>();
        var run = new Run(batch);
        await using (var journal = BatchJournal.Open(journalPath, store.Keys, BatchJournal.Binding(batch.Id, batch.OrganizationId), finished))
        {
            var done = new HashSet<int>(finished.Select(e => e.Line));
            run.Count(finished);
            finished.Clear();
            if (batch.Status == Batch.InProgress)
            {
                await DispatchAsync(batch, apiKey, journal, done, run, stoppingToken);
            }
            else
            {
                run.Stop(batch.Status == Batch.Cancelling ? Stop.Cancelled : Stop.None);
            }
        }

        var unfinished = run.Total - run.Completed - run.Failed;
        var outcome = run.Reason switch
        {
            Stop.Cancelled => Batch.Cancelled,
            Stop.Expired => Batch.Expired,
            Stop.KeyRevoked => Batch.Cancelled,
            _ when unfinished == 0 => Batch.Completed,
            _ when time.GetUtcNow() >= batch.ExpiresAt => Batch.Expired,
            _ => null,
        };
        if (outcome is null || run.Reason == Stop.LeaseLost)
        {
            // Stopping, lease lost, or lines whose results could not be kept: whoever claims the batch next resumes it.
            await ReleaseAsync(batch.Id);
            return;
        }

        await FinalizeAsync(batch, outcome, stoppingToken);
    }

    private async Task DispatchAsync(Batch batch, ApiKey? apiKey, BatchJournal journal, HashSet<int> done, Run run, CancellationToken stoppingToken)
    {
        using var dispatch = CancellationTokenSource.CreateLinkedTokenSource(stoppingToken);
        using var abort = new CancellationTokenSource();
        var endpoint = batch.Endpoint switch
        {
            "/v1/embeddings" => InferenceEndpoint.Embeddings,
            "/v1/completions" => InferenceEndpoint.Completions,
            _ => InferenceEndpoint.ChatCompletions,
        };

        run.OnStop = reason =>
        {
            dispatch.Cancel();
            if (reason == Stop.LeaseLost)
            {
                abort.Cancel();
            }
        };
        if (KeyProblem(apiKey) is not null)
        {
            run.Stop(Stop.KeyRevoked);
            return;
        }

        var key = ApiKeyVerifier.Describe(apiKey!, apiKey!.ExpiresAt);
        var progress = Task.Run(() => ProgressLoopAsync(batch, run, dispatch.Token), CancellationToken.None);
        var organizationLines = _organizationLines.Enter(batch.OrganizationId);
        var inFlight = new List<Task>();
        try
        {
            await using var input = store.OpenRead(batch.InputFileId, batch.OrganizationId);
            await foreach (var line in JsonlLines.ReadAsync(input, MaxLineBytes, dispatch.Token))
            {
                if (done.Contains(line.Index))
                {
                    continue;
                }

                if (time.GetUtcNow() >= batch.ExpiresAt)
                {
                    run.Stop(Stop.Expired);
                    break;
                }

                await organizationLines.WaitAsync(dispatch.Token);
                try
                {
                    await _lines.WaitAsync(dispatch.Token);
                }
                catch
                {
                    organizationLines.Release();
                    throw;
                }

                inFlight.Add(RunLineAsync(batch, endpoint, key, journal, line, run, organizationLines, abort.Token));
                if (inFlight.Count >= 4096)
                {
                    inFlight.RemoveAll(t => t.IsCompleted);
                }
            }
        }
        catch (OperationCanceledException) when (dispatch.IsCancellationRequested)
        {
        }
        catch (Exception ex) when (ex is FileNotFoundException or CryptographicException or InvalidDataException)
        {
            // The input was deleted or damaged after validation: nothing more can run.
            InputUnreadable(logger, batch.Id, ex.GetType().Name);
            run.Stop(Stop.Cancelled);
        }
        finally
        {
            await Task.WhenAll(inFlight);
            _organizationLines.Leave(batch.OrganizationId); // every line of this run has released its slot
            await dispatch.CancelAsync();
            await progress;
            await PublishAsync(batch, run, CancellationToken.None);
        }
    }

    private async Task RunLineAsync(
        Batch batch, InferenceEndpoint endpoint, VerifiedKey key, BatchJournal journal, JsonlLines.Line line, Run run, SemaphoreSlim organizationLines, CancellationToken abort)
    {
        await Task.Yield();
        try
        {
            using var document = JsonDocument.Parse(line.Bytes);
            var customId = document.RootElement.GetProperty("custom_id").GetString()!;
            var body = Encoding.UTF8.GetBytes(document.RootElement.GetProperty("body").GetRawText());
            var requestId = "req_" + Guid.CreateVersion7().ToString("N");
            BatchLine result;
            for (var attempt = 1; ; attempt++)
            {
                result = await gateway.ExecuteAsync(endpoint, body, key, batch.Id, requestId, abort);
                if (abort.IsCancellationRequested)
                {
                    result.Settle(charge: false); // not recorded, so not charged: it runs again when the batch resumes
                    return;
                }

                if (result.Status is not (429 or 500 or 502 or 503 or 504) || attempt >= options.Value.AttemptsPerLine)
                {
                    break;
                }

                result.Settle();
                await Task.Delay(TimeSpan.FromMilliseconds(250 * attempt), time, abort);
            }

            var success = result.Status is >= 200 and < 300;
            var output = OutputLine(customId, requestId, result.Status, result.Body, null);
            var entry = new BatchJournal.Entry(line.Index, success, result.Status, result.Usage.Prompt, result.Usage.Completion, result.Usage.Cached, output);
            try
            {
                await journal.AppendAsync(entry);
            }
            catch
            {
                result.Settle(charge: false);
                throw;
            }

            result.Settle();
            run.Count(entry);
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            LineFailed(logger, batch.Id, line.Number, ex.GetType().Name);
        }
        catch (OperationCanceledException)
        {
        }
        finally
        {
            _lines.Release();
            organizationLines.Release();
        }
    }

    private async Task ProgressLoopAsync(Batch batch, Run run, CancellationToken cancellationToken)
    {
        try
        {
            while (!cancellationToken.IsCancellationRequested)
            {
                await Task.Delay(options.Value.PollInterval, time, cancellationToken);
                await PublishAsync(batch, run, cancellationToken);
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    /// <summary>Writes progress, renews the lease, and notices a cancellation, a revoked key or a lost lease.</summary>
    private async Task PublishAsync(Batch batch, Run run, CancellationToken cancellationToken)
    {
        try
        {
            await using var scope = scopes.CreateAsyncScope();
            var db = scope.ServiceProvider.GetRequiredService<SluiceDbContext>();
            var until = time.GetUtcNow() + options.Value.LeaseDuration;
            var (completed, failed, input, output, cached) = run.Snapshot();
            var renewed = await db.Batches.Where(b => b.Id == batch.Id && b.LeaseOwner == _owner)
                .ExecuteUpdateAsync(u => u.SetProperty(b => b.LeaseUntil, until)
                    .SetProperty(b => b.CompletedRequests, completed).SetProperty(b => b.FailedRequests, failed)
                    .SetProperty(b => b.InputTokens, input).SetProperty(b => b.OutputTokens, output).SetProperty(b => b.CachedTokens, cached), cancellationToken);
            if (renewed == 0)
            {
                run.Stop(Stop.LeaseLost);
                return;
            }

            var state = await db.Batches.Where(b => b.Id == batch.Id).Select(b => new { b.Status, b.ExpiresAt }).SingleAsync(cancellationToken);
            if (state.Status == Batch.Cancelling)
            {
                run.Stop(Stop.Cancelled);
            }

            if (time.GetUtcNow() >= state.ExpiresAt)
            {
                run.Stop(Stop.Expired);
            }

            if (KeyProblem(await db.ApiKeys.AsNoTracking().FirstOrDefaultAsync(k => k.Id == batch.KeyId, cancellationToken)) is not null)
            {
                run.Stop(Stop.KeyRevoked);
            }
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            RoundFailed(logger, ex.GetType().Name);
        }
    }

    private string? KeyProblem(ApiKey? key) =>
        key is null || key.RevokedAt is not null ? "api_key_revoked"
        : key.ExpiresAt is { } expires && expires <= time.GetUtcNow() ? "api_key_expired"
        : null;

    private async Task<bool> ValidateAsync(Batch batch, ApiKey? apiKey, CancellationToken cancellationToken)
    {
        var errors = new List<(string Code, string Message, string? Param, int? Line)>();
        var customIds = new HashSet<string>(StringComparer.Ordinal);
        var models = new HashSet<string>(StringComparer.Ordinal);
        var allowed = apiKey?.AllowedModels?.Split(' ');
        var count = 0;
        void Error(string code, string message, string? param, int? line)
        {
            if (errors.Count < MaxReportedErrors)
            {
                errors.Add((code, message, param, line));
            }
        }

        if (KeyProblem(apiKey) is { } keyProblem)
        {
            Error(keyProblem, "The API key that created this batch was revoked or has expired.", null, null);
        }
        else
        {
            try
            {
                await using var input = store.OpenRead(batch.InputFileId, batch.OrganizationId);
                await foreach (var line in JsonlLines.ReadAsync(input, MaxLineBytes, cancellationToken))
                {
                    if (++count > options.Value.MaxLines)
                    {
                        Error("too_many_requests", $"A batch may hold at most {options.Value.MaxLines} requests.", null, line.Number);
                        break;
                    }

                    ValidateLine(batch, line, customIds, models, allowed, Error);
                }
            }
            catch (Exception ex) when (ex is FileNotFoundException or DirectoryNotFoundException or CryptographicException)
            {
                Error("invalid_input_file", "The input file no longer exists or cannot be read.", "input_file_id", null);
            }
            catch (InvalidDataException)
            {
                Error("line_too_long", $"A line is longer than {MaxLineBytes} bytes.", null, count + 1);
            }

            if (count == 0 && errors.Count == 0)
            {
                Error("empty_file", "The input file has no requests.", "input_file_id", null);
            }
        }

        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<SluiceDbContext>();
        var now = time.GetUtcNow();
        if (errors.Count > 0)
        {
            await db.Batches.Where(b => b.Id == batch.Id && b.LeaseOwner == _owner && (b.Status == Batch.Validating || b.Status == Batch.Cancelling))
                .ExecuteUpdateAsync(u => u.SetProperty(b => b.Status, Batch.Failed).SetProperty(b => b.FailedAt, now)
                    .SetProperty(b => b.Errors, ErrorsJson(errors)).SetProperty(b => b.LeaseOwner, (string?)null).SetProperty(b => b.LeaseUntil, (DateTimeOffset?)null), cancellationToken);
            return false;
        }

        var model = models.Count == 1 ? models.Single() : null;
        var started = await db.Batches.Where(b => b.Id == batch.Id && b.LeaseOwner == _owner && b.Status == Batch.Validating)
            .ExecuteUpdateAsync(u => u.SetProperty(b => b.Status, Batch.InProgress).SetProperty(b => b.InProgressAt, now)
                .SetProperty(b => b.TotalRequests, count).SetProperty(b => b.Model, model), cancellationToken);
        batch.TotalRequests = count;
        batch.Model = model;
        batch.InProgressAt = now;
        if (started == 0)
        {
            // Cancelled while validating.
            await FinalizeAsync(batch, Batch.Cancelled, cancellationToken);
            return false;
        }

        return true;
    }

    private void ValidateLine(Batch batch, JsonlLines.Line line, HashSet<string> customIds, HashSet<string> models, string[]? allowed, Action<string, string, string?, int?> error)
    {
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(line.Bytes);
        }
        catch (JsonException)
        {
            error("invalid_json_line", "The line is not valid JSON.", null, line.Number);
            return;
        }

        using (document)
        {
            var root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
            {
                error("invalid_json_line", "The line must be a JSON object with custom_id, method, url and body.", null, line.Number);
                return;
            }

            if (!root.TryGetProperty("custom_id", out var customId) || customId.ValueKind != JsonValueKind.String || customId.GetString() is not { Length: > 0 and <= 512 } id)
            {
                error("missing_custom_id", "Each line needs a custom_id: a string of 1 to 512 characters.", "custom_id", line.Number);
            }
            else if (!customIds.Add(id))
            {
                error("duplicate_custom_id", "The custom_id is used by an earlier line; each must be unique in the batch.", "custom_id", line.Number);
            }

            if (!root.TryGetProperty("method", out var method) || method.ValueKind != JsonValueKind.String || method.GetString() != "POST")
            {
                error("invalid_method", "The method must be POST.", "method", line.Number);
            }

            if (!root.TryGetProperty("url", out var url) || url.ValueKind != JsonValueKind.String || url.GetString() != batch.Endpoint)
            {
                error("invalid_url", $"The url must be '{batch.Endpoint}', the batch's endpoint.", "url", line.Number);
            }

            if (!root.TryGetProperty("body", out var body) || body.ValueKind != JsonValueKind.Object)
            {
                error("invalid_body", "The body must be a JSON object: the request for the endpoint.", "body", line.Number);
                return;
            }

            if (!body.TryGetProperty("model", out var model) || model.ValueKind != JsonValueKind.String || catalog.Find(model.GetString()!) is null)
            {
                error("model_not_found", "The body's model does not exist or you do not have access to it.", "body.model", line.Number);
            }
            else if (allowed is not null && !allowed.Contains(model.GetString(), StringComparer.Ordinal))
            {
                error("model_not_allowed", "The API key that created this batch may not use the body's model.", "body.model", line.Number);
            }
            else
            {
                models.Add(model.GetString()!);
            }

            if (body.TryGetProperty("stream", out var stream) && stream.ValueKind == JsonValueKind.True)
            {
                error("streaming_not_supported", "Batch requests cannot stream; remove 'stream' from the body.", "body.stream", line.Number);
            }
        }
    }

    private static string ErrorsJson(List<(string Code, string Message, string? Param, int? Line)> errors)
    {
        var buffer = new ArrayBufferWriter<byte>();
        using (var json = new Utf8JsonWriter(buffer))
        {
            json.WriteStartObject();
            json.WriteString("object", "list");
            json.WriteStartArray("data");
            foreach (var (code, message, param, line) in errors)
            {
                json.WriteStartObject();
                json.WriteString("code", code);
                json.WriteString("message", message);
                json.WriteString("param", param);
                if (line is { } number)
                {
                    json.WriteNumber("line", number);
                }
                else
                {
                    json.WriteNull("line");
                }

                json.WriteEndObject();
            }

            json.WriteEndArray();
            json.WriteEndObject();
        }

        return Encoding.UTF8.GetString(buffer.WrittenSpan);
    }

    private static byte[] OutputLine(string customId, string? requestId, int status, byte[]? body, (string Code, string Message)? error)
    {
        var buffer = new ArrayBufferWriter<byte>(256 + (body?.Length ?? 0));
        using (var json = new Utf8JsonWriter(buffer))
        {
            json.WriteStartObject();
            json.WriteString("id", "batch_req_" + Guid.CreateVersion7().ToString("N"));
            json.WriteString("custom_id", customId);
            if (body is null)
            {
                json.WriteNull("response");
            }
            else
            {
                json.WriteStartObject("response");
                json.WriteNumber("status_code", status);
                json.WriteString("request_id", requestId);
                json.WritePropertyName("body");
                if (body.Length > 0 && JsonlScanner.IsObject(body))
                {
                    json.WriteRawValue(body, skipInputValidation: true);
                }
                else
                {
                    json.WriteStartObject();
                    json.WriteStartObject("error");
                    json.WriteString("message", "The provider's answer was not JSON.");
                    json.WriteString("type", "server_error");
                    json.WriteNull("param");
                    json.WriteString("code", "invalid_upstream_response");
                    json.WriteEndObject();
                    json.WriteEndObject();
                }

                json.WriteEndObject();
            }

            if (error is { } failure)
            {
                json.WriteStartObject("error");
                json.WriteString("code", failure.Code);
                json.WriteString("message", failure.Message);
                json.WriteEndObject();
            }
            else
            {
                json.WriteNull("error");
            }

            json.WriteEndObject();
        }

        return buffer.WrittenSpan.ToArray();
    }

    /// <summary>
    /// Writes the output and error files from the journal (plus <c>batch_expired</c> lines for what never ran), records
    /// them and the final status in one transaction, then shreds the journal. File ids derive from the batch id, so a
    /// finalization interrupted by a crash is redone over its own leftovers.
    /// </summary>
    private async Task FinalizeAsync(Batch batch, string outcome, CancellationToken cancellationToken)
    {
        var now = time.GetUtcNow();
        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<SluiceDbContext>();
        if (outcome != Batch.Cancelled)
        {
            await db.Batches.Where(b => b.Id == batch.Id && b.LeaseOwner == _owner)
                .ExecuteUpdateAsync(u => u.SetProperty(b => b.Status, Batch.Finalizing).SetProperty(b => b.FinalizingAt, now), cancellationToken);
        }

        var journalPath = store.JournalPathOf(batch.Id);
        var binding = BatchJournal.Binding(batch.Id, batch.OrganizationId);
        var outputId = DerivedId(batch.Id, "output");
        var errorId = DerivedId(batch.Id, "error");
        await db.Files.Where(f => f.Id == outputId || f.Id == errorId).ExecuteDeleteAsync(cancellationToken);
        store.Shred(outputId);
        store.Shred(errorId);

        var done = new HashSet<int>();
        var counts = new Run(batch);
        foreach (var entry in BatchJournal.Read(journalPath, store.Keys, binding))
        {
            done.Add(entry.Line);
            counts.Count(entry);
        }

        var retention = TimeSpan.FromSeconds(Math.Min(batch.OutputExpiresAfterSeconds ?? long.MaxValue, (long)files.Value.Retention.TotalSeconds));
        var output = await WriteResultFileAsync(batch, outputId, "output", now, retention, async writer =>
        {
            var lines = 0;
            foreach (var entry in BatchJournal.Read(journalPath, store.Keys, binding).Where(e => e.Success))
            {
                await WriteLineAsync(writer, entry.OutputLine);
                lines++;
            }

            return lines;
        }, cancellationToken);

        var expiredLines = 0;
        var error = await WriteResultFileAsync(batch, errorId, "error", now, retention, async writer =>
        {
            var lines = 0;
            foreach (var entry in BatchJournal.Read(journalPath, store.Keys, binding).Where(e => !e.Success))
            {
                await WriteLineAsync(writer, entry.OutputLine);
                lines++;
            }

            if (outcome == Batch.Expired && store.Exists(batch.InputFileId))
            {
                // The input names the lines that never ran (it was validated, so each has a custom_id).
                await using var input = store.OpenRead(batch.InputFileId, batch.OrganizationId);
                await foreach (var line in JsonlLines.ReadAsync(input, MaxLineBytes, cancellationToken))
                {
                    if (done.Contains(line.Index))
                    {
                        continue;
                    }

                    using var document = JsonDocument.Parse(line.Bytes);
                    var customId = document.RootElement.GetProperty("custom_id").GetString()!;
                    await WriteLineAsync(writer, OutputLine(customId, null, 0, null, ("batch_expired", "This request could not be executed before the completion window expired.")));
                    lines++;
                    expiredLines++;
                }
            }

            return lines;
        }, cancellationToken);

        var (completed, failed, inputTokens, outputTokens, cached) = counts.Snapshot();
        failed += expiredLines;
        if (output is not null)
        {
            db.Files.Add(output);
        }

        if (error is not null)
        {
            db.Files.Add(error);
        }

        var tracked = await db.Batches.SingleAsync(b => b.Id == batch.Id, cancellationToken);
        if (tracked.LeaseOwner != _owner)
        {
            store.Shred(outputId);
            store.Shred(errorId);
            return;
        }

        tracked.Status = outcome;
        tracked.OutputFileId = output?.Id;
        tracked.ErrorFileId = error?.Id;
        tracked.CompletedRequests = completed;
        tracked.FailedRequests = failed;
        tracked.InputTokens = inputTokens;
        tracked.OutputTokens = outputTokens;
        tracked.CachedTokens = cached;
        tracked.LeaseOwner = null;
        tracked.LeaseUntil = null;
        _ = outcome switch
        {
            Batch.Completed => tracked.CompletedAt = now,
            Batch.Expired => tracked.ExpiredAt = now,
            _ => tracked.CancelledAt = now,
        };
        await db.SaveChangesAsync(cancellationToken);
        EncryptedFile.Shred(journalPath);
        Finished(logger, batch.Id, outcome, completed, failed);
    }

    private async Task<StoredFile?> WriteResultFileAsync(
        Batch batch, Guid fileId, string kind, DateTimeOffset now, TimeSpan retention, Func<PipeWriter, Task<int>> produce, CancellationToken cancellationToken)
    {
        var pipe = new Pipe();
        var writing = store.WriteAsync(fileId, batch.OrganizationId, pipe.Reader.AsStream(), long.MaxValue, null, cancellationToken);
        int lines;
        try
        {
            lines = await produce(pipe.Writer);
        }
        catch (Exception ex)
        {
            await pipe.Writer.CompleteAsync(ex);
            await writing.ContinueWith(_ => { }, TaskScheduler.Default);
            throw;
        }

        await pipe.Writer.CompleteAsync();
        var bytes = await writing;
        if (lines == 0)
        {
            store.Shred(fileId);
            return null;
        }

        return new StoredFile
        {
            Id = fileId,
            OrganizationId = batch.OrganizationId,
            Purpose = "batch_output",
            Filename = $"{batch.PublicId}_{kind}.jsonl",
            Bytes = bytes,
            Lines = lines,
            CreatedAt = now,
            ExpiresAt = now + retention,
        };
    }

    private static async Task WriteLineAsync(PipeWriter writer, byte[] line)
    {
        writer.Write(line);
        writer.Write("\n"u8);
        await writer.FlushAsync(); // waits while the encrypting reader is behind, so memory stays bounded
    }

    private static Guid DerivedId(Guid batchId, string kind)
    {
        Span<byte> input = stackalloc byte[16 + 16];
        batchId.TryWriteBytes(input);
        Encoding.ASCII.GetBytes(kind.PadRight(16), input[16..]);
        return new Guid(SHA256.HashData(input)[..16]);
    }

    private async Task ReleaseAsync(Guid batchId)
    {
        try
        {
            await using var scope = scopes.CreateAsyncScope();
            var db = scope.ServiceProvider.GetRequiredService<SluiceDbContext>();
            await db.Batches.Where(b => b.Id == batchId && b.LeaseOwner == _owner)
                .ExecuteUpdateAsync(u => u.SetProperty(b => b.LeaseOwner, (string?)null).SetProperty(b => b.LeaseUntil, (DateTimeOffset?)null));
        }
        catch (Exception ex)
        {
            RoundFailed(logger, ex.GetType().Name);
        }
    }

    private enum Stop
    {
        None,
        Cancelled,
        Expired,
        KeyRevoked,
        LeaseLost,
    }

    /// <summary>A batch's counters while it runs, and why it stopped dispatching.</summary>
    private sealed class Run(Batch batch)
    {
        private readonly Lock _lock = new();
        private int _completed;
        private int _failed;
        private long _input;
        private long _output;
        private long _cached;

        public int Total => batch.TotalRequests;

        public int Completed => _completed;

        public int Failed => _failed;

        public Stop Reason { get; private set; }

        public Action<Stop>? OnStop { get; set; }

        public void Stop(Stop reason)
        {
            lock (_lock)
            {
                if (reason == BatchRunner.Stop.None || Reason != BatchRunner.Stop.None)
                {
                    return;
                }

                Reason = reason;
            }

            OnStop?.Invoke(reason);
        }

        public void Count(IEnumerable<BatchJournal.Entry> entries)
        {
            foreach (var entry in entries)
            {
                Count(entry);
            }
        }

        public void Count(BatchJournal.Entry entry)
        {
            lock (_lock)
            {
                _ = entry.Success ? _completed++ : _failed++;
                _input += entry.PromptTokens;
                _output += entry.CompletionTokens;
                _cached += entry.CachedTokens;
            }
        }

        public (int Completed, int Failed, long Input, long Output, long Cached) Snapshot()
        {
            lock (_lock)
            {
                return (_completed, _failed, _input, _output, _cached);
            }
        }
    }

    [LoggerMessage(70, LogLevel.Warning, "Batch runner round failed ({ExceptionType}); will retry")]
    private static partial void RoundFailed(ILogger logger, string exceptionType);

    [LoggerMessage(71, LogLevel.Warning, "Batch {BatchId} stopped ({ExceptionType}); it will be resumed")]
    private static partial void BatchFailed(ILogger logger, Guid batchId, string exceptionType);

    [LoggerMessage(72, LogLevel.Warning, "Batch {BatchId} line {Line} failed ({ExceptionType}); it runs again when the batch resumes")]
    private static partial void LineFailed(ILogger logger, Guid batchId, int line, string exceptionType);

    [LoggerMessage(73, LogLevel.Warning, "Batch {BatchId}: the input file cannot be read any more ({ExceptionType}); cancelling")]
    private static partial void InputUnreadable(ILogger logger, Guid batchId, string exceptionType);

    [LoggerMessage(74, LogLevel.Information, "Batch {BatchId} {Outcome}: {Completed} completed, {Failed} failed")]
    private static partial void Finished(ILogger logger, Guid batchId, string outcome, int completed, int failed);
}

/// <summary>
/// The per-organization line semaphores of one replica, shared by the organization's batches running here. An entry
/// lives while a batch of its organization is dispatching (counted by <see cref="Enter"/> and <see cref="Leave"/>) and
/// is dropped with the last one, so the table holds only organizations with batches running now, and a semaphore in
/// use is never replaced (two batches of one organization always share one).
/// </summary>
internal sealed class OrganizationGates(int perOrganization)
{
    private readonly Dictionary<Guid, Entry> _gates = [];
    private readonly Lock _lock = new();

    public int Count
    {
        get
        {
            lock (_lock)
            {
                return _gates.Count;
            }
        }
    }

    public SemaphoreSlim Enter(Guid organizationId)
    {
        lock (_lock)
        {
            if (!_gates.TryGetValue(organizationId, out var entry))
            {
                _gates[organizationId] = entry = new Entry(new SemaphoreSlim(perOrganization, perOrganization));
            }

            entry.Users++;
            return entry.Semaphore;
        }
    }

    /// <summary>Called once per <see cref="Enter"/>, after every line that used the semaphore has released it.</summary>
    public void Leave(Guid organizationId)
    {
        lock (_lock)
        {
            if (_gates.TryGetValue(organizationId, out var entry) && --entry.Users == 0)
            {
                _gates.Remove(organizationId);
            }
        }
    }

    private sealed class Entry(SemaphoreSlim semaphore)
    {
        public SemaphoreSlim Semaphore { get; } = semaphore;

        public int Users { get; set; }
    }
}
