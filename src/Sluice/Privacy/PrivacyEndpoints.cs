using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using Microsoft.EntityFrameworkCore;
using Sluice.Files;
using Sluice.Hosting;
using Sluice.Identity;
using Sluice.Storage;

namespace Sluice.Privacy;

/// <summary>The generated policy, data-subject requests, consents, notices, legal holds, subprocessors and staff access.</summary>
internal static class PrivacyEndpoints
{
    public static IEndpointRouteBuilder MapPrivacy(this IEndpointRouteBuilder endpoints)
    {
        endpoints.MapGet("/privacy.json", async (HttpContext http, PolicyPublisher policy, SluiceDbContext db, CancellationToken ct) =>
        {
            var document = await policy.CurrentAsync(db, ct);
            http.Response.ContentType = "application/json; charset=utf-8";
            await JsonSerializer.SerializeAsync(http.Response.Body, document, PrivacyPolicyJson.Default.PrivacyPolicyDocument, ct);
        }).AllowAnonymous().WithTags("privacy");
        endpoints.MapGet("/privacy", async (PolicyPublisher policy, SluiceDbContext db, CancellationToken ct) =>
            Results.Content(PolicyHtml.Render(await policy.CurrentAsync(db, ct)), "text/html; charset=utf-8")).AllowAnonymous().WithTags("privacy");

        var api = endpoints.MapGroup("/api/v1");
        var requests = api.MapGroup("/privacy/requests").WithTags("privacy").RequireAuthorization(Policies.User);
        requests.MapPost("", async (CreatePrivacyRequest request, HttpContext http, PrivacyRequestService service, CancellationToken ct) =>
        {
            var created = await service.CreateAsync(http.Caller().UserId!.Value, request, ct);
            return TypedResults.Created($"/api/v1/privacy/requests/{created.Id}", created);
        });
        requests.MapGet("", (HttpContext http, PrivacyRequestService service, CancellationToken ct) => service.ListForSubjectAsync(http.Caller().UserId!.Value, ct));
        requests.MapGet("/{requestId:guid}", (Guid requestId, HttpContext http, PrivacyRequestService service, CancellationToken ct) =>
            service.GetAsync(http.Caller().UserId!.Value, requestId, ct));
        requests.MapPost("/{requestId:guid}/verify", (Guid requestId, VerifyPrivacyRequest request, HttpContext http, PrivacyRequestService service, CancellationToken ct) =>
            service.VerifyAsync(http.Caller().UserId!.Value, requestId, request, ct));
        requests.MapPost("/{requestId:guid}/appeal", (Guid requestId, DecidePrivacyRequest request, HttpContext http, PrivacyRequestService service, CancellationToken ct) =>
            service.AppealAsync(http.Caller().UserId!.Value, requestId, request, ct));
        requests.MapPost("/{requestId:guid}/cancel", (Guid requestId, HttpContext http, PrivacyRequestService service, CancellationToken ct) =>
            service.CancelAsync(http.Caller().UserId!.Value, requestId, ct));
        requests.MapGet("/{requestId:guid}/export", async (Guid requestId, HttpContext http, PrivacyRequestService service, SubjectExport export, CancellationToken ct) =>
        {
            var request = await service.ExportableAsync(http.Caller().UserId!.Value, requestId, ct);
            http.Response.ContentType = "application/json; charset=utf-8";
            http.Response.Headers.CacheControl = "no-store";
            if (request.Type == PrivacyRequestTypes.Export)
            {
                http.Response.Headers.ContentDisposition = $"attachment; filename=\"sluice-export-{request.Id}.json\"";
            }

            await export.WriteAsync(request.UserId, http.Response.Body, ct);
        });

        var me = api.MapGroup("/me").WithTags("me").RequireAuthorization(Policies.User);
        me.MapGet("/consents", (HttpContext http, ConsentService consents, CancellationToken ct) =>
            consents.ForUserAsync(http.Caller().UserId!.Value, ConsentService.BrowserRefusesTracking(http.Request), ct));
        me.MapPut("/consents", (RecordConsentRequest request, HttpContext http, ConsentService consents, CancellationToken ct) =>
            consents.RecordForUserAsync(http.Caller().UserId!.Value, request, ConsentService.BrowserRefusesTracking(http.Request), ct));
        me.MapGet("/notifications", async (HttpContext http, SluiceDbContext db, CancellationToken ct) =>
        {
            var userId = http.Caller().UserId!.Value;
            return (await db.Notifications.AsNoTracking().Where(n => n.UserId == userId).ToListAsync(ct))
                .OrderByDescending(n => n.CreatedAt).Select(n => new NotificationResponse(n.Id, n.Kind, n.Subject, n.Body, n.OrganizationId, n.CreatedAt, n.ReadAt)).ToList();
        });
        me.MapPost("/notifications/{notificationId:guid}/read", async (Guid notificationId, HttpContext http, SluiceDbContext db, TimeProvider time, CancellationToken ct) =>
        {
            var userId = http.Caller().UserId!.Value;
            var now = time.GetUtcNow();
            var updated = await db.Notifications.Where(n => n.Id == notificationId && n.UserId == userId && n.ReadAt == null)
                .ExecuteUpdateAsync(set => set.SetProperty(n => n.ReadAt, now), ct);
            return updated == 0 && !await db.Notifications.AnyAsync(n => n.Id == notificationId && n.UserId == userId, ct)
                ? throw ApiProblem.NotFound("notification")
                : TypedResults.NoContent();
        });

        var org = api.MapGroup("/orgs/{orgId:guid}").WithTags("privacy");
        org.MapGet("/consents", (Guid orgId, ConsentService consents, CancellationToken ct) => consents.ForOrganizationAsync(orgId, ct))
            .RequireAuthorization(Policies.Org(OrgAccess.OrgRead));
        org.MapPut("/consents", (Guid orgId, RecordConsentRequest request, ConsentService consents, CancellationToken ct) => consents.RecordForOrganizationAsync(orgId, request, ct))
            .RequireAuthorization(Policies.Org(OrgAccess.OrgWrite));
        org.MapGet("/access-grants", (Guid orgId, StaffAccessService service, CancellationToken ct) => service.ListAsync(orgId, ct))
            .RequireAuthorization(Policies.Org(OrgAccess.OrgWrite));
        org.MapPost("/access-grants/{grantId:guid}/approve", (Guid orgId, Guid grantId, HttpContext http, StaffAccessService service, CancellationToken ct) =>
            service.DecideAsync(orgId, grantId, Person(http), StaffAccessStatus.Approved, ct)).RequireAuthorization(Policies.Org(OrgAccess.OrgWrite));
        org.MapPost("/access-grants/{grantId:guid}/deny", (Guid orgId, Guid grantId, HttpContext http, StaffAccessService service, CancellationToken ct) =>
            service.DecideAsync(orgId, grantId, Person(http), StaffAccessStatus.Denied, ct)).RequireAuthorization(Policies.Org(OrgAccess.OrgWrite));
        org.MapDelete("/access-grants/{grantId:guid}", (Guid orgId, Guid grantId, HttpContext http, StaffAccessService service, CancellationToken ct) =>
            service.DecideAsync(orgId, grantId, Person(http), StaffAccessStatus.Revoked, ct)).RequireAuthorization(Policies.Org(OrgAccess.OrgWrite));

        var admin = api.MapGroup("/admin").WithTags("operators").RequireAuthorization(Policies.Operator);
        admin.MapGet("/privacy/requests", (string? status, PrivacyRequestService service, CancellationToken ct) => service.ListAllAsync(status, ct));
        admin.MapPost("/privacy/requests/{requestId:guid}/approve", (Guid requestId, DecidePrivacyRequest? request, PrivacyRequestService service, CancellationToken ct) =>
            service.ApproveAsync(requestId, request ?? new DecidePrivacyRequest(null), ct));
        admin.MapPost("/privacy/requests/{requestId:guid}/deny", (Guid requestId, DecidePrivacyRequest? request, PrivacyRequestService service, CancellationToken ct) =>
            service.DenyAsync(requestId, request ?? new DecidePrivacyRequest(null), ct));

        admin.MapPost("/users/{userId:guid}/erase", async (Guid userId, DecidePrivacyRequest? request, AccountErasure erasure, CancellationToken ct) =>
        {
            await erasure.EraseNowAsync(userId, request?.Reason, ct);
            return TypedResults.NoContent();
        });
        admin.MapGet("/legal-holds", (bool? includeReleased, LegalHoldService holds, CancellationToken ct) => holds.ListAsync(includeReleased ?? false, ct));
        admin.MapPost("/legal-holds", async (PlaceHoldRequest request, LegalHoldService holds, CancellationToken ct) =>
        {
            var hold = await holds.PlaceAsync(request, ct);
            return TypedResults.Created($"/api/v1/admin/legal-holds/{hold.Id}", hold);
        });
        admin.MapPost("/legal-holds/{holdId:guid}/release", (Guid holdId, ReleaseHoldRequest? request, LegalHoldService holds, CancellationToken ct) =>
            holds.ReleaseAsync(holdId, request ?? new ReleaseHoldRequest(null), ct));
        admin.MapGet("/retention", (PolicyPublisher policy, SluiceDbContext db, CancellationToken ct) => RetentionAsync(policy, db, ct));
        admin.MapPost("/retention/sweep", async (RetentionSweeper sweeper, CancellationToken ct) =>
            await sweeper.SweepAsync(ct) is { } results
                ? Results.Ok(results)
                : Results.Problem(statusCode: StatusCodes.Status409Conflict, title: "A sweep is running.", detail: "Another replica is sweeping right now; try again in a moment."));

        admin.MapGet("/subprocessors", (SubprocessorService service, CancellationToken ct) => service.ListAsync(ct));
        admin.MapPost("/subprocessors", async (SubprocessorRequest request, SubprocessorService service, CancellationToken ct) =>
        {
            var created = await service.CreateAsync(request, ct);
            return TypedResults.Created($"/api/v1/admin/subprocessors/{created.Id}", created);
        });
        admin.MapPatch("/subprocessors/{subprocessorId:guid}", (Guid subprocessorId, SubprocessorRequest request, SubprocessorService service, CancellationToken ct) =>
            service.UpdateAsync(subprocessorId, request, ct));
        admin.MapDelete("/subprocessors/{subprocessorId:guid}", async (Guid subprocessorId, SubprocessorService service, CancellationToken ct) =>
        {
            await service.DeleteAsync(subprocessorId, ct);
            return TypedResults.NoContent();
        });

        admin.MapPost("/orgs/{orgId:guid}/access-grants", async (Guid orgId, RequestStaffAccess request, HttpContext http, StaffAccessService service, CancellationToken ct) =>
        {
            var grant = await service.RequestAsync(orgId, http.Caller().UserId!.Value, request, ct);
            return TypedResults.Created($"/api/v1/orgs/{orgId}/access-grants/{grant.Id}", grant);
        });
        admin.MapGet("/orgs/{orgId:guid}/files", (Guid orgId, HttpContext http, StaffAccessService service, CancellationToken ct) =>
            service.FilesAsync(orgId, http.Caller().UserId!.Value, ct));
        admin.MapGet("/orgs/{orgId:guid}/files/{fileId}/content", async (Guid orgId, string fileId, HttpContext http, StaffAccessService service, CancellationToken ct) =>
        {
            var (file, content) = await service.OpenFileAsync(orgId, http.Caller().UserId!.Value, fileId, ct);
            await using (content)
            {
                http.Response.ContentType = "application/octet-stream";
                http.Response.ContentLength = file.Bytes;
                http.Response.Headers.CacheControl = "no-store";
                await content.CopyToAsync(http.Response.Body, EncryptedFile.ChunkSize, ct);
            }
        });
        return endpoints;
    }

    private static Guid? Person(HttpContext http) => http.Caller() is { IsKey: false, UserId: { } id } ? id : null;

    private static async Task<RetentionResponse> RetentionAsync(PolicyPublisher policy, SluiceDbContext db, CancellationToken ct)
    {
        var document = await policy.BuildAsync(db, ct);
        var holds = await db.LegalHolds.AsNoTracking().Where(h => h.ReleasedAt == null).ToListAsync(ct);
        return new RetentionResponse(document.Retention, holds.OrderBy(h => h.PlacedAt).Select(LegalHoldResponse.From).ToList());
    }
}

public sealed record NotificationResponse(Guid Id, string Kind, string Subject, string Body, Guid? OrganizationId, DateTimeOffset CreatedAt, DateTimeOffset? ReadAt);

public sealed record RetentionResponse(IReadOnlyList<RetentionPeriod> Classes, IReadOnlyList<LegalHoldResponse> ActiveHolds);

/// <summary>The policy as a plain, self-contained HTML page (no scripts, no external resources, no cookies).</summary>
internal static class PolicyHtml
{
    public static string Render(PrivacyPolicyDocument p)
    {
        var e = HtmlEncoder.Default;
        var html = new StringBuilder();
        html.Append("<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Privacy policy</title>")
            .Append("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">")
            // The console's stylesheet (same origin, allowed by its strict CSP): no inline style or script anywhere.
            .Append($"<link rel=\"stylesheet\" href=\"{WebConsole.ConsoleAssets.Url("console.css")}\"></head><body>")
            .Append("<header class=\"topbar\"><a class=\"brand\" href=\"/\">Sluice</a></header><main id=\"main\" class=\"privacy-policy\">")
            .Append("<h1>Privacy policy</h1>")
            .Append($"<p>Version {p.Version}. Last updated: <time datetime=\"{p.LastUpdated?.UtcDateTime:yyyy-MM-dd}\">{p.LastUpdated?.UtcDateTime:yyyy-MM-dd}</time>.</p>")
            .Append($"<p>{e.Encode(p.Controller)} is responsible for your data. Contact: <a href=\"mailto:{e.Encode(p.Contact)}\">{e.Encode(p.Contact)}</a>.</p>");
        Section(html, "What happens to your content", p.ContentPromises.Select(e.Encode));
        Section(html, "What we collect", p.DataCategories.Select(c => $"<strong>{e.Encode(c.Name)}</strong>: {e.Encode(c.Contents)}. Why: {e.Encode(c.Purpose)}. Kept: {e.Encode(c.Retention)}."));
        Section(html, "How long we keep it", p.Retention.Select(r => $"<strong>{e.Encode(r.Records)}</strong> ({e.Encode(r.Class)}): {r.Days} days; {e.Encode(r.Rule)}."));
        Section(html, "Who we share it with", p.Subprocessors.Count == 0
            ? ["No subprocessors are listed."]
            : p.Subprocessors.Select(s => $"<strong>{e.Encode(s.Name)}</strong>: {e.Encode(s.Purpose)} ({e.Encode(s.Location)})"));
        Section(html, "Model providers that receive your requests", p.ModelProviders.Count == 0
            ? ["Only the built-in test model; no outside provider receives content."]
            : p.ModelProviders.Select(m => $"<strong>{e.Encode(m.Name)}</strong>: {(m.RetainsData ? "may retain data" : "retains no data")}; {(m.TrainsOnData ? "trains on data, used only with your organization's opt-in" : "does not train on data")}"));
        Section(html, "Your rights and how to use them", p.Rights.Select(r => $"<strong>{e.Encode(r.Right)}</strong>: {e.Encode(r.How)}"));
        Section(html, "Cookies", p.Cookies.Select(c => $"<code>{e.Encode(c.Name)}</code>: {e.Encode(c.Purpose)}{(c.Essential ? " (essential)" : "")}").Append(e.Encode(p.Sale)));
        Section(html, "Where your data is processed", p.Regions.Select(e.Encode).Append(e.Encode(p.TransferSafeguards)));
        Section(html, "Children", [e.Encode(p.Children)]);
        return html.Append("</main></body></html>").ToString();
    }

    private static void Section(StringBuilder html, string title, IEnumerable<string> items)
    {
        html.Append("<h2>").Append(HtmlEncoder.Default.Encode(title)).Append("</h2><ul>");
        foreach (var item in items)
        {
            html.Append("<li>").Append(item).Append("</li>");
        }

        html.Append("</ul>");
    }
}
