using System.Globalization;
using Microsoft.Extensions.Options;
using Sluice.Audit;
using Sluice.Gateway;
using Sluice.Storage;

namespace Sluice.Files;

/// <summary>
/// Accepting an uploaded file, for <c>/v1/files</c> and the console alike: the bytes stream through AES-256-GCM to disk
/// (<see cref="FileStore"/>), then the purpose, training consent, expiry and (for batch files) the JSONL shape and
/// limits are checked; a file refused on any of them is shredded and nothing is recorded. Refusals are
/// <see cref="OpenAiException"/>s whose <c>param</c> names the form field.
/// </summary>
public sealed class FileUploads(
    SluiceDbContext db, FileStore store, AuditLog audit, TimeProvider time, IOptions<FilesOptions> options,
    IOptions<Batches.BatchesOptions> batches, OrganizationPolicies policies)
{
    public static readonly IReadOnlyList<string> Purposes = ["batch", "fine-tune", "user_data"];

    public long MaxFileBytes => options.Value.MaxFileBytes;

    /// <summary>Stores a whole file whose name and purpose are known up front (the console's upload form).</summary>
    public async Task<StoredFile> UploadAsync(Guid orgId, Guid? keyId, string? filename, string? purpose, Stream content, CancellationToken ct)
    {
        var id = Guid.CreateVersion7(time.GetUtcNow());
        var name = Filename(filename);
        if (purpose is null || !Purposes.Contains(purpose))
        {
            throw OpenAiException.Invalid($"'purpose' must be one of: {string.Join(", ", Purposes)}.", "purpose");
        }

        var scanner = new JsonlScanner(8 * 1024 * 1024);
        var kept = false;
        try
        {
            var bytes = await WriteAsync(id, orgId, content, scanner, ct);
            var file = await AcceptAsync(id, orgId, keyId, purpose, name, bytes, scanner, null, null, ct);
            kept = true;
            return file;
        }
        finally
        {
            if (!kept)
            {
                store.Shred(id);
            }
        }
    }

    /// <summary>The file name as stored: the last path segment, "upload" when none, at most 255 characters.</summary>
    public static string Filename(string? given)
    {
        var name = string.IsNullOrWhiteSpace(given) ? "upload" : Path.GetFileName(given);
        name = string.IsNullOrWhiteSpace(name) ? "upload" : name;
        return name.Length > 255 ? throw OpenAiException.Invalid("The file name must be at most 255 characters.", "file") : name;
    }

    /// <summary>Encrypts the bytes to the store under the file's id, observed by <paramref name="scanner"/>; too large is a 413 on 'file'.</summary>
    public async Task<long> WriteAsync(Guid id, Guid orgId, Stream content, JsonlScanner scanner, CancellationToken ct)
    {
        try
        {
            var bytes = await store.WriteAsync(id, orgId, content, options.Value.MaxFileBytes, scanner.Observe, ct);
            scanner.Complete();
            return bytes;
        }
        catch (FileTooLargeException)
        {
            throw new OpenAiException(413, $"The file is larger than the limit of {options.Value.MaxFileBytes} bytes.", "invalid_request_error", "file_too_large", "file");
        }
    }

    /// <summary>Checks a written file and records it (the caller shreds the bytes when this throws).</summary>
    public async Task<StoredFile> AcceptAsync(Guid id, Guid orgId, Guid? keyId, string? purpose, string filename, long bytes, JsonlScanner scanner,
        string? anchor, string? seconds, CancellationToken ct)
    {
        var settings = options.Value;
        if (purpose is null || !Purposes.Contains(purpose))
        {
            throw OpenAiException.Invalid($"'purpose' must be one of: {string.Join(", ", Purposes)}.", "purpose");
        }

        if (purpose == "fine-tune" && !(await policies.OrganizationAsync(orgId, ct)).AllowsTrainingRoutes)
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
            CreatedByKeyId = keyId,
            Purpose = purpose,
            Filename = filename,
            Bytes = bytes,
            Lines = purpose == "batch" ? scanner.Lines : 0,
            CreatedAt = now,
            ExpiresAt = expiresAt,
        };
        db.Files.Add(file);
        audit.Record("file.upload", $"{file.PublicId} {purpose} {bytes}", orgId);
        await db.SaveChangesAsync(ct);
        return file;
    }

    /// <summary>Deletes a file: the data key is destroyed before the ciphertext and the row go (crypto-shredding).</summary>
    public async Task DeleteAsync(StoredFile file, CancellationToken ct)
    {
        store.Shred(file.Id);
        db.Files.Remove(file);
        audit.Record("file.delete", file.PublicId, file.OrganizationId);
        await db.SaveChangesAsync(ct);
    }
}
