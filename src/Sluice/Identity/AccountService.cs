using System.Collections.Concurrent;
using System.Net.Mail;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using Sluice.Audit;
using Sluice.Crypto;
using Sluice.Hosting;
using Sluice.Storage;

namespace Sluice.Identity;

/// <summary>Accounts and sign-in: sign-up with age attestation, login with throttling and login events, sessions.</summary>
public sealed class AccountService(
    SluiceDbContext db,
    AuditLog audit,
    IOptions<IdentityOptions> options,
    LoginThrottle throttle,
    TimeProvider time,
    ILogger<AccountService> logger)
{
    // A real bcrypt hash of a random string at the cost real passwords are hashed with: an unknown email costs the same
    // time as a wrong password, so the answer's timing does not say whether an account exists.
    private static readonly ConcurrentDictionary<int, Lazy<string>> DecoyHashes = new();

    private static string DecoyHash(int cost) =>
        DecoyHashes.GetOrAdd(cost, c => new Lazy<string>(() => Bcrypt.Hash(SessionTokens.Create().AsSpan(0, 32), c))).Value;

    public async Task<User> SignUpAsync(SignUpRequest request, CancellationToken cancellationToken)
    {
        var settings = options.Value;
        if (!settings.AllowSignUp)
        {
            throw ApiProblem.Forbidden("Sign-up is closed on this installation; ask an operator or an organization admin for an invitation.");
        }

        var errors = new FieldErrors();
        var email = ValidEmail(request.Email, "email", errors);
        var name = request.Name?.Trim();
        if (string.IsNullOrEmpty(name))
        {
            errors.Add("name", "is required");
        }
        else if (name.Length > 200)
        {
            errors.Add("name", "must be at most 200 characters");
        }

        if (PasswordPolicy.Problem(request.Password, email, settings.MinimumPasswordLength) is { } passwordProblem)
        {
            errors.Add("password", passwordProblem);
        }

        if (request.AgeAttestation != true)
        {
            errors.Add("ageAttestation", $"you must confirm that you are at least {settings.MinimumAge} years old to use this service");
        }

        var today = DateOnly.FromDateTime(time.GetUtcNow().UtcDateTime);
        if (request.DateOfBirth is { } born && born.AddYears(settings.MinimumAge) > today)
        {
            errors.Add("dateOfBirth", $"you must be at least {settings.MinimumAge} years old to use this service");
        }

        errors.ThrowIfAny();
        if (await db.Users.AnyAsync(u => u.Email == email, cancellationToken))
        {
            throw ApiProblem.Conflict("email", "an account with this email already exists; sign in instead");
        }

        var now = time.GetUtcNow();
        var user = new User
        {
            Id = Guid.CreateVersion7(now),
            Email = email!,
            DisplayName = name,
            PasswordHash = Bcrypt.Hash(request.Password!, settings.PasswordHashCost),
            CreatedAt = now,
            AgeAttestedAt = now,
            AttestedMinimumAge = settings.MinimumAge,
        };
        db.Users.Add(user);
        audit.Record("user.signup", $"user:{user.Id}", actorOverride: $"user:{user.Id}");
        try
        {
            await db.SaveChangesAsync(cancellationToken);
        }
        catch (DbUpdateException)
        {
            // Two sign-ups with one email at the same moment: the unique index let one through.
            throw ApiProblem.Conflict("email", "an account with this email already exists; sign in instead");
        }

        return user;
    }

    /// <summary>Checks the credentials, records the attempt, and on success opens a session and returns its token.</summary>
    public async Task<(User User, Session Session, string Token)> LoginAsync(
        LoginRequest request, string? address, string? userAgent, CancellationToken cancellationToken)
    {
        var errors = new FieldErrors();
        if (string.IsNullOrWhiteSpace(request.Email))
        {
            errors.Add("email", "is required");
        }

        if (string.IsNullOrEmpty(request.Password))
        {
            errors.Add("password", "is required");
        }

        errors.ThrowIfAny();
        var email = User.NormalizeEmail(request.Email!);
        var now = time.GetUtcNow();
        var decision = throttle.TryAttempt(email, address);
        if (decision.RetryAfter is { } retryAfter)
        {
            await RecordAsync(null, "throttled", address, userAgent, cancellationToken);
            throw ApiProblem.TooManyRequests("Too many sign-in attempts from your network, for this account or in all; wait before trying again.", retryAfter);
        }

        if (decision.Delay > TimeSpan.Zero)
        {
            // Many attempts on this account from many networks: slowed, not locked, so its owner still gets in.
            await Task.Delay(decision.Delay, time, cancellationToken);
        }

        // A closed account (deletion requested) signs in no more; it answers like an unknown one.
        var user = await db.Users.SingleOrDefaultAsync(u => u.Email == email && u.ClosedAt == null, cancellationToken);
        var passwordMatches = Bcrypt.Verify(request.Password!, user?.PasswordHash ?? DecoyHash(options.Value.PasswordHashCost));
        if (user is null || !passwordMatches)
        {
            var outcome = user is null ? "unknown_account" : "wrong_password";
            await RecordAsync(user?.Id, outcome, address, userAgent, cancellationToken);
            IdentityLog.SignInRefused(logger, outcome);
            throw ApiProblem.Unauthorized("The email or password is incorrect.");
        }

        var token = SessionTokens.Create();
        var session = new Session
        {
            Id = Guid.CreateVersion7(now),
            TokenHash = SessionTokens.Hash(token),
            UserId = user.Id,
            CreatedAt = now,
            ExpiresAt = now + options.Value.SessionLifetime,
        };
        db.Sessions.Add(session);
        db.LoginEvents.Add(Event(user.Id, "success", address, userAgent, now));
        await db.SaveChangesAsync(cancellationToken);
        IdentityLog.SignedIn(logger, user.Id);
        return (user, session, token);
    }

    public async Task LogoutAsync(Guid sessionId, CancellationToken cancellationToken)
    {
        var now = time.GetUtcNow();
        await db.Sessions.Where(s => s.Id == sessionId && s.RevokedAt == null)
            .ExecuteUpdateAsync(set => set.SetProperty(s => s.RevokedAt, now), cancellationToken);
    }

    public async Task<MeResponse> MeAsync(Guid userId, CancellationToken cancellationToken)
    {
        var user = await db.Users.AsNoTracking().SingleOrDefaultAsync(u => u.Id == userId, cancellationToken)
            ?? throw ApiProblem.Unauthorized("The account no longer exists.");
        var memberships = await db.Memberships.AsNoTracking()
            .Where(m => m.UserId == userId)
            .Join(db.Organizations, m => m.OrganizationId, o => o.Id, (m, o) => new { o.Id, o.Name, m.Role })
            .ToListAsync(cancellationToken);
        return new MeResponse(user.Id, user.Email, user.DisplayName, user.IsPlatformOperator, user.CreatedAt,
            memberships.OrderBy(m => m.Name, StringComparer.Ordinal).Select(m => new MembershipSummary(m.Id, m.Name, Roles.Format(m.Role))).ToList());
    }

    public async Task UpdateProfileAsync(Guid userId, UpdateProfileRequest request, CancellationToken cancellationToken)
    {
        var name = request.Name?.Trim();
        if (string.IsNullOrEmpty(name) || name.Length > 200)
        {
            throw ApiProblem.Invalid("name", "is required and must be at most 200 characters");
        }

        var user = await db.Users.SingleAsync(u => u.Id == userId, cancellationToken);
        user.DisplayName = name;
        audit.Record("user.profile_update", $"user:{userId}");
        await db.SaveChangesAsync(cancellationToken);
    }

    /// <summary>Changes the password after checking the current one, and ends every other session of the account.</summary>
    public async Task ChangePasswordAsync(Guid userId, Guid currentSessionId, ChangePasswordRequest request, CancellationToken cancellationToken)
    {
        var user = await db.Users.SingleAsync(u => u.Id == userId, cancellationToken);
        if (string.IsNullOrEmpty(request.CurrentPassword) || !Bcrypt.Verify(request.CurrentPassword, user.PasswordHash))
        {
            throw ApiProblem.Invalid("currentPassword", "does not match the account's password");
        }

        if (PasswordPolicy.Problem(request.NewPassword, user.Email, options.Value.MinimumPasswordLength) is { } problem)
        {
            throw ApiProblem.Invalid("newPassword", problem);
        }

        user.PasswordHash = Bcrypt.Hash(request.NewPassword!, options.Value.PasswordHashCost);
        var now = time.GetUtcNow();
        await using var transaction = await db.Database.BeginTransactionAsync(cancellationToken);
        audit.Record("user.password_change", $"user:{userId}");
        await db.SaveChangesAsync(cancellationToken);
        await db.Sessions.Where(s => s.UserId == userId && s.Id != currentSessionId && s.RevokedAt == null)
            .ExecuteUpdateAsync(set => set.SetProperty(s => s.RevokedAt, now), cancellationToken);
        await transaction.CommitAsync(cancellationToken);
    }

    internal static string? ValidEmail(string? value, string field, FieldErrors errors)
    {
        if (string.IsNullOrWhiteSpace(value))
        {
            errors.Add(field, "is required");
            return null;
        }

        var email = User.NormalizeEmail(value);
        if (email.Length > 320 || !MailAddress.TryCreate(email, out var parsed) || parsed.Address != email || !email.Contains('@', StringComparison.Ordinal))
        {
            errors.Add(field, "is not a valid email address");
            return null;
        }

        return email;
    }

    private async Task RecordAsync(Guid? userId, string outcome, string? address, string? userAgent, CancellationToken cancellationToken)
    {
        db.LoginEvents.Add(Event(userId, outcome, address, userAgent, time.GetUtcNow()));
        await db.SaveChangesAsync(cancellationToken);
    }

    private static LoginEvent Event(Guid? userId, string outcome, string? address, string? userAgent, DateTimeOffset now) => new()
    {
        Id = Guid.CreateVersion7(now),
        UserId = userId,
        OccurredAt = now,
        IpAddress = address is { Length: > 45 } ? address[..45] : address,
        UserAgent = userAgent is { Length: > 256 } ? userAgent[..256] : userAgent,
        Outcome = outcome,
    };
}

public static class Roles
{
    public static string Format(OrgRole role) => role.ToString().ToLowerInvariant();

    public static bool TryParse(string? value, out OrgRole role)
    {
        role = default;
        return value is not null
            && value.All(char.IsAsciiLetterLower)
            && Enum.TryParse(value, ignoreCase: true, out role)
            && Enum.IsDefined(role);
    }

    public static string Names => string.Join(", ", Enum.GetValues<OrgRole>().Select(Format));
}
