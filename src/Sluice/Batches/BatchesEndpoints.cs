using System.Text.Json;
using Microsoft.EntityFrameworkCore;
using Sluice.Files;
using Sluice.Gateway;
using Sluice.Hosting;
using Sluice.Identity;
using Sluice.Storage;

namespace Sluice.Batches;

/// <summary><c>/v1/batches</c> in OpenAI's shapes: create, retrieve, list, cancel. The work itself is <see cref="BatchRunner"/>'s.</summary>
internal static class BatchesEndpoints
{
    public static readonly IReadOnlyList<string> SupportedEndpoints = ["/v1/chat/completions", "/v1/embeddings", "/v1/completions"];

    /// <summary>A create body is a file id, an endpoint and metadata: a few KiB at most.</summary>
    private const int MaxCreateBytes = 64 * 1024;

    public static IEndpointRouteBuilder MapBatches(this IEndpointRouteBuilder endpoints)
    {
        var batches = endpoints.MapGroup("/v1/batches").WithTags("batches").RequireApiKey(KeyScopes.Inference | KeyScopes.Batch);
        batches.MapPost("", CreateAsync);
        batches.MapGet("", ListAsync);
        batches.MapGet("/{batchId}", RetrieveAsync);
        batches.MapPost("/{batchId}/cancel", CancelAsync);
        return endpoints;
    }

    private static async Task CreateAsync(HttpContext context, BatchCommands commands)
    {
        var caller = context.Caller();
        var orgId = caller.KeyOrganizationId!.Value;
        JsonElement request;
        try
        {
            // Text first: invalid UTF-8 or a lone surrogate escape (in metadata, say) is a 400 invalid_encoding, not a
            // JsonException here or an InvalidOperationException (a 500) when a string is read later.
            var body = await Gateway.Pipeline.BodyReading.ReadAllAsync(context.Request.Body, context.Request.ContentLength, MaxCreateBytes, context.RequestAborted);
            InferenceRequest.CheckText(body);
            using var document = JsonDocument.Parse(body);
            request = document.RootElement.Clone();
        }
        catch (InvalidDataException)
        {
            throw new OpenAiException(413, $"The body is larger than {MaxCreateBytes} bytes; a batch is created from an uploaded file, not an inline body.", "invalid_request_error", "request_too_large");
        }
        catch (JsonException)
        {
            throw OpenAiException.Invalid("The body must be a JSON object with input_file_id, endpoint and completion_window.");
        }

        if (request.ValueKind != JsonValueKind.Object)
        {
            throw OpenAiException.Invalid("The body must be a JSON object with input_file_id, endpoint and completion_window.");
        }

        var endpoint = String(request, "endpoint");
        if (endpoint is null || !SupportedEndpoints.Contains(endpoint))
        {
            throw OpenAiException.Invalid($"'endpoint' must be one of: {string.Join(", ", SupportedEndpoints)}.", "endpoint");
        }

        if (String(request, "completion_window") != "24h")
        {
            throw OpenAiException.Invalid("'completion_window' must be '24h'.", "completion_window");
        }

        var metadata = Metadata(request);
        long? outputExpiresAfter = null;
        if (request.TryGetProperty("output_expires_after", out var expires) && expires.ValueKind != JsonValueKind.Null)
        {
            if (expires.ValueKind != JsonValueKind.Object || String(expires, "anchor") != "created_at"
                || !expires.TryGetProperty("seconds", out var seconds) || !seconds.TryGetInt64(out var value) || value is < 3600 or > 2_592_000)
            {
                throw OpenAiException.Invalid("'output_expires_after' needs anchor 'created_at' and seconds between 3600 and 2592000.", "output_expires_after");
            }

            outputExpiresAfter = value;
        }

        var batch = await commands.CreateAsync(orgId, caller.KeyId!.Value, String(request, "input_file_id"), endpoint, metadata, outputExpiresAfter, context.RequestAborted);
        await OpenAiJson.WriteAsync(context, json => WriteBatch(json, batch));
    }

    private static async Task RetrieveAsync(HttpContext context, string batchId, SluiceDbContext db)
    {
        var batch = await FindAsync(context, db, batchId);
        await OpenAiJson.WriteAsync(context, json => WriteBatch(json, batch));
    }

    private static async Task ListAsync(HttpContext context, SluiceDbContext db, int? limit, string? after)
    {
        var orgId = context.Caller().KeyOrganizationId!.Value;
        if (limit is < 1 or > 100)
        {
            throw OpenAiException.Invalid("'limit' must be between 1 and 100.", "limit");
        }

        var query = db.Batches.AsNoTracking().Where(b => b.OrganizationId == orgId);
        if (after is not null)
        {
            if (!Batch.TryParseId(after, out var afterId))
            {
                throw OpenAiException.Invalid("'after' must be a batch id from a previous page.", "after");
            }

            query = query.Where(b => b.Id.CompareTo(afterId) < 0);
        }

        var take = limit ?? 20;
        var page = await query.OrderByDescending(b => b.Id).Take(take + 1).ToListAsync(context.RequestAborted);
        var batches = page.Take(take).ToList();
        await OpenAiJson.WriteListAsync(context, batches, b => b.PublicId, page.Count > take, WriteBatch);
    }

    private static async Task CancelAsync(HttpContext context, string batchId, SluiceDbContext db, BatchCommands commands)
    {
        var batch = await commands.CancelAsync(await FindAsync(context, db, batchId), context.RequestAborted);
        await OpenAiJson.WriteAsync(context, json => WriteBatch(json, batch));
    }

    private static async Task<Batch> FindAsync(HttpContext context, SluiceDbContext db, string batchId)
    {
        var orgId = context.Caller().KeyOrganizationId!.Value;
        return Batch.TryParseId(batchId, out var id)
            && await db.Batches.AsNoTracking().FirstOrDefaultAsync(b => b.Id == id && b.OrganizationId == orgId, context.RequestAborted) is { } batch
            ? batch
            : throw new OpenAiException(404, $"No such batch: '{(batchId.Length > 64 ? batchId[..64] : batchId)}'.", "invalid_request_error", "batch_not_found", "batch_id");
    }

    private static string? String(JsonElement element, string name) =>
        element.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.String ? value.GetString() : null;

    private static string? Metadata(JsonElement request)
    {
        if (!request.TryGetProperty("metadata", out var metadata) || metadata.ValueKind == JsonValueKind.Null)
        {
            return null;
        }

        if (metadata.ValueKind != JsonValueKind.Object || metadata.EnumerateObject().Count() > 16
            || metadata.EnumerateObject().Any(p => p.Name.Length > 64 || p.Value.ValueKind != JsonValueKind.String || p.Value.GetString()!.Length > 512))
        {
            throw OpenAiException.Invalid("'metadata' must be an object of at most 16 string values (keys up to 64 characters, values up to 512).", "metadata");
        }

        return metadata.GetRawText();
    }

    public static void WriteBatch(Utf8JsonWriter json, Batch batch)
    {
        static void Time(Utf8JsonWriter json, string name, DateTimeOffset? value)
        {
            if (value is { } time)
            {
                json.WriteNumber(name, time.ToUnixTimeSeconds());
            }
            else
            {
                json.WriteNull(name);
            }
        }

        json.WriteStartObject();
        json.WriteString("id", batch.PublicId);
        json.WriteString("object", "batch");
        json.WriteString("endpoint", batch.Endpoint);
        if (batch.Model is not null)
        {
            json.WriteString("model", batch.Model);
        }

        if (batch.Errors is null)
        {
            json.WriteNull("errors");
        }
        else
        {
            json.WritePropertyName("errors");
            json.WriteRawValue(batch.Errors, skipInputValidation: true);
        }

        json.WriteString("input_file_id", PublicId.Format(StoredFile.IdPrefix, batch.InputFileId));
        json.WriteString("completion_window", batch.CompletionWindow);
        json.WriteString("status", batch.Status);
        json.WriteString("output_file_id", batch.OutputFileId is { } output ? PublicId.Format(StoredFile.IdPrefix, output) : null);
        json.WriteString("error_file_id", batch.ErrorFileId is { } error ? PublicId.Format(StoredFile.IdPrefix, error) : null);
        json.WriteNumber("created_at", batch.CreatedAt.ToUnixTimeSeconds());
        Time(json, "in_progress_at", batch.InProgressAt);
        Time(json, "expires_at", batch.ExpiresAt);
        Time(json, "finalizing_at", batch.FinalizingAt);
        Time(json, "completed_at", batch.CompletedAt);
        Time(json, "failed_at", batch.FailedAt);
        Time(json, "expired_at", batch.ExpiredAt);
        Time(json, "cancelling_at", batch.CancellingAt);
        Time(json, "cancelled_at", batch.CancelledAt);
        json.WriteStartObject("request_counts");
        json.WriteNumber("total", batch.TotalRequests);
        json.WriteNumber("completed", batch.CompletedRequests);
        json.WriteNumber("failed", batch.FailedRequests);
        json.WriteEndObject();
        json.WriteStartObject("usage");
        json.WriteNumber("input_tokens", batch.InputTokens);
        json.WriteStartObject("input_tokens_details");
        json.WriteNumber("cached_tokens", batch.CachedTokens);
        json.WriteEndObject();
        json.WriteNumber("output_tokens", batch.OutputTokens);
        json.WriteStartObject("output_tokens_details");
        json.WriteNumber("reasoning_tokens", 0);
        json.WriteEndObject();
        json.WriteNumber("total_tokens", batch.InputTokens + batch.OutputTokens);
        json.WriteEndObject();
        if (batch.Metadata is null)
        {
            json.WriteNull("metadata");
        }
        else
        {
            json.WritePropertyName("metadata");
            json.WriteRawValue(batch.Metadata, skipInputValidation: true);
        }

        json.WriteEndObject();
    }
}
