using System.Text.Json;
using Microsoft.EntityFrameworkCore;
using Sluice.Identity;
using Sluice.Storage;

namespace Sluice.Privacy;

/// <summary>
/// Everything Sluice holds about one person, as one JSON document with a section for every category the policy lists
/// (<see cref="PolicyPublisher.Categories"/>). Built when it is downloaded and streamed, so the archive itself is never
/// stored anywhere.
/// </summary>
public sealed class SubjectExport(SluiceDbContext db, PolicyPublisher policy, TimeProvider time)
{
    public const string Format = "sluice-subject-export/1";

    public async Task WriteAsync(Guid userId, Stream output, CancellationToken cancellationToken)
    {
        await using var json = new Utf8JsonWriter(output, new JsonWriterOptions { Indented = true });
        var user = await db.Users.AsNoTracking().SingleAsync(u => u.Id == userId, cancellationToken);
        var actor = $"user:{userId}";
        json.WriteStartObject();
        json.WriteString("format", Format);
        json.WriteString("generatedAt", time.GetUtcNow());
        json.WriteNumber("policyVersion", await policy.CurrentVersionAsync(db, cancellationToken));
        json.WriteString("subject", userId);

        json.WriteStartObject("account");
        json.WriteString("id", user.Id);
        json.WriteString("email", user.Email);
        json.WriteString("name", user.DisplayName);
        json.WriteString("createdAt", user.CreatedAt);
        WriteTime(json, "ageAttestedAt", user.AgeAttestedAt);
        if (user.AttestedMinimumAge is { } age)
        {
            json.WriteNumber("attestedMinimumAge", age);
        }

        json.WriteBoolean("platformOperator", user.IsPlatformOperator);
        WriteTime(json, "closedAt", user.ClosedAt);
        WriteTime(json, "processingRestrictedAt", user.ProcessingRestrictedAt);
        json.WriteEndObject();

        await WriteArrayAsync(json, "memberships", db.Memberships.AsNoTracking().Where(m => m.UserId == userId)
            .Join(db.Organizations, m => m.OrganizationId, o => o.Id, (m, o) => new { OrganizationId = o.Id, Organization = o.Name, m.Role, m.CreatedAt }), (w, m) =>
        {
            w.WriteString("organizationId", m.OrganizationId);
            w.WriteString("organization", m.Organization);
            w.WriteString("role", Roles.Format(m.Role));
            w.WriteString("since", m.CreatedAt);
        }, cancellationToken);

        var keyIds = await db.ApiKeys.AsNoTracking().Where(k => k.CreatedByUserId == userId).Select(k => k.Id).ToListAsync(cancellationToken);
        await WriteArrayAsync(json, "api_keys", db.ApiKeys.AsNoTracking().Where(k => k.CreatedByUserId == userId), (w, k) =>
        {
            w.WriteString("id", k.Id);
            w.WriteString("organizationId", k.OrganizationId);
            w.WriteString("name", k.Name);
            w.WriteString("prefix", k.Prefix);
            w.WriteString("scopes", k.Scopes.ToString());
            w.WriteString("createdAt", k.CreatedAt);
            WriteTime(w, "lastUsedAt", k.LastUsedAt);
            WriteTime(w, "expiresAt", k.ExpiresAt);
            WriteTime(w, "revokedAt", k.RevokedAt);
        }, cancellationToken);

        await WriteArrayAsync(json, "login_events", db.LoginEvents.AsNoTracking().Where(e => e.UserId == userId).OrderBy(e => e.OccurredAt), (w, e) =>
        {
            w.WriteString("at", e.OccurredAt);
            w.WriteString("address", e.IpAddress);
            w.WriteString("userAgent", e.UserAgent);
            w.WriteString("outcome", e.Outcome);
        }, cancellationToken);

        await WriteArrayAsync(json, "usage_metadata", db.UsageEvents.AsNoTracking().Where(e => e.KeyId != null && keyIds.Contains(e.KeyId.Value)).OrderBy(e => e.StartedAt), (w, e) =>
        {
            w.WriteString("requestId", e.RequestId);
            w.WriteString("keyId", e.KeyId!.Value);
            w.WriteString("endpoint", e.Endpoint);
            w.WriteString("model", e.Model);
            w.WriteNumber("status", e.Status);
            w.WriteNumber("promptTokens", e.PromptTokens);
            w.WriteNumber("completionTokens", e.CompletionTokens);
            w.WriteNumber("latencyMicros", e.LatencyMicros);
            w.WriteNumber("costMicros", e.CostMicros);
            w.WriteString("startedAt", e.StartedAt);
        }, cancellationToken);

        await WriteArrayAsync(json, "wallet_transactions", db.LedgerTransactions.AsNoTracking().Where(t => t.Actor == actor).OrderBy(t => t.CreatedAt), (w, t) =>
        {
            w.WriteString("id", t.Id);
            w.WriteString("type", t.Type);
            if (t.OrganizationId is { } org)
            {
                w.WriteString("organizationId", org);
            }

            w.WriteString("reference", t.Reference);
            w.WriteString("at", t.CreatedAt);
        }, cancellationToken);

        await WriteArrayAsync(json, "consents", db.ConsentRecords.AsNoTracking().Where(c => c.UserId == userId).OrderBy(c => c.RecordedAt), (w, c) =>
        {
            w.WriteString("purpose", c.Purpose);
            w.WriteBoolean("granted", c.Granted);
            w.WriteNumber("version", c.Version);
            w.WriteNumber("policyVersion", c.PolicyVersion);
            w.WriteString("recordedAt", c.RecordedAt);
        }, cancellationToken);

        await WriteArrayAsync(json, "privacy_requests", db.PrivacyRequests.AsNoTracking().Where(r => r.UserId == userId).OrderBy(r => r.CreatedAt), (w, r) =>
        {
            w.WriteString("id", r.Id);
            w.WriteString("type", r.Type);
            w.WriteString("status", r.Status);
            w.WriteString("createdAt", r.CreatedAt);
            w.WriteString("dueAt", r.DueAt);
            w.WriteString("decisionReason", r.DecisionReason);
        }, cancellationToken);

        await WriteArrayAsync(json, "notifications", db.Notifications.AsNoTracking().Where(n => n.UserId == userId).OrderBy(n => n.CreatedAt), (w, n) =>
        {
            w.WriteString("kind", n.Kind);
            w.WriteString("subject", n.Subject);
            w.WriteString("createdAt", n.CreatedAt);
        }, cancellationToken);

        await WriteArrayAsync(json, "audit_entries", db.AuditEntries.AsNoTracking().Where(e => e.Actor == actor).OrderBy(e => e.Seq), (w, e) =>
        {
            w.WriteNumber("seq", e.Seq);
            w.WriteString("at", e.Time);
            w.WriteString("action", e.Action);
            w.WriteString("target", e.Target);
            w.WriteString("outcome", e.Outcome);
            w.WriteString("network", e.SourceNetwork);
        }, cancellationToken);

        await WriteArrayAsync(json, "files", db.Files.AsNoTracking().Where(f => f.CreatedByKeyId != null && keyIds.Contains(f.CreatedByKeyId.Value)), (w, f) =>
        {
            w.WriteString("id", f.PublicId);
            w.WriteString("filename", f.Filename);
            w.WriteString("purpose", f.Purpose);
            w.WriteNumber("bytes", f.Bytes);
            w.WriteString("createdAt", f.CreatedAt);
            w.WriteString("expiresAt", f.ExpiresAt);
        }, cancellationToken);

        json.WriteEndObject();
        await json.FlushAsync(cancellationToken);
    }

    private static async Task WriteArrayAsync<T>(Utf8JsonWriter json, string name, IQueryable<T> rows, Action<Utf8JsonWriter, T> write, CancellationToken cancellationToken)
    {
        json.WriteStartArray(name);
        await foreach (var row in rows.AsAsyncEnumerable().WithCancellation(cancellationToken))
        {
            json.WriteStartObject();
            write(json, row);
            json.WriteEndObject();
            if (json.BytesPending > 32 * 1024)
            {
                await json.FlushAsync(cancellationToken);
            }
        }

        json.WriteEndArray();
    }

    private static void WriteTime(Utf8JsonWriter json, string name, DateTimeOffset? value)
    {
        if (value is { } at)
        {
            json.WriteString(name, at);
        }
        else
        {
            json.WriteNull(name);
        }
    }
}
