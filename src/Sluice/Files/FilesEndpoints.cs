using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.WebUtilities;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using Microsoft.Net.Http.Headers;
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
    public static IReadOnlyList<string> UploadPurposes => FileUploads.Purposes;

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

    private static async Task UploadAsync(HttpContext context, FileStore store, FileUploads uploads, IOptions<FilesOptions> options, TimeProvider time)
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

                    filename = FileUploads.Filename(HeaderUtilities.RemoveQuotes(disposition.FileNameStar.HasValue ? disposition.FileNameStar : disposition.FileName).Value);
                    stored = true;
                    try
                    {
                        bytes = await uploads.WriteAsync(id, orgId, section.Body, scanner, context.RequestAborted);
                    }
                    catch (OpenAiException) when (!context.RequestAborted.IsCancellationRequested)
                    {
                        stored = false;
                        throw;
                    }
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

            var file = await uploads.AcceptAsync(id, orgId, caller.KeyId, purpose, filename!, bytes, scanner, anchor, seconds, context.RequestAborted);
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

    private static async Task DeleteAsync(HttpContext context, string fileId, SluiceDbContext db, FileUploads uploads)
    {
        var file = await FindAsync(context, db, fileId);
        await uploads.DeleteAsync(file, context.RequestAborted);
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
