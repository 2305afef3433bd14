using System.Security.Cryptography;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using Sluice.Audit;
using Sluice.Crypto;
using Sluice.Storage;

namespace Sluice.Identity;

/// <summary>
/// On the first start against an empty database, creates the platform operator with a random password, stores
/// only its bcrypt hash and shows the password once. Later starts, and every replica but the one that won the
/// insert, do nothing.
/// </summary>
internal sealed class OperatorBootstrap(
    IServiceScopeFactory scopes,
    IOptions<IdentityOptions> options,
    IOneTimeCredentialWriter credentialWriter,
    TimeProvider time,
    ILogger<OperatorBootstrap> logger) : IHostedService
{
    private const string PasswordAlphabet = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
    private const int PasswordLength = 24;

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<SluiceDbContext>();
        if (await db.Users.AnyAsync(u => u.IsPlatformOperator, cancellationToken))
        {
            return;
        }

        var password = RandomNumberGenerator.GetString(PasswordAlphabet, PasswordLength);
        var email = User.NormalizeEmail(options.Value.OperatorEmail);
        var hash = await Task.Run(() => Bcrypt.Hash(password, options.Value.PasswordHashCost), cancellationToken);
        var user = new User
        {
            Id = Guid.CreateVersion7(time.GetUtcNow()),
            Email = email,
            PasswordHash = hash,
            IsPlatformOperator = true,
            CreatedAt = time.GetUtcNow(),
        };
        db.Users.Add(user);
        scope.ServiceProvider.GetRequiredService<AuditLog>().Record("operator.bootstrap", $"user:{user.Id}", actorOverride: "system");
        try
        {
            await db.SaveChangesAsync(cancellationToken);
        }
        catch (DbUpdateException)
        {
            if (!await OperatorExistsAsync(scopes, cancellationToken))
            {
                throw;
            }

            // Another replica bootstrapped at the same moment; it shows the credential, this one stays quiet.
            IdentityLog.OperatorCreatedElsewhere(logger);
            return;
        }

        IdentityLog.OperatorCreated(logger, user.Id);
        credentialWriter.Write("Sluice platform operator created", email, password);
    }

    private static async Task<bool> OperatorExistsAsync(IServiceScopeFactory scopes, CancellationToken cancellationToken)
    {
        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<SluiceDbContext>();
        return await db.Users.AnyAsync(u => u.IsPlatformOperator, cancellationToken);
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
