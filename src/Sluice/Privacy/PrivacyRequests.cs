using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using Sluice.Audit;
using Sluice.Crypto;
using Sluice.Hosting;
using Sluice.Identity;
using Sluice.Storage;

namespace Sluice.Privacy;

public static class PrivacyRequestTypes
{
    public const string Access = "access";
    public const string Export = "export";
    public const string Correction = "correction";
    public const string Deletion = "deletion";
    public const string Restriction = "restriction";
    public const string Objection = "objection";
    public const string OptOut = "opt_out";

    public static readonly IReadOnlyList<string> All = [Access, Export, Correction, Deletion, Restriction, Objection, OptOut];
}

public static class PrivacyRequestStatus
{
    /// <summary>Waiting for the subject to prove who they are.</summary>
    public const string PendingVerification = "pending_verification";

    /// <summary>Too many wrong passwords or codes: closed; the subject makes a new request.</summary>
    public const string VerificationFailed = "verification_failed";

    /// <summary>Verified; waiting for an operator's decision.</summary>
    public const string InReview = "in_review";

    /// <summary>Approved; a deletion waits here until the account is erased.</summary>
    public const string Approved = "approved";

    public const string Completed = "completed";

    public const string Denied = "denied";

    /// <summary>The subject appealed a denial; waiting for an operator's final decision.</summary>
    public const string Appealed = "appealed";

    public const string Cancelled = "cancelled";

    public static readonly IReadOnlyList<string> Closed = [VerificationFailed, Completed, Denied, Cancelled];
}

public sealed record CreatePrivacyRequest(string? Type, JsonElement? Details, Guid? SubjectUserId, string? SubjectEmail);

public sealed record VerifyPrivacyRequest(string? Password, string? Code);

public sealed record DecidePrivacyRequest(string? Reason);

public sealed record PrivacyRequestResponse(
    Guid Id, Guid SubjectUserId, string Type, string Status, bool Verified, string? VerificationMethod, int VerificationAttemptsLeft,
    DateTimeOffset CreatedAt, DateTimeOffset DueAt, DateTimeOffset? DecidedAt, string? DecisionReason, DateTimeOffset? AppealedAt,
    string? AppealReason, DateTimeOffset? CompletedAt, DateTimeOffset? ExportAvailableUntil, string? ExportUrl);

/// <summary>
/// Data-subject requests. A person asks for their own data only; every request is verified (the account password, or
/// a code sent by email when a relay is configured, with a limited number of attempts) before anyone can approve it;
/// an operator approves or denies it with a reason within 30 days; a denial can be appealed once. Approval carries the
/// request out: access and export open a time-limited download, correction applies the change, deletion closes the
/// account (erased after the grace period), restriction and objection switch off optional processing. An opt-out
/// only reduces processing, so it completes as soon as it is verified.
/// </summary>
public sealed class PrivacyRequestService(
    SluiceDbContext db,
    AuditLog audit,
    AuditActor actor,
    AccountErasure erasure,
    ConsentService consents,
    IServiceEmail email,
    IOptions<PrivacyOptions> options,
    TimeProvider time)
{
    public static readonly TimeSpan ResponseDeadline = TimeSpan.FromDays(30);

    public async Task<PrivacyRequestResponse> CreateAsync(Guid callerId, CreatePrivacyRequest request, CancellationToken cancellationToken)
    {
        var caller = await db.Users.AsNoTracking().SingleAsync(u => u.Id == callerId, cancellationToken);
        if ((request.SubjectUserId is { } subject && subject != callerId)
            || (request.SubjectEmail is { } subjectEmail && User.NormalizeEmail(subjectEmail) != caller.Email))
        {
            await audit.RefuseAsync("privacy_request.create", $"user:{callerId} other_subject", null, cancellationToken);
            throw ApiProblem.Forbidden("A privacy request can only be about your own data. The person it concerns must sign in and make it themselves.");
        }

        var errors = new FieldErrors();
        if (request.Type is null || !PrivacyRequestTypes.All.Contains(request.Type))
        {
            errors.Add("type", $"must be one of: {string.Join(", ", PrivacyRequestTypes.All)}");
        }

        var details = Details(request.Type, request.Details, errors);
        errors.ThrowIfAny();
        if (request.Type == PrivacyRequestTypes.Deletion && await erasure.BlockerAsync(callerId, cancellationToken) is { } blocker)
        {
            throw ApiProblem.Conflict("type", blocker);
        }

        if (await db.PrivacyRequests.AnyAsync(r => r.UserId == callerId && r.Type == request.Type && !PrivacyRequestStatus.Closed.Contains(r.Status), cancellationToken))
        {
            throw ApiProblem.Conflict("type", "you already have an open request of this type; follow it at GET /api/v1/privacy/requests");
        }

        var now = time.GetUtcNow();
        var entity = new PrivacyRequest
        {
            Id = Guid.CreateVersion7(now),
            UserId = callerId,
            Type = request.Type!,
            Status = PrivacyRequestStatus.PendingVerification,
            Details = details,
            CreatedAt = now,
            DueAt = now + ResponseDeadline,
        };
        string? code = null;
        if (email.IsConfigured)
        {
            code = RandomNumberGenerator.GetString("0123456789", 8);
            entity.VerificationCodeHash = Hash(code);
            entity.VerificationCodeExpiresAt = now + options.Value.VerificationCodeLifetime;
        }

        db.PrivacyRequests.Add(entity);
        audit.Record("privacy_request.create", $"privacy_request:{entity.Id} {entity.Type}");
        await db.SaveChangesAsync(cancellationToken);
        if (code is not null)
        {
            try
            {
                await email.SendAsync(caller.Email, "Confirm your privacy request",
                    $"Your verification code is {code}. It expires in {options.Value.VerificationCodeLifetime.TotalMinutes:0} minutes. If you did not make a privacy request, ignore this email.",
                    cancellationToken);
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                // The request stands (the sender logged the failure by type); the person can verify with their password.
            }
        }

        return Response(entity);
    }

    public async Task<List<PrivacyRequestResponse>> ListForSubjectAsync(Guid userId, CancellationToken cancellationToken) =>
        (await db.PrivacyRequests.AsNoTracking().Where(r => r.UserId == userId).ToListAsync(cancellationToken))
        .OrderByDescending(r => r.CreatedAt).Select(Response).ToList();

    public async Task<List<PrivacyRequestResponse>> ListAllAsync(string? status, CancellationToken cancellationToken)
    {
        var query = db.PrivacyRequests.AsNoTracking();
        if (status is not null)
        {
            query = query.Where(r => r.Status == status);
        }

        return (await query.ToListAsync(cancellationToken)).OrderBy(r => r.DueAt).Select(Response).ToList();
    }

    /// <summary>The subject's own request; another person's answers 404 (and is audited as refused).</summary>
    public async Task<PrivacyRequest> OwnAsync(Guid callerId, Guid requestId, CancellationToken cancellationToken)
    {
        var entity = await db.PrivacyRequests.SingleOrDefaultAsync(r => r.Id == requestId, cancellationToken);
        if (entity is null || entity.UserId != callerId)
        {
            if (entity is not null)
            {
                await audit.RefuseAsync("privacy_request.read", $"privacy_request:{requestId} not_subject", null, cancellationToken);
            }

            throw ApiProblem.NotFound("privacy request");
        }

        return entity;
    }

    public async Task<PrivacyRequestResponse> GetAsync(Guid callerId, Guid requestId, CancellationToken cancellationToken) =>
        Response(await OwnAsync(callerId, requestId, cancellationToken));

    public async Task<PrivacyRequestResponse> VerifyAsync(Guid callerId, Guid requestId, VerifyPrivacyRequest request, CancellationToken cancellationToken)
    {
        var entity = await OwnAsync(callerId, requestId, cancellationToken);
        if (entity.Status != PrivacyRequestStatus.PendingVerification)
        {
            throw ApiProblem.Conflict("status", $"the request is {entity.Status}; only requests pending verification can be verified");
        }

        if (string.IsNullOrEmpty(request.Password) == string.IsNullOrEmpty(request.Code))
        {
            throw ApiProblem.Invalid("password", "give either your account password or the code emailed to you");
        }

        var now = time.GetUtcNow();
        bool proven;
        string method;
        if (!string.IsNullOrEmpty(request.Password))
        {
            var hash = await db.Users.AsNoTracking().Where(u => u.Id == callerId).Select(u => u.PasswordHash).SingleAsync(cancellationToken);
            proven = request.Password.Length <= 200 && Bcrypt.Verify(request.Password, hash);
            method = "password";
        }
        else
        {
            proven = entity.VerificationCodeHash is { } expected && entity.VerificationCodeExpiresAt > now
                && CryptographicOperations.FixedTimeEquals(Encoding.ASCII.GetBytes(expected), Encoding.ASCII.GetBytes(Hash(request.Code!)));
            method = "code";
        }

        if (!proven)
        {
            entity.VerificationAttempts++;
            var left = options.Value.VerificationAttempts - entity.VerificationAttempts;
            if (left <= 0)
            {
                entity.Status = PrivacyRequestStatus.VerificationFailed;
                entity.VerificationCodeHash = null;
                entity.Details = null;
            }

            audit.Record("privacy_request.verify_failed", $"privacy_request:{entity.Id} attempts:{entity.VerificationAttempts}");
            await db.SaveChangesAsync(cancellationToken);
            throw left <= 0
                ? ApiProblem.Forbidden("Verification failed too many times; this request is closed. Make a new request to try again.")
                : ApiProblem.Invalid(method, $"does not match; {left} attempt(s) left");
        }

        entity.VerifiedAt = now;
        entity.VerificationMethod = method;
        entity.VerificationCodeHash = null;
        entity.Status = PrivacyRequestStatus.InReview;
        audit.Record("privacy_request.verify", $"privacy_request:{entity.Id} {method}");
        if (entity.Type == PrivacyRequestTypes.OptOut)
        {
            await CarryOutAsync(entity, "system", "opt-outs only reduce processing and are honoured once verified", cancellationToken);
        }

        await db.SaveChangesAsync(cancellationToken);
        return Response(entity);
    }

    public async Task<PrivacyRequestResponse> CancelAsync(Guid callerId, Guid requestId, CancellationToken cancellationToken)
    {
        var entity = await OwnAsync(callerId, requestId, cancellationToken);
        if (entity.Status is not (PrivacyRequestStatus.PendingVerification or PrivacyRequestStatus.InReview or PrivacyRequestStatus.Appealed))
        {
            throw ApiProblem.Conflict("status", $"the request is {entity.Status} and can no longer be cancelled");
        }

        entity.Status = PrivacyRequestStatus.Cancelled;
        entity.Details = null;
        entity.CompletedAt = time.GetUtcNow();
        audit.Record("privacy_request.cancel", $"privacy_request:{entity.Id}");
        await db.SaveChangesAsync(cancellationToken);
        return Response(entity);
    }

    public async Task<PrivacyRequestResponse> AppealAsync(Guid callerId, Guid requestId, DecidePrivacyRequest request, CancellationToken cancellationToken)
    {
        var entity = await OwnAsync(callerId, requestId, cancellationToken);
        var reason = request.Reason?.Trim();
        if (string.IsNullOrEmpty(reason) || reason.Length > 1000)
        {
            throw ApiProblem.Invalid("reason", "is required (at most 1000 characters): say why the decision should change");
        }

        if (entity.Status != PrivacyRequestStatus.Denied || entity.AppealedAt is not null)
        {
            throw ApiProblem.Conflict("status", entity.AppealedAt is null ? "only a denied request can be appealed" : "this request was already appealed; the decision on the appeal is final");
        }

        entity.Status = PrivacyRequestStatus.Appealed;
        entity.AppealReason = reason;
        entity.AppealedAt = time.GetUtcNow();
        audit.Record("privacy_request.appeal", $"privacy_request:{entity.Id}");
        await db.SaveChangesAsync(cancellationToken);
        return Response(entity);
    }

    public async Task<PrivacyRequestResponse> ApproveAsync(Guid requestId, DecidePrivacyRequest request, CancellationToken cancellationToken)
    {
        var entity = await db.PrivacyRequests.SingleOrDefaultAsync(r => r.Id == requestId, cancellationToken) ?? throw ApiProblem.NotFound("privacy request");
        if (entity.VerifiedAt is null)
        {
            await audit.RefuseAsync("privacy_request.approve", $"privacy_request:{entity.Id} unverified", null, cancellationToken);
            throw ApiProblem.Conflict("status", "the requester has not verified their identity yet; a request is approved only after verification");
        }

        if (entity.Status is not (PrivacyRequestStatus.InReview or PrivacyRequestStatus.Appealed))
        {
            throw ApiProblem.Conflict("status", $"the request is {entity.Status}; only requests in review or appealed can be decided");
        }

        if (request.Reason is { Length: > 1000 })
        {
            throw ApiProblem.Invalid("reason", "must be at most 1000 characters");
        }

        if (entity.Type == PrivacyRequestTypes.Deletion && await erasure.BlockerAsync(entity.UserId, cancellationToken) is { } blocker)
        {
            throw ApiProblem.Conflict("type", blocker);
        }

        await CarryOutAsync(entity, actor.Id, request.Reason?.Trim(), cancellationToken);
        audit.Record("privacy_request.approve", $"privacy_request:{entity.Id} {entity.Type}");
        await db.SaveChangesAsync(cancellationToken);
        return Response(entity);
    }

    public async Task<PrivacyRequestResponse> DenyAsync(Guid requestId, DecidePrivacyRequest request, CancellationToken cancellationToken)
    {
        var entity = await db.PrivacyRequests.SingleOrDefaultAsync(r => r.Id == requestId, cancellationToken) ?? throw ApiProblem.NotFound("privacy request");
        var reason = request.Reason?.Trim();
        if (string.IsNullOrEmpty(reason) || reason.Length > 1000)
        {
            await audit.RefuseAsync("privacy_request.deny", $"privacy_request:{entity.Id} no_reason", null, cancellationToken);
            throw ApiProblem.Invalid("reason", "is required (at most 1000 characters): the requester is told why, and may appeal");
        }

        if (entity.Status is not (PrivacyRequestStatus.InReview or PrivacyRequestStatus.Appealed or PrivacyRequestStatus.PendingVerification))
        {
            throw ApiProblem.Conflict("status", $"the request is {entity.Status}; it can no longer be denied");
        }

        var now = time.GetUtcNow();
        var final = entity.Status == PrivacyRequestStatus.Appealed;
        entity.Status = PrivacyRequestStatus.Denied;
        entity.DecidedAt = now;
        entity.DecidedBy = actor.Id;
        entity.DecisionReason = reason;
        if (final)
        {
            entity.Details = null;
            entity.CompletedAt = now;
        }

        audit.Record("privacy_request.deny", $"privacy_request:{entity.Id}{(final ? " final" : "")}");
        await db.SaveChangesAsync(cancellationToken);
        return Response(entity);
    }

    /// <summary>The export of an approved access or export request, while its download window is open.</summary>
    public async Task<PrivacyRequest> ExportableAsync(Guid callerId, Guid requestId, CancellationToken cancellationToken)
    {
        var entity = await OwnAsync(callerId, requestId, cancellationToken);
        if (entity.Type is not (PrivacyRequestTypes.Access or PrivacyRequestTypes.Export) || entity.Status != PrivacyRequestStatus.Completed || entity.ExportAvailableUntil is null)
        {
            throw ApiProblem.Conflict("status", "there is no archive for this request: it must be an access or export request, approved");
        }

        if (entity.ExportAvailableUntil <= time.GetUtcNow())
        {
            throw new ApiProblemException(StatusCodes.Status410Gone, "Gone.", "The download window of this archive has closed; make a new request for a fresh copy.");
        }

        audit.Record("privacy_export.download", $"privacy_request:{entity.Id}");
        await db.SaveChangesAsync(cancellationToken);
        return entity;
    }

    private async Task CarryOutAsync(PrivacyRequest entity, string decidedBy, string? reason, CancellationToken cancellationToken)
    {
        var now = time.GetUtcNow();
        entity.DecidedAt = now;
        entity.DecidedBy = decidedBy;
        entity.DecisionReason = reason;
        entity.Status = PrivacyRequestStatus.Completed;
        entity.CompletedAt = now;
        switch (entity.Type)
        {
            case PrivacyRequestTypes.Access or PrivacyRequestTypes.Export:
                entity.ExportAvailableUntil = now + options.Value.ExportLifetime;
                break;
            case PrivacyRequestTypes.Correction:
                await CorrectAsync(entity, cancellationToken);
                break;
            case PrivacyRequestTypes.Deletion:
                await erasure.CloseAsync(entity.UserId, cancellationToken);
                entity.Status = PrivacyRequestStatus.Approved;
                entity.CompletedAt = null;
                break;
            case PrivacyRequestTypes.Restriction:
                var user = await db.Users.SingleAsync(u => u.Id == entity.UserId, cancellationToken);
                user.ProcessingRestrictedAt ??= now;
                await consents.WithdrawAsync(entity.UserId, ConsentPurposes.All, cancellationToken);
                break;
            case PrivacyRequestTypes.Objection:
                await consents.WithdrawAsync(entity.UserId, [ObjectionPurpose(entity.Details)], cancellationToken);
                break;
            case PrivacyRequestTypes.OptOut:
                await consents.WithdrawAsync(entity.UserId, [ConsentPurposes.Marketing], cancellationToken);
                break;
        }

        entity.Details = null;
    }

    private async Task CorrectAsync(PrivacyRequest entity, CancellationToken cancellationToken)
    {
        var user = await db.Users.SingleAsync(u => u.Id == entity.UserId, cancellationToken);
        using var details = JsonDocument.Parse(entity.Details ?? "{}");
        if (details.RootElement.TryGetProperty("name", out var name) && name.GetString() is { } newName)
        {
            user.DisplayName = newName;
        }

        if (details.RootElement.TryGetProperty("email", out var mail) && mail.GetString() is { } newEmail)
        {
            if (await db.Users.AnyAsync(u => u.Email == newEmail && u.Id != user.Id, cancellationToken))
            {
                throw ApiProblem.Conflict("email", "another account already uses this email address; the correction cannot be applied");
            }

            user.Email = newEmail;
        }
    }

    private static string? Details(string? type, JsonElement? details, FieldErrors errors)
    {
        switch (type)
        {
            case PrivacyRequestTypes.Correction:
                if (details is not { ValueKind: JsonValueKind.Object } value)
                {
                    errors.Add("details", "a correction needs details with the corrected name and/or email");
                    return null;
                }

                var corrected = new Dictionary<string, string>();
                if (value.TryGetProperty("name", out var name))
                {
                    var text = name.ValueKind == JsonValueKind.String ? name.GetString()!.Trim() : null;
                    if (string.IsNullOrEmpty(text) || text.Length > 200)
                    {
                        errors.Add("details.name", "must be a name of 1 to 200 characters");
                    }
                    else
                    {
                        corrected["name"] = text;
                    }
                }

                if (value.TryGetProperty("email", out var mail))
                {
                    if (AccountService.ValidEmail(mail.ValueKind == JsonValueKind.String ? mail.GetString() : null, "details.email", errors) is { } address)
                    {
                        corrected["email"] = address;
                    }
                }

                if (corrected.Count == 0 && !errors.Any)
                {
                    errors.Add("details", "name what to correct: name and/or email");
                }

                return JsonSerializer.Serialize(corrected);
            case PrivacyRequestTypes.Objection:
                var purpose = details is { ValueKind: JsonValueKind.Object } objection && objection.TryGetProperty("purpose", out var p) && p.ValueKind == JsonValueKind.String ? p.GetString() : null;
                if (purpose is null || !ConsentPurposes.All.Contains(purpose))
                {
                    errors.Add("details.purpose", $"must be one of: {string.Join(", ", ConsentPurposes.All)}");
                    return null;
                }

                return JsonSerializer.Serialize(new Dictionary<string, string> { ["purpose"] = purpose });
            default:
                return null;
        }
    }

    private static string ObjectionPurpose(string? details)
    {
        using var parsed = JsonDocument.Parse(details ?? "{}");
        return parsed.RootElement.TryGetProperty("purpose", out var purpose) && purpose.GetString() is { } value ? value : ConsentPurposes.Marketing;
    }

    private static string Hash(string code) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(code)));

    private PrivacyRequestResponse Response(PrivacyRequest r) => new(
        r.Id, r.UserId, r.Type, r.Status, r.VerifiedAt is not null, r.VerificationMethod,
        Math.Max(0, options.Value.VerificationAttempts - r.VerificationAttempts), r.CreatedAt, r.DueAt, r.DecidedAt, r.DecisionReason,
        r.AppealedAt, r.AppealReason, r.CompletedAt, r.ExportAvailableUntil,
        r.ExportAvailableUntil is not null ? $"/api/v1/privacy/requests/{r.Id}/export" : null);
}
