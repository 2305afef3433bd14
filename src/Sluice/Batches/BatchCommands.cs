using Microsoft.EntityFrameworkCore;
using Sluice.Audit;
using Sluice.Files;
using Sluice.Gateway;
using Sluice.Storage;

namespace Sluice.Batches;

/// <summary>
/// Creating and cancelling batches, for <c>/v1/batches</c> and the console alike. A batch runs under an API key of its
/// organization (its scopes, models, limits and spend limits apply to every line). Refusals are
/// <see cref="OpenAiException"/>s whose <c>param</c> names the field.
/// </summary>
public sealed class BatchCommands(SluiceDbContext db, AuditLog audit, TimeProvider time, BatchRunner runner)
{
    public async Task<Batch> CreateAsync(Guid orgId, Guid keyId, string? inputFileId, string endpoint, string? metadata, long? outputExpiresAfter, CancellationToken ct)
    {
        var now = time.GetUtcNow();
        if (!StoredFile.TryParseId(inputFileId, out var fileId))
        {
            throw OpenAiException.Invalid("'input_file_id' is required: the id of a file uploaded with purpose 'batch' (file-…).", "input_file_id");
        }

        if (await db.Files.AsNoTracking().FirstOrDefaultAsync(f => f.Id == fileId && f.OrganizationId == orgId && f.ExpiresAt > now, ct) is not { } file)
        {
            throw new OpenAiException(404, "No such file: 'input_file_id' must name a file you uploaded.", "invalid_request_error", "file_not_found", "input_file_id");
        }

        if (file.Purpose != "batch")
        {
            throw OpenAiException.Invalid($"The input file must be uploaded with purpose 'batch', not '{file.Purpose}'.", "input_file_id", "invalid_file_purpose");
        }

        var batch = new Batch
        {
            Id = Guid.CreateVersion7(now),
            OrganizationId = orgId,
            KeyId = keyId,
            Endpoint = endpoint,
            InputFileId = file.Id,
            CompletionWindow = "24h",
            Status = Batch.Validating,
            Metadata = metadata,
            OutputExpiresAfterSeconds = outputExpiresAfter,
            TotalRequests = 0,
            CreatedAt = now,
            ExpiresAt = now.AddHours(24),
        };
        db.Batches.Add(batch);
        audit.Record("batch.create", $"{batch.PublicId} {endpoint} {file.PublicId}", orgId);
        await db.SaveChangesAsync(ct);
        runner.Nudge();
        return batch;
    }

    /// <summary>Asks a validating or running batch to stop; one already stopping or stopped is left as it is; others are a 409.</summary>
    public async Task<Batch> CancelAsync(Batch batch, CancellationToken ct)
    {
        if (batch.Status is Batch.Validating or Batch.InProgress)
        {
            var now = time.GetUtcNow();
            var changed = await db.Batches
                .Where(b => b.Id == batch.Id && (b.Status == Batch.Validating || b.Status == Batch.InProgress))
                .ExecuteUpdateAsync(u => u.SetProperty(b => b.Status, Batch.Cancelling).SetProperty(b => b.CancellingAt, now), ct);
            if (changed == 1)
            {
                audit.Record("batch.cancel", batch.PublicId, batch.OrganizationId);
                await db.SaveChangesAsync(ct);
                runner.Nudge();
            }

            return await db.Batches.AsNoTracking().SingleAsync(b => b.Id == batch.Id, ct);
        }

        return batch.Status is Batch.Cancelling or Batch.Cancelled
            ? batch
            : throw new OpenAiException(409, $"A batch that is '{batch.Status}' cannot be cancelled.", "invalid_request_error", "batch_not_cancellable");
    }
}
