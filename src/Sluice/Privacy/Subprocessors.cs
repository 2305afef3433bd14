using Microsoft.EntityFrameworkCore;
using Sluice.Audit;
using Sluice.Hosting;
using Sluice.Storage;

namespace Sluice.Privacy;

public sealed record SubprocessorRequest(string? Name, string? Purpose, string? Location);

public sealed record SubprocessorResponse(Guid Id, string Name, string Purpose, string Location, DateTimeOffset CreatedAt, DateTimeOffset UpdatedAt)
{
    public static SubprocessorResponse From(Subprocessor s) => new(s.Id, s.Name, s.Purpose, s.Location, s.CreatedAt, s.UpdatedAt);
}

/// <summary>The registry of service providers that receive personal data (C40), kept by operators and published in the policy.</summary>
public sealed class SubprocessorService(SluiceDbContext db, AuditLog audit, TimeProvider time)
{
    public async Task<List<SubprocessorResponse>> ListAsync(CancellationToken cancellationToken) =>
        (await db.Subprocessors.AsNoTracking().ToListAsync(cancellationToken)).OrderBy(s => s.Name, StringComparer.Ordinal).Select(SubprocessorResponse.From).ToList();

    public async Task<SubprocessorResponse> CreateAsync(SubprocessorRequest request, CancellationToken cancellationToken)
    {
        var (name, purpose, location) = Validate(request, partial: false);
        if (await db.Subprocessors.AnyAsync(s => s.Name == name, cancellationToken))
        {
            throw ApiProblem.Conflict("name", "a subprocessor with this name is already listed");
        }

        var now = time.GetUtcNow();
        var entity = new Subprocessor { Id = Guid.CreateVersion7(now), Name = name!, Purpose = purpose!, Location = location!, CreatedAt = now, UpdatedAt = now };
        db.Subprocessors.Add(entity);
        audit.Record("subprocessor.create", $"subprocessor:{entity.Id}");
        await db.SaveChangesAsync(cancellationToken);
        return SubprocessorResponse.From(entity);
    }

    public async Task<SubprocessorResponse> UpdateAsync(Guid id, SubprocessorRequest request, CancellationToken cancellationToken)
    {
        var entity = await db.Subprocessors.SingleOrDefaultAsync(s => s.Id == id, cancellationToken) ?? throw ApiProblem.NotFound("subprocessor");
        var (name, purpose, location) = Validate(request, partial: true);
        if (name is not null && name != entity.Name && await db.Subprocessors.AnyAsync(s => s.Name == name, cancellationToken))
        {
            throw ApiProblem.Conflict("name", "a subprocessor with this name is already listed");
        }

        entity.Name = name ?? entity.Name;
        entity.Purpose = purpose ?? entity.Purpose;
        entity.Location = location ?? entity.Location;
        entity.UpdatedAt = time.GetUtcNow();
        audit.Record("subprocessor.update", $"subprocessor:{entity.Id}");
        await db.SaveChangesAsync(cancellationToken);
        return SubprocessorResponse.From(entity);
    }

    public async Task DeleteAsync(Guid id, CancellationToken cancellationToken)
    {
        var entity = await db.Subprocessors.SingleOrDefaultAsync(s => s.Id == id, cancellationToken) ?? throw ApiProblem.NotFound("subprocessor");
        db.Subprocessors.Remove(entity);
        audit.Record("subprocessor.delete", $"subprocessor:{entity.Id}");
        await db.SaveChangesAsync(cancellationToken);
    }

    private static (string? Name, string? Purpose, string? Location) Validate(SubprocessorRequest request, bool partial)
    {
        var errors = new FieldErrors();
        string? Field(string field, string? value, int max)
        {
            var trimmed = value?.Trim();
            if (string.IsNullOrEmpty(trimmed))
            {
                if (!partial || value is not null)
                {
                    errors.Add(field, "is required");
                }

                return null;
            }

            if (trimmed.Length > max)
            {
                errors.Add(field, $"must be at most {max} characters");
            }

            return trimmed;
        }

        var result = (Field("name", request.Name, 200), Field("purpose", request.Purpose, 500), Field("location", request.Location, 200));
        errors.ThrowIfAny();
        return result;
    }
}
