using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using Sluice.Audit;
using Sluice.Files;
using Sluice.Identity;
using Sluice.Storage;

namespace Sluice.Privacy;

/// <summary>A kind of personal data Sluice holds; every one is in the policy and in a subject's export under <see cref="Id"/>.</summary>
public sealed record DataCategory(string Id, string Name, string Contents, string Purpose, string Retention);

public sealed record RetentionPeriod(string Class, string Records, int? Days, string Rule);

public sealed record SubprocessorEntry(string Name, string Purpose, string Location);

public sealed record ModelProviderEntry(string Name, bool RetainsData, bool TrainsOnData);

public sealed record RightEntry(string Right, string How);

public sealed record CookieEntry(string Name, string Purpose, bool Essential);

/// <summary>The privacy policy, generated from the live configuration: nothing in it is written by hand.</summary>
public sealed record PrivacyPolicyDocument(
    int Version,
    DateTimeOffset? LastUpdated,
    IReadOnlyList<string> ChangedInThisVersion,
    string Controller,
    string Contact,
    IReadOnlyList<string> ContentPromises,
    IReadOnlyList<DataCategory> DataCategories,
    IReadOnlyList<RetentionPeriod> Retention,
    IReadOnlyList<SubprocessorEntry> Subprocessors,
    IReadOnlyList<ModelProviderEntry> ModelProviders,
    IReadOnlyList<RightEntry> Rights,
    IReadOnlyList<CookieEntry> Cookies,
    IReadOnlyList<string> Regions,
    string TransferSafeguards,
    int MinimumAge,
    string Children,
    string Sale);

[JsonSourceGenerationOptions(JsonSerializerDefaults.Web, WriteIndented = true)]
[JsonSerializable(typeof(PrivacyPolicyDocument))]
internal sealed partial class PrivacyPolicyJson : JsonSerializerContext;

/// <summary>
/// Builds the policy from settings and the database, and publishes a new version whenever its material content
/// changes: the version is stored, every organization owner gets a notice in the service (and an email when a relay
/// is configured), and the publication is audited. Checked at start and every <c>Privacy:PolicyCheckInterval</c>.
/// </summary>
public sealed class PolicyPublisher(
    IServiceScopeFactory scopes,
    IOptions<PrivacyOptions> privacy,
    IOptions<RetentionOptions> retention,
    IOptions<AuditOptions> audit,
    IOptions<FilesOptions> files,
    IOptions<IdentityOptions> identity,
    IServiceEmail email,
    TimeProvider time,
    ILogger<PolicyPublisher> logger, Hosting.BackgroundHealth? health = null) : Hosting.SupervisedService(health)
{
    public static readonly IReadOnlyList<DataCategory> Categories =
    [
        new("account", "Account", "email address, display name, age attestation, sign-up time, account status", "signing in, contacting you about the service", "while the account is open; erased within the deleted-account grace period after deletion"),
        new("memberships", "Organization memberships", "organizations you belong to and your role", "access control", "while the account is open"),
        new("api_keys", "API key metadata", "name, prefix, scopes, limits, creation and last-use times (never the secret, stored only as a bcrypt hash)", "authenticating API calls", "while the key exists"),
        new("login_events", "Sign-in events", "time, network address, user agent, outcome", "security and abuse prevention", RetentionClass.LoginEvents),
        new("usage_metadata", "Request metadata", "endpoint, model, token counts, latency, status, sizes, times (never prompts or completions)", "billing, rate limits, capacity planning in aggregate", RetentionClass.RequestMetadata),
        new("wallet_transactions", "Wallet transactions", "credits, top-ups and charges you made, with amounts and times", "billing, tax and accounting", RetentionClass.Billing),
        new("consents", "Consent records", "each choice on training, marketing and analytics, with its version and time", "proving and honouring your choices", "while the account is open"),
        new("privacy_requests", "Privacy requests", "requests you made, their status and decisions", "handling your rights", RetentionClass.OperationalMetadata),
        new("notifications", "Notices", "notices shown to you in the service", "telling you about changes", RetentionClass.OperationalMetadata),
        new("audit_entries", "Audit log entries", "administrative actions you took, under a pseudonymous id and a truncated network", "security and accountability", RetentionClass.AuditLog),
        new("files", "Files and batch data", "file names, sizes and times; the contents are encrypted and belong to the organization", "batch inference", RetentionClass.BatchFiles),
    ];

    private static readonly IReadOnlyList<string> ContentPromises =
    [
        "Prompts, completions and embeddings are processed in memory only and never written to logs, the database or disk.",
        "Per request only metadata is recorded (endpoint, model, token counts, latency, status, sizes, times), never together with content.",
        "Batch inputs and outputs are stored only encrypted and deleted, keys first, within the batch-files retention period, also from backups, unless a legal hold requires keeping them.",
        "Customer content is never used for training unless the organization opted in; without the opt-in, providers that train on data are never used.",
        "Organizations can require zero-retention and no-training providers; requests then fail rather than reach any other provider.",
        "Staff read an organization's content only under a time-limited grant the organization approved, and every read is audited.",
    ];

    private readonly SemaphoreSlim _gate = new(1, 1);

    public async Task<int> CurrentVersionAsync(SluiceDbContext db, CancellationToken cancellationToken) =>
        await db.PolicyVersions.MaxAsync(v => (int?)v.Version, cancellationToken) ?? 0;

    /// <summary>The policy as it stands now, under its latest published version.</summary>
    public async Task<PrivacyPolicyDocument> CurrentAsync(SluiceDbContext db, CancellationToken cancellationToken)
    {
        var latest = await db.PolicyVersions.AsNoTracking().OrderByDescending(v => v.Version).FirstOrDefaultAsync(cancellationToken);
        return (await BuildAsync(db, cancellationToken)) with
        {
            Version = latest?.Version ?? 0,
            LastUpdated = latest?.PublishedAt,
            ChangedInThisVersion = latest?.ChangedSections.Split(',', StringSplitOptions.RemoveEmptyEntries) ?? [],
        };
    }

    public async Task<PrivacyPolicyDocument> BuildAsync(SluiceDbContext db, CancellationToken cancellationToken)
    {
        var settings = privacy.Value;
        var periods = retention.Value;
        var subprocessors = await db.Subprocessors.AsNoTracking().ToListAsync(cancellationToken);
        var providers = await db.Providers.AsNoTracking().Select(p => new { p.Id, p.Name }).ToListAsync(cancellationToken);
        var routes = await db.ModelRoutes.AsNoTracking().Select(r => new { r.ProviderId, r.RetainsData, r.TrainsOnData }).ToListAsync(cancellationToken);
        return new PrivacyPolicyDocument(
            0,
            null,
            [],
            settings.Controller,
            settings.ContactEmail,
            ContentPromises,
            Categories,
            [
                new(RetentionClass.RequestMetadata, "request metadata (usage events)", Days(periods.RequestMetadata), "deleted after the period"),
                new(RetentionClass.OperationalMetadata, "operational metadata: sessions, invitations, finished batch records, wallet leases, notices, closed privacy requests, staff access grants", Days(periods.OperationalMetadata), "deleted after the period, at most 12 months, unless a legal hold applies"),
                new(RetentionClass.AuditLog, "audit log entries", Days(audit.Value.Retention), "pruned after the period below a signed checkpoint, so what remains stays verifiable"),
                new(RetentionClass.Billing, "billing and wallet records", Days(periods.Billing), "kept at least this long for tax and accounting; wallet transactions are kept indefinitely, de-identified once an account is erased"),
                new(RetentionClass.BatchFiles, "uploaded files, batch inputs, results and outputs", Days(files.Value.Retention), "encrypted; deleted by destroying their keys, then the data, unless a legal hold applies"),
                new(RetentionClass.LoginEvents, "sign-in events", Days(periods.LoginEvents), "deleted after the period"),
                new(RetentionClass.DeletedAccounts, "personal data of deleted accounts", Days(periods.DeletedAccountGrace), "erased or pseudonymised within this grace period after the account is closed"),
                new(RetentionClass.SupportMessages, "support messages", Days(periods.SupportMessages), "deleted after the period, counted from when the conversation closed"),
                new(RetentionClass.MachineTelemetry, "machine telemetry: raw heartbeat samples of machines' CPU, memory, disk and GPU figures (never what a machine processes)", Days(periods.MachineTelemetry), "deleted after the period, a day at a time"),
                new(RetentionClass.MachineTelemetryRollups, "machine telemetry hourly rollups: minimum, average and maximum per machine and GPU per hour", Days(periods.MachineTelemetryRollups), "deleted after the period"),
                new(RetentionClass.DeploymentMetadata, "deployment metadata: deployments' events (placements, scaling decisions and their figures), deleted deployments and stopped replicas (never what a deployment served)", Days(periods.DeploymentMetadata), "deleted after the period, counted from the event, the deletion or the stop, unless a legal hold applies"),
            ],
            subprocessors.OrderBy(s => s.Name, StringComparer.Ordinal).Select(s => new SubprocessorEntry(s.Name, s.Purpose, s.Location)).ToList(),
            providers.OrderBy(p => p.Name, StringComparer.Ordinal)
                .Select(p => new ModelProviderEntry(p.Name, routes.Any(r => r.ProviderId == p.Id && r.RetainsData), routes.Any(r => r.ProviderId == p.Id && r.TrainsOnData)))
                .ToList(),
            [
                new("access", "POST /api/v1/privacy/requests {\"type\":\"access\"}: a copy of the personal data held about you"),
                new("portability", "POST /api/v1/privacy/requests {\"type\":\"export\"}: the same data as a machine-readable JSON archive, downloadable for a limited time"),
                new("correction", "PATCH /api/v1/me, or POST /api/v1/privacy/requests {\"type\":\"correction\",\"details\":{\"name\"|\"email\"}}; organization admins update workspace information with PATCH /api/v1/orgs/{id}"),
                new("deletion", "POST /api/v1/privacy/requests {\"type\":\"deletion\"}: the account is closed at once, sessions end, keys are revoked, and personal data is erased within the grace period; billing records are kept de-identified"),
                new("restriction", "POST /api/v1/privacy/requests {\"type\":\"restriction\"}: no optional processing (training, marketing, analytics) of your data"),
                new("objection", "POST /api/v1/privacy/requests {\"type\":\"objection\",\"details\":{\"purpose\"}}: stop one kind of optional processing"),
                new("opt-out", "PUT /api/v1/me/consents {\"purpose\":\"marketing\",\"granted\":false} at any time, or POST /api/v1/privacy/requests {\"type\":\"opt_out\"}; we do not sell or share personal data"),
                new("verification and appeal", "every request is verified (your password, or an emailed code) before it is acted on, answered within 30 days, and a refusal can be appealed with POST /api/v1/privacy/requests/{id}/appeal; exercising a right never changes the service you get"),
                new("contact", $"write to {settings.ContactEmail}"),
            ],
            [new(AuthenticationSchemes.SessionCookie, "keeps you signed in (HttpOnly, SameSite=Lax)", true)],
            settings.EffectiveRegions,
            settings.TransferSafeguards,
            identity.Value.MinimumAge,
            $"The service is not for people under {identity.Value.MinimumAge}; everyone attests their age at sign-up, and an account learned to belong to a child is deleted promptly.",
            "Personal data is never sold or shared for advertising; analytics cookies are off unless you consent, and Do Not Track or Global Privacy Control signals count as a refusal.");
    }

    /// <summary>Publishes a new version when the material content changed; returns the version in force.</summary>
    public async Task<int> PublishIfChangedAsync(CancellationToken cancellationToken)
    {
        await _gate.WaitAsync(cancellationToken);
        try
        {
            await using var scope = scopes.CreateAsyncScope();
            var db = scope.ServiceProvider.GetRequiredService<SluiceDbContext>();
            var document = await BuildAsync(db, cancellationToken);
            var sections = SectionFingerprints(document);
            var fingerprint = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(string.Join(';', sections.Select(s => $"{s.Key}={s.Value}")))));
            var latest = await db.PolicyVersions.AsNoTracking().OrderByDescending(v => v.Version).FirstOrDefaultAsync(cancellationToken);
            if (latest?.Fingerprint == fingerprint)
            {
                return latest.Version;
            }

            var now = time.GetUtcNow();
            var previous = latest is null ? [] : latest.Sections.Split(';', StringSplitOptions.RemoveEmptyEntries).Select(s => s.Split('=')).ToDictionary(s => s[0], s => s[1]);
            var changed = latest is null ? "initial" : string.Join(',', sections.Where(s => !previous.TryGetValue(s.Key, out var old) || old != s.Value).Select(s => s.Key));
            var version = new PolicyVersion
            {
                Version = (latest?.Version ?? 0) + 1,
                Fingerprint = fingerprint,
                Sections = string.Join(';', sections.Select(s => $"{s.Key}={s.Value}")),
                ChangedSections = changed,
                PublishedAt = now,
            };
            db.PolicyVersions.Add(version);
            var recipients = new List<(Guid Id, string Email)>();
            if (latest is not null)
            {
                recipients = (await db.Memberships.AsNoTracking().Where(m => m.Role == OrgRole.Owner)
                    .Join(db.Users.Where(u => u.ClosedAt == null), m => m.UserId, u => u.Id, (m, u) => new { u.Id, u.Email })
                    .Distinct().ToListAsync(cancellationToken)).Select(r => (r.Id, r.Email)).ToList();
                foreach (var (userId, _) in recipients)
                {
                    db.Notifications.Add(new Notification
                    {
                        Id = Guid.CreateVersion7(now),
                        UserId = userId,
                        Kind = "policy_update",
                        Subject = $"Our privacy policy changed (version {version.Version})",
                        Body = Notice(version.Version, now),
                        CreatedAt = now,
                    });
                }
            }

            scope.ServiceProvider.GetRequiredService<AuditLog>().Record("policy.publish", $"policy:v{version.Version} sha256:{fingerprint[..16]}", actorOverride: "system");
            try
            {
                await db.SaveChangesAsync(cancellationToken);
            }
            catch (DbUpdateException)
            {
                // Another replica published the same change at the same moment; its version stands.
                await using var fresh = scopes.CreateAsyncScope();
                return await CurrentVersionAsync(fresh.ServiceProvider.GetRequiredService<SluiceDbContext>(), cancellationToken);
            }

            PrivacyLog.Published(logger, version.Version, recipients.Count);
            if (email.IsConfigured)
            {
                foreach (var (_, address) in recipients)
                {
                    try
                    {
                        await email.SendAsync(address, $"Our privacy policy changed (version {version.Version})", Notice(version.Version, now), cancellationToken);
                    }
                    catch (Exception ex) when (ex is not OperationCanceledException)
                    {
                        // Logged by the sender (type only); the notice in the service stands either way.
                    }
                }
            }

            return version.Version;
        }
        finally
        {
            _gate.Release();
        }
    }

    public override async Task StartAsync(CancellationToken cancellationToken)
    {
        await PublishIfChangedAsync(cancellationToken);
        await base.StartAsync(cancellationToken);
    }

    protected override Task RunAsync(CancellationToken stoppingToken) =>
        Hosting.PeriodicWork.RunAsync(privacy.Value.PolicyCheckInterval, time, logger, "privacy policy check", async ct => await PublishIfChangedAsync(ct), stoppingToken, Health);

    private static SortedDictionary<string, string> SectionFingerprints(PrivacyPolicyDocument document)
    {
        var json = JsonSerializer.SerializeToElement(document, PrivacyPolicyJson.Default.PrivacyPolicyDocument);
        var sections = new SortedDictionary<string, string>(StringComparer.Ordinal);
        foreach (var property in json.EnumerateObject().Where(p => p.Name is not "version" and not "lastUpdated" and not "changedInThisVersion"))
        {
            sections[property.Name] = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(property.Value.GetRawText())).AsSpan(0, 8));
        }

        return sections;
    }

    private static string Notice(int version, DateTimeOffset at) =>
        $"Version {version} of the privacy policy took effect on {at.UtcDateTime:yyyy-MM-dd}. Read it at /privacy; what changed is listed at /privacy.json.";

    private static int? Days(TimeSpan period) => (int)Math.Ceiling(period.TotalDays);
}
