using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using System.Text.RegularExpressions;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Sluice.Privacy;
using Sluice.Storage;
using Sluice.Tests.TestSupport;
using static Sluice.Tests.TestSupport.GatewayKit;

namespace Sluice.Tests.Privacy;

/// <summary>The privacy policy is generated from what the code enforces, versioned, and announced when it changes.</summary>
public sealed partial class PolicyTests
{
    [Fact]
    public async Task The_policy_states_the_live_retention_periods_age_regions_and_subprocessors()
    {
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Sqlite);
        await using var sluice = new SluiceFactory(database, new Dictionary<string, string?>
        {
            ["Retention:RequestMetadata"] = "30.00:00:00",
            ["Audit:Retention"] = "120.00:00:00",
            ["Files:Retention"] = "14.00:00:00",
            ["Identity:MinimumAge"] = "16",
            ["Privacy:Controller"] = "Example Inference GmbH",
            ["Privacy:Regions:0"] = "EU (Frankfurt)",
        });
        using var op = await OperatorAsync(sluice);
        Assert.Equal(HttpStatusCode.Created, (await op.PostAsJsonAsync("/api/v1/admin/subprocessors", new { name = "Stripe", purpose = "card payments", location = "USA" })).StatusCode);
        await sluice.Services.GetRequiredService<PolicyPublisher>().PublishIfChangedAsync(CancellationToken.None);
        using var anonymous = sluice.Anonymous();

        var policy = await anonymous.GetFromJsonAsync<JsonElement>("/privacy.json");
        var html = await anonymous.GetStringAsync("/privacy");

        int Days(string retentionClass) => policy.GetProperty("retention").EnumerateArray().Single(r => r.GetProperty("class").GetString() == retentionClass).GetProperty("days").GetInt32();
        Assert.Equal(30, Days("request_metadata"));
        Assert.Equal(120, Days("audit_log"));
        Assert.Equal(14, Days("batch_files"));
        Assert.Equal(365, Days("operational_metadata"));
        Assert.True(Days("billing") >= 7 * 365);
        Assert.Equal(90, Days("login_events"));
        Assert.Equal(30, Days("deleted_accounts"));
        Assert.Equal(16, policy.GetProperty("minimumAge").GetInt32());
        Assert.Equal("Example Inference GmbH", policy.GetProperty("controller").GetString());
        Assert.Equal(["EU (Frankfurt)"], policy.GetProperty("regions").EnumerateArray().Select(r => r.GetString()));
        Assert.Contains(policy.GetProperty("subprocessors").EnumerateArray(), s => s.GetProperty("name").GetString() == "Stripe" && s.GetProperty("location").GetString() == "USA");
        Assert.Contains(policy.GetProperty("rights").EnumerateArray(), r => r.GetProperty("right").GetString() == "deletion");
        Assert.Equal(2, policy.GetProperty("version").GetInt32());
        Assert.Contains("subprocessors", policy.GetProperty("changedInThisVersion").EnumerateArray().Select(c => c.GetString()));
        Assert.StartsWith("text/html", (await anonymous.GetAsync("/privacy")).Content.Headers.ContentType?.MediaType, StringComparison.Ordinal);
        Assert.Contains("Last updated: <time", html, StringComparison.Ordinal);
        Assert.Contains("Stripe", html, StringComparison.Ordinal);
        Assert.Contains("30 days", html, StringComparison.Ordinal);
        Assert.DoesNotContain("<script", html, StringComparison.OrdinalIgnoreCase);
    }

    [Fact]
    public async Task A_material_change_bumps_the_version_and_notifies_organization_owners_in_the_service_and_by_email()
    {
        await using var smtp = new FakeSmtp();
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Sqlite);
        await using var sluice = new SluiceFactory(database, new Dictionary<string, string?>
        {
            ["Privacy:SmtpHost"] = "127.0.0.1",
            ["Privacy:SmtpPort"] = smtp.Port.ToString(System.Globalization.CultureInfo.InvariantCulture),
        });
        using var op = await OperatorAsync(sluice);
        var (owner, orgId, _) = await TenantAsync(sluice, "owner@example.com");
        using var member = await sluice.AddMemberAsync(owner, orgId, "member@example.com", "member");
        var publisher = sluice.Services.GetRequiredService<PolicyPublisher>();
        var before = (await sluice.Anonymous().GetFromJsonAsync<JsonElement>("/privacy.json")).GetProperty("version").GetInt32();

        Assert.Equal(before, await publisher.PublishIfChangedAsync(CancellationToken.None)); // nothing changed, nothing published
        Assert.Equal(HttpStatusCode.Created, (await op.PostAsJsonAsync("/api/v1/admin/subprocessors", new { name = "Postmark", purpose = "service email", location = "USA" })).StatusCode);
        var after = await publisher.PublishIfChangedAsync(CancellationToken.None);

        Assert.Equal(before + 1, after);
        var notices = await owner.GetFromJsonAsync<JsonElement>("/api/v1/me/notifications");
        var notice = Assert.Single(notices.EnumerateArray(), n => n.GetProperty("kind").GetString() == "policy_update");
        Assert.Contains($"version {after}", notice.GetProperty("subject").GetString(), StringComparison.Ordinal);
        Assert.DoesNotContain((await member.GetFromJsonAsync<JsonElement>("/api/v1/me/notifications")).EnumerateArray(), n => n.GetProperty("kind").GetString() == "policy_update");
        Assert.Equal(HttpStatusCode.NoContent, (await owner.PostAsync($"/api/v1/me/notifications/{notice.GetProperty("id").GetGuid()}/read", null)).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await member.PostAsync($"/api/v1/me/notifications/{notice.GetProperty("id").GetGuid()}/read", null)).StatusCode);
        var mail = Assert.Single(smtp.Messages, m => m.Recipient == "owner@example.com");
        Assert.Contains("privacy policy", mail.Data, StringComparison.OrdinalIgnoreCase);
        Assert.DoesNotContain(smtp.Messages, m => m.Recipient == "member@example.com");
        await using var db = database.CreateContext();
        Assert.Equal("subprocessors", await db.PolicyVersions.Where(v => v.Version == after).Select(v => v.ChangedSections).SingleAsync());
        Assert.Contains((await db.AuditEntries.Where(e => e.Action == "policy.publish").ToListAsync()), e => e.Target.StartsWith($"policy:v{after} ", StringComparison.Ordinal));
    }

    [Fact]
    public async Task With_an_email_relay_a_request_is_verified_by_an_emailed_code_that_is_never_logged_or_stored()
    {
        await using var smtp = new FakeSmtp();
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Sqlite);
        await using var sluice = new SluiceFactory(database, new Dictionary<string, string?>
        {
            ["Privacy:SmtpHost"] = "127.0.0.1",
            ["Privacy:SmtpPort"] = smtp.Port.ToString(System.Globalization.CultureInfo.InvariantCulture),
        });
        var (person, _) = await sluice.SignUpAndLoginAsync("coded@example.com");

        var created = await person.PostAsJsonAsync("/api/v1/privacy/requests", new { type = "opt_out" });
        var requestId = (await created.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetGuid();
        var mail = Assert.Single(smtp.Messages);
        var code = VerificationCode().Match(mail.Data.Replace("=\r\n", "", StringComparison.Ordinal)).Groups[1].Value;
        Assert.Equal(8, code.Length);
        var wrong = await person.PostAsJsonAsync($"/api/v1/privacy/requests/{requestId}/verify", new { code = "00000000" == code ? "11111111" : "00000000" });
        var verified = await person.PostAsJsonAsync($"/api/v1/privacy/requests/{requestId}/verify", new { code });

        Assert.Equal(HttpStatusCode.BadRequest, wrong.StatusCode);
        Assert.Equal(HttpStatusCode.OK, verified.StatusCode);
        var body = await verified.Content.ReadFromJsonAsync<JsonElement>();
        Assert.Equal("completed", body.GetProperty("status").GetString()); // an opt-out is honoured once verified
        Assert.Equal("code", body.GetProperty("verificationMethod").GetString());
        Canary.AssertAbsent(sluice.Logs.All, code, "the logs");
        Canary.AssertAbsent(await Canary.DumpDatabaseAsync(database), code, "the database");
        var consents = await person.GetFromJsonAsync<JsonElement>("/api/v1/me/consents");
        Assert.False(consents.GetProperty("current").EnumerateArray().Single(c => c.GetProperty("purpose").GetString() == "marketing").GetProperty("granted").GetBoolean());
    }

    [Fact]
    public async Task A_request_made_while_the_mail_relay_is_down_stands_and_is_verified_by_password()
    {
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Sqlite);
        await using var sluice = new SluiceFactory(database, new Dictionary<string, string?>
        {
            ["Privacy:SmtpHost"] = "127.0.0.1",
            ["Privacy:SmtpPort"] = SluiceProcess.FreePort().ToString(System.Globalization.CultureInfo.InvariantCulture), // nothing listens there
        });
        var (person, _) = await sluice.SignUpAndLoginAsync("unmailed@example.com");

        var created = await person.PostAsJsonAsync("/api/v1/privacy/requests", new { type = "access" });
        Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        var requestId = (await created.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetGuid();
        var verified = await person.PostAsJsonAsync($"/api/v1/privacy/requests/{requestId}/verify", new { password = SluiceFactory.Password });

        Assert.Equal(HttpStatusCode.OK, verified.StatusCode);
        Assert.Contains("Service email could not be sent", sluice.Logs.All, StringComparison.Ordinal);
        Assert.DoesNotContain("unmailed@example.com", sluice.Logs.All, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Two_replicas_publishing_the_same_change_at_once_make_one_version_and_one_notice_per_owner()
    {
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Postgres);
        await using var first = new SluiceFactory(database);
        await using var second = new SluiceFactory(database);
        using var op = await OperatorAsync(first);
        var (owner, _, _) = await TenantAsync(first, "owner@example.com");
        _ = second.Server; // started: it found the policy already published
        Assert.Equal(HttpStatusCode.Created, (await op.PostAsJsonAsync("/api/v1/admin/subprocessors", new { name = "Hosting Co", purpose = "servers", location = "EU" })).StatusCode);

        var versions = await Task.WhenAll(
            first.Services.GetRequiredService<PolicyPublisher>().PublishIfChangedAsync(CancellationToken.None),
            second.Services.GetRequiredService<PolicyPublisher>().PublishIfChangedAsync(CancellationToken.None));

        Assert.Equal(versions[0], versions[1]);
        await using var db = database.CreateContext();
        Assert.Equal(versions[0], await db.PolicyVersions.CountAsync());
        Assert.Single((await owner.GetFromJsonAsync<JsonElement>("/api/v1/me/notifications")).EnumerateArray(), n => n.GetProperty("kind").GetString() == "policy_update");
    }

    [GeneratedRegex(@"code is (\d{8})")]
    private static partial Regex VerificationCode();
}
