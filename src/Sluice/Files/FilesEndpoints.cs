using System.Globalization;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.WebUtilities;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using Microsoft.Net.Http.Headers;
using Sluice.Audit;
using Sluice.Gateway;
using Sluice.Identity;
using Sluice.Storage;

namespace Sluice.Files;

/// <summary>
/// <c>/v1/files</c> in OpenAI's shapes. Uploads stream from the request through AES-256-GCM to disk (never buffered
/// to a temporary file in plaintext); downloads decrypt chunk by chunk into the response.
/// </summary>
internal static class FilesEndpoints
{
    public static readonly IReadOnlyList<string> UploadPurposes = ["batch", "fine-tune", "user_data"];

    public static IEndpointRouteBuilder MapFiles(this IEndpointRouteBuilder endpoints)
    {
        var files = endpoints.MapGroup("/v1/files").WithTags("files").RequireApiKey(KeyScopes.Inference | KeyScopes.Batch);
        files.MapPost("", UploadAsync);
        files.MapGet("", ListAsync);
        files.MapGet("/{fileId}", RetrieveAsync);
        files.MapDelete("/{fileId}", DeleteAsync);
        files.MapGet("/{fileId}/content", ContentAsync);
        return endpoints;
    }

    private static async Task UploadAsync(
        HttpContext context, FileStore store, SluiceDbContext db, AuditLog audit, TimeProvider time,
        IOptions<FilesOptions> options, IOptions<Batches.BatchesOptions> batches, OrganizationPolicies policies)
    {
        var caller = context.Caller();
        var orgId = caller.KeyOrganizationId!.Value;
        var settings = options.Value;
        if (!MediaTypeHeaderValue.TryParse(context.Request.ContentType, out var contentType)
            || !contentType.MediaType.Equals("multipart/form-data", StringComparison.OrdinalIgnoreCase)
            || HeaderUtilities.RemoveQuotes(contentType.Boundary).Value is not { Length: > 0 and <= 200 } boundary)
        {
            throw OpenAiException.Invalid("Upload the file as multipart/form-data with the fields 'file' and 'purpose'.");
        }

        if (context.Features.Get<IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } size)
        {
            size.MaxRequestBodySize = settings.MaxFileBytes + (1024 * 1024);
        }

        var id = Guid.CreateVersion7(time.GetUtcNow());
        string? purpose = null, filename = null, anchor = null, seconds = null;
        long bytes = 0;
        var scanner = new JsonlScanner(8 * 1024 * 1024);
        var stored = false;
        try
        {
            var reader = new MultipartReader(boundary, context.Request.Body) { HeadersLengthLimit = 16 * 1024 };
            while (await ReadSectionAsync(reader, context.RequestAborted) is { } section)
            {
                if (!ContentDispositionHeaderValue.TryParse(section.ContentDisposition, out var disposition) || !(disposition.IsFormDisposition() || disposition.IsFileDisposition()))
                {
                    continue;
                }

                var name = HeaderUtilities.RemoveQuotes(disposition.Name).Value;
                if (name == "file")
                {
                    if (stored)
                    {
                        throw OpenAiException.Invalid("Send exactly one 'file' field.", "file");
                    }

                    filename = HeaderUtilities.RemoveQuotes(disposition.FileNameStar.HasValue ? disposition.FileNameStar : disposition.FileName).Value;
                    filename = string.IsNullOrWhiteSpace(filename) ? "upload" : Path.GetFileName(filename);
                    if (filename.Length > 255)
                    {
                        throw OpenAiException.Invalid("The file name must be at most 255 characters.", "file");
                    }

                    stored = true;
                    try
                    {
                        bytes = await store.WriteAsync(id, orgId, section.Body, settings.MaxFileBytes, scanner.Observe, context.RequestAborted);
                    }
                    catch (FileTooLargeException)
                    {
                        stored = false;
                        throw new OpenAiException(413, $"The file is larger than the limit of {settings.MaxFileBytes} bytes.", "invalid_request_error", "file_too_large", "file");
                    }

                    scanner.Complete();
                }
                else if (name is "purpose" or "expires_after[anchor]" or "expires_after[seconds]")
                {
                    var value = await ReadFieldAsync(section.Body, context.RequestAborted);
                    _ = name switch
                    {
                        "purpose" => purpose = value,
                        "expires_after[anchor]" => anchor = value,
                        _ => seconds = value,
                    };
                }
            }

            if (!stored)
            {
                throw OpenAiException.Invalid("The 'file' field is required.", "file");
            }

            if (purpose is null || !UploadPurposes.Contains(purpose))
            {
                throw OpenAiException.Invalid($"'purpose' must be one of: {string.Join(", ", UploadPurposes)}.", "purpose");
            }

            if (purpose == "fine-tune" && !(await policies.OrganizationAsync(orgId, context.RequestAborted)).AllowsTrainingRoutes)
            {
                // C04: a training dataset is content flowing to training; it needs the organization's recorded opt-in.
                throw new OpenAiException(403,
                    "Fine-tuning uses your content for training, and your organization has not consented to that. An owner or admin records consent with PUT /api/v1/orgs/{orgId}/consents {\"purpose\":\"training\",\"granted\":true}.",
                    "invalid_request_error", "training_consent_required", "purpose");
            }

            var now = time.GetUtcNow();
            var expiresAt = now + settings.Retention;
            if (anchor is not null || seconds is not null)
            {
                if (anchor != "created_at" || !long.TryParse(seconds, NumberStyles.None, CultureInfo.InvariantCulture, out var after) || after is < 3600 or > 2_592_000)
                {
                    throw OpenAiException.Invalid("'expires_after' needs anchor 'created_at' and seconds between 3600 and 2592000.", "expires_after");
                }

                expiresAt = now + TimeSpan.FromSeconds(Math.Min(after, (long)settings.Retention.TotalSeconds));
            }

            if (purpose == "batch")
            {
                var limits = batches.Value;
                if (scanner.FirstInvalidLine is { } line)
                {
                    throw OpenAiException.Invalid($"A batch file must be JSONL: line {line} is not a JSON object.", "file", "invalid_file_format");
                }

                if (scanner.Lines == 0)
                {
                    throw OpenAiException.Invalid("The batch file has no requests.", "file", "invalid_file_format");
                }

                if (scanner.Lines > limits.MaxLines || bytes > limits.MaxInputBytes)
                {
                    throw OpenAiException.Invalid($"A batch file may hold at most {limits.MaxLines} requests and {limits.MaxInputBytes} bytes.", "file", "file_too_large");
                }
            }

            var file = new StoredFile
            {
                Id = id,
                OrganizationId = orgId,
                CreatedByKeyId = caller.KeyId,
                Purpose = purpose,
                Filename = filename!,
                Bytes = bytes,
                Lines = purpose == "batch" ? scanner.Lines : 0,
                CreatedAt = now,
                ExpiresAt = expiresAt,
            };
            db.Files.Add(file);
            audit.Record("file.upload", $"{file.PublicId} {purpose} {bytes}", orgId);
            await db.SaveChangesAsync(context.RequestAborted);
            stored = false; // kept
            await OpenAiJson.WriteAsync(context, json => WriteFile(json, file));
        }
        catch (Exception ex) when (ex is IOException or OperationCanceledException && context.RequestAborted.IsCancellationRequested)
        {
            // The client left mid-upload; the finally shreds what was written.
        }
        catch (Exception ex) when (ex is InvalidDataException or BadHttpRequestException { StatusCode: 400 })
        {
            throw OpenAiException.Invalid("The multipart body could not be read.", "file");
        }
        finally
        {
            if (stored)
            {
                store.Shred(id);
            }
        }
    }

    private static async Task<MultipartSection?> ReadSectionAsync(MultipartReader reader, CancellationToken cancellationToken)
    {
        try
        {
            return await reader.ReadNextSectionAsync(cancellationToken);
        }
        catch (BadHttpRequestException ex) when (ex.StatusCode == 413)
        {
            throw new OpenAiException(413, "The upload is larger than the file size limit.", "invalid_request_error", "file_too_large", "file");
        }
    }

    private static async Task<string> ReadFieldAsync(Stream body, CancellationToken cancellationToken)
    {
        var buffer = new byte[1025];
        var length = await body.ReadAtLeastAsync(buffer, buffer.Length, throwOnEndOfStream: false, cancellationToken);
        return length > 1024
            ? throw OpenAiException.Invalid("A form field other than 'file' is longer than 1024 bytes.")
            : Encoding.UTF8.GetString(buffer, 0, length).Trim();
    }

    private static async Task ListAsync(HttpContext context, SluiceDbContext db, string? purpose, int? limit, string? order, string? after)
    {
        var orgId = context.Caller().KeyOrganizationId!.Value;
        if (limit is < 1 or > 10_000)
        {
            throw OpenAiException.Invalid("'limit' must be between 1 and 10000.", "limit");
        }

        if (order is not (null or "asc" or "desc"))
        {
            throw OpenAiException.Invalid("'order' must be 'asc' or 'desc'.", "order");
        }

        var query = db.Files.AsNoTracking().Where(f => f.OrganizationId == orgId);
        if (purpose is not null)
        {
            query = query.Where(f => f.Purpose == purpose);
        }

        var descending = order != "asc";
        if (after is not null)
        {
            if (!StoredFile.TryParseId(after, out var afterId))
            {
                throw OpenAiException.Invalid("'after' must be a file id from a previous page.", "after");
            }

            query = descending ? query.Where(f => f.Id.CompareTo(afterId) < 0) : query.Where(f => f.Id.CompareTo(afterId) > 0);
        }

        var take = limit ?? 10_000;
        var page = await (descending ? query.OrderByDescending(f => f.Id) : query.OrderBy(f => f.Id)).Take(take + 1).ToListAsync(context.RequestAborted);
        var more = page.Count > take;
        var files = page.Take(take).ToList();
        await OpenAiJson.WriteListAsync(context, files, f => f.PublicId, more, WriteFile);
    }

    private static async Task RetrieveAsync(HttpContext context, string fileId, SluiceDbContext db)
    {
        var file = await FindAsync(context, db, fileId);
        await OpenAiJson.WriteAsync(context, json => WriteFile(json, file));
    }

    private static async Task DeleteAsync(HttpContext context, string fileId, SluiceDbContext db, FileStore store, AuditLog audit)
    {
        var file = await FindAsync(context, db, fileId);

        // Crypto-shredding: the data key is destroyed before the ciphertext and the row go.
        store.Shred(file.Id);
        db.Files.Remove(file);
        audit.Record("file.delete", file.PublicId, file.OrganizationId);
        await db.SaveChangesAsync(context.RequestAborted);
        await OpenAiJson.WriteAsync(context, json =>
        {
            json.WriteStartObject();
            json.WriteString("id", file.PublicId);
            json.WriteString("object", "file");
            json.WriteBoolean("deleted", true);
            json.WriteEndObject();
        });
    }

    private static async Task ContentAsync(HttpContext context, string fileId, SluiceDbContext db, FileStore store)
    {
        var file = await FindAsync(context, db, fileId);
        Stream content;
        try
        {
            content = store.OpenRead(file.Id, file.OrganizationId);
        }
        catch (FileNotFoundException)
        {
            throw new OpenAiException(404, $"The content of '{file.PublicId}' is no longer available.", "invalid_request_error", "file_not_found", "file_id");
        }

        await using (content)
        {
            context.Response.StatusCode = 200;
            context.Response.ContentType = file.Purpose is "batch" or "batch_output" ? "application/jsonl" : "application/octet-stream";
            context.Response.ContentLength = file.Bytes;
            await content.CopyToAsync(context.Response.Body, EncryptedFile.ChunkSize, context.RequestAborted);
        }
    }

    private static async Task<StoredFile> FindAsync(HttpContext context, SluiceDbContext db, string fileId)
    {
        var orgId = context.Caller().KeyOrganizationId!.Value;
        var now = context.RequestServices.GetRequiredService<TimeProvider>().GetUtcNow();

        // Another organization's file, an expired one and a missing one look the same.
        return StoredFile.TryParseId(fileId, out var id)
            && await db.Files.FirstOrDefaultAsync(f => f.Id == id && f.OrganizationId == orgId && f.ExpiresAt > now, context.RequestAborted) is { } file
            ? file
            : throw new OpenAiException(404, $"No such file: '{(fileId.Length > 64 ? fileId[..64] : fileId)}'.", "invalid_request_error", "file_not_found", "file_id");
    }

    public static void WriteFile(Utf8JsonWriter json, StoredFile file)
    {
        json.WriteStartObject();
        json.WriteString("id", file.PublicId);
        json.WriteString("object", "file");
        json.WriteNumber("bytes", file.Bytes);
        json.WriteNumber("created_at", file.CreatedAt.ToUnixTimeSeconds());
        json.WriteNumber("expires_at", file.ExpiresAt.ToUnixTimeSeconds());
        json.WriteString("filename", file.Filename);
        json.WriteString("purpose", file.Purpose);
        json.WriteString("status", "processed");
        json.WriteNull("status_details");
        json.WriteEndObject();
    }
}
