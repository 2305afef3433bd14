using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.EntityFrameworkCore;
using Sluice.Storage;
using Sluice.Tests.TestSupport;
using static Sluice.Tests.TestSupport.GatewayKit;

namespace Sluice.Tests.Privacy;

/// <summary>Staff read an organization's content only under a grant it approved, only while the grant lasts, and always audited.</summary>
public sealed class StaffAccessTests
{
    [Fact]
    public async Task An_operator_reads_an_organizations_files_only_under_an_approved_unexpired_grant_and_every_read_is_audited()
    {
        var clock = new ManualTimeProvider(DateTimeOffset.UtcNow);
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Sqlite);
        await using var sluice = new SluiceFactory(database, time: clock);
        using var op = await OperatorAsync(sluice);
        var (owner, orgId, key) = await TenantAsync(sluice, scopes: "batch");
        using var viewer = await sluice.AddMemberAsync(owner, orgId, "viewer@example.com", "viewer");
        const string Secret = "canary-staff-4419 customer data";
        using var client = sluice.WithKey(key);
        var fileId = await BatchKit.UploadIdAsync(client, BatchKit.ChatLines(1, _ => Secret));

        var withoutGrant = await op.GetAsync($"/api/v1/admin/orgs/{orgId}/files/{fileId}/content");
        Assert.Equal(HttpStatusCode.Forbidden, withoutGrant.StatusCode);
        Assert.Contains("access grant", await withoutGrant.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.BadRequest, (await op.PostAsJsonAsync($"/api/v1/admin/orgs/{orgId}/access-grants", new { hours = 2 })).StatusCode);
        Assert.Equal(HttpStatusCode.BadRequest, (await op.PostAsJsonAsync($"/api/v1/admin/orgs/{orgId}/access-grants", new { reason = "debug", hours = 24 * 30 })).StatusCode);
        Assert.Equal(HttpStatusCode.BadRequest, (await op.PostAsJsonAsync($"/api/v1/admin/orgs/{orgId}/access-grants", new { reason = "debug", hours = 1e300 })).StatusCode);
        Assert.Equal(HttpStatusCode.Forbidden, (await owner.PostAsJsonAsync($"/api/v1/admin/orgs/{orgId}/access-grants", new { reason = "me", hours = 1 })).StatusCode);

        var requested = await op.PostAsJsonAsync($"/api/v1/admin/orgs/{orgId}/access-grants", new { reason = "batch output looks truncated (ticket 42)", hours = 2 });
        Assert.Equal(HttpStatusCode.Created, requested.StatusCode);
        var grantId = (await requested.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetGuid();
        Assert.Contains((await owner.GetFromJsonAsync<JsonElement>("/api/v1/me/notifications")).EnumerateArray(), n => n.GetProperty("kind").GetString() == "staff_access_request");
        Assert.Equal(HttpStatusCode.Forbidden, (await op.GetAsync($"/api/v1/admin/orgs/{orgId}/files/{fileId}/content")).StatusCode); // requested is not approved
        Assert.Equal(HttpStatusCode.Forbidden, (await viewer.PostAsync($"/api/v1/orgs/{orgId}/access-grants/{grantId}/approve", null)).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await owner.PostAsync($"/api/v1/orgs/{orgId}/access-grants/{grantId}/approve", null)).StatusCode);

        var files = await op.GetFromJsonAsync<JsonElement>($"/api/v1/admin/orgs/{orgId}/files");
        Assert.Equal(fileId, Assert.Single(files.EnumerateArray()).GetProperty("id").GetString());
        var content = await op.GetAsync($"/api/v1/admin/orgs/{orgId}/files/{fileId}/content");
        Assert.Equal(HttpStatusCode.OK, content.StatusCode);
        Assert.Contains(Secret, await content.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        var (_, otherOrg, _) = await TenantAsync(sluice, "other@example.com");
        Assert.Equal(HttpStatusCode.Forbidden, (await op.GetAsync($"/api/v1/admin/orgs/{otherOrg}/files/{fileId}/content")).StatusCode); // a grant covers its org only

        clock.Advance(TimeSpan.FromHours(2) + TimeSpan.FromMinutes(1));
        using var later = await OperatorAsync(sluice);
        Assert.Equal(HttpStatusCode.Forbidden, (await later.GetAsync($"/api/v1/admin/orgs/{orgId}/files/{fileId}/content")).StatusCode);

        await using var db = database.CreateContext();
        var entries = await db.AuditEntries.Where(e => e.Action.StartsWith("staff_access")).OrderBy(e => e.Seq).ToListAsync();
        Assert.Equal(2, entries.Count(e => e.Action == "staff_access.read" && e.Outcome == "success" && e.OrganizationId == orgId));
        Assert.Contains(entries, e => e.Action == "staff_access.read" && e.Outcome == "success" && e.Target == $"staff_access:{grantId} {fileId}");
        Assert.True(entries.Count(e => e.Action == "staff_access.read" && e.Outcome == "refused") >= 4);
        Assert.Contains(entries, e => e.Action == "staff_access.approve" && e.Outcome == "success");
        Assert.Contains(entries, e => e.Action == "staff_access.request" && e.Outcome == "refused");
        var log = string.Join("\n", entries.Select(e => System.Text.Encoding.UTF8.GetString(e.CanonicalBytes())));
        Canary.AssertAbsent(log, Secret, "the audit log");
        Canary.AssertAbsent(sluice.Logs.All, Secret, "the logs");
        Canary.AssertAbsent(await Canary.DumpDatabaseAsync(database), Secret, "the database");
    }

    [Fact]
    public async Task An_organization_can_deny_or_revoke_a_grant_and_keys_cannot_decide_for_people()
    {
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Sqlite);
        await using var sluice = new SluiceFactory(database);
        using var op = await OperatorAsync(sluice);
        var (owner, orgId, _) = await TenantAsync(sluice);
        var (_, adminKey) = await SluiceFactory.CreateKeyAsync(owner, orgId, "management:write");
        using var keyClient = sluice.WithKey(adminKey);
        async Task<Guid> RequestAsync() => (await (await op.PostAsJsonAsync($"/api/v1/admin/orgs/{orgId}/access-grants", new { reason = "debug", hours = 1 })).Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetGuid();

        var denied = await RequestAsync();
        Assert.Equal(HttpStatusCode.Forbidden, (await keyClient.PostAsync($"/api/v1/orgs/{orgId}/access-grants/{denied}/approve", null)).StatusCode);
        Assert.Equal("denied", (await (await owner.PostAsync($"/api/v1/orgs/{orgId}/access-grants/{denied}/deny", null)).Content.ReadFromJsonAsync<JsonElement>()).GetProperty("status").GetString());
        Assert.Equal(HttpStatusCode.Conflict, (await owner.PostAsync($"/api/v1/orgs/{orgId}/access-grants/{denied}/approve", null)).StatusCode);

        var revoked = await RequestAsync();
        Assert.Equal(HttpStatusCode.OK, (await owner.PostAsync($"/api/v1/orgs/{orgId}/access-grants/{revoked}/approve", null)).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await op.GetAsync($"/api/v1/admin/orgs/{orgId}/files")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await owner.DeleteAsync($"/api/v1/orgs/{orgId}/access-grants/{revoked}")).StatusCode);
        Assert.Equal(HttpStatusCode.Forbidden, (await op.GetAsync($"/api/v1/admin/orgs/{orgId}/files")).StatusCode);
        var grants = await owner.GetFromJsonAsync<JsonElement>($"/api/v1/orgs/{orgId}/access-grants");
        Assert.All(grants.EnumerateArray(), g => Assert.False(g.GetProperty("active").GetBoolean()));
        Assert.Equal(HttpStatusCode.NotFound, (await owner.PostAsync($"/api/v1/orgs/{orgId}/access-grants/{Guid.NewGuid()}/approve", null)).StatusCode);
    }
}
