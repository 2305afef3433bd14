using Microsoft.EntityFrameworkCore;
using Sluice.Audit;
using Sluice.Hosting;
using Sluice.Storage;

namespace Sluice.Identity;

/// <summary>Platform operators: people who run the installation (not members of every organization).</summary>
public sealed class OperatorService(SluiceDbContext db, AuditLog audit)
{
    public async Task<IReadOnlyList<UserResponse>> ListAsync(CancellationToken cancellationToken) =>
        (await db.Users.AsNoTracking().Where(u => u.IsPlatformOperator).ToListAsync(cancellationToken))
            .OrderBy(u => u.CreatedAt)
            .Select(u => new UserResponse(u.Id, u.Email, u.DisplayName, true, u.CreatedAt))
            .ToList();

    public async Task<UserResponse> GrantAsync(GrantOperatorRequest request, CancellationToken cancellationToken)
    {
        var errors = new FieldErrors();
        var email = AccountService.ValidEmail(request.Email, "email", errors);
        errors.ThrowIfAny();
        var user = await db.Users.SingleOrDefaultAsync(u => u.Email == email, cancellationToken)
            ?? throw ApiProblem.Invalid("email", "no account has this email; the person must sign up first");
        user.IsPlatformOperator = true;
        audit.Record("operator.grant", $"user:{user.Id}");
        await db.SaveChangesAsync(cancellationToken);
        return new UserResponse(user.Id, user.Email, user.DisplayName, true, user.CreatedAt);
    }

    public async Task RevokeAsync(Guid userId, CancellationToken cancellationToken)
    {
        var user = await db.Users.SingleOrDefaultAsync(u => u.Id == userId && u.IsPlatformOperator, cancellationToken)
            ?? throw ApiProblem.NotFound("operator");
        if (!await db.Users.AnyAsync(u => u.IsPlatformOperator && u.Id != userId, cancellationToken))
        {
            throw ApiProblem.Conflict("userId", "the installation needs at least one platform operator");
        }

        user.IsPlatformOperator = false;
        audit.Record("operator.revoke", $"user:{userId}");
        await db.SaveChangesAsync(cancellationToken);
    }
}
