using System.Data.Common;
using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Microsoft.EntityFrameworkCore;
using Sluice.Billing;
using Sluice.Storage;
using Sluice.Tests.TestSupport;
using static Sluice.Tests.TestSupport.GatewayKit;

namespace Sluice.Tests.Privacy;

/// <summary>Data-subject requests end to end: verification, decisions, appeal, export and deletion.</summary>
public abstract class PrivacyRequestTests(DatabaseProvider provider)
{
    private const string Email = "zephyrine.quillfeather@example.com";
    private const string Name = "Zephyrine Quillfeather";
    private const string Address = "203.0.113.77";

    [Fact]
    public async Task After_a_deletion_completes_no_column_of_any_table_holds_the_persons_email_name_or_address_and_the_ledger_balances()
    {
        var clock = new ManualTimeProvider(DateTimeOffset.UtcNow);
        await using var database = await TestDatabase.CreateAsync(provider);
        await using var sluice = new SluiceFactory(database, time: clock);
        using var op = await OperatorAsync(sluice);
        var (person, personId) = await SignUpAsync(sluice);
        var orgId = await SluiceFactory.CreateOrganizationAsync(person, "Zephyrine's lab");
        Assert.Equal(HttpStatusCode.OK, (await person.PatchAsJsonAsync($"/api/v1/orgs/{orgId}", new { billingEmail = Email })).StatusCode);
        var (_, key) = await SluiceFactory.CreateKeyAsync(person, orgId, "inference");
        Assert.Equal(HttpStatusCode.Created, (await op.PostAsJsonAsync($"/api/v1/admin/orgs/{orgId}/wallet/credits", new { amountMicros = 5_000_000, reason = "trial", idempotencyKey = "z1" })).StatusCode);
        using var client = sluice.WithKey(key);
        Assert.Equal(HttpStatusCode.OK, (await client.PostAsync("/v1/chat/completions", Chat("echo", "hello"))).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await person.PutAsJsonAsync("/api/v1/me/consents", new { purpose = "marketing", granted = true })).StatusCode);

        // Someone else's organization invited her: the invitation carries her email.
        var (other, _) = await sluice.SignUpAndLoginAsync("colleague@example.com");
        var otherOrg = await SluiceFactory.CreateOrganizationAsync(other, "Colleague Co");
        Assert.Equal(HttpStatusCode.Created, (await other.PostAsJsonAsync($"/api/v1/orgs/{otherOrg}/invitations", new { email = Email, role = "member" })).StatusCode);

        var created = await person.PostAsJsonAsync("/api/v1/privacy/requests", new { type = "deletion" });
        Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        var requestId = (await created.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetGuid();
        Assert.Equal(HttpStatusCode.OK, (await person.PostAsJsonAsync($"/api/v1/privacy/requests/{requestId}/verify", new { password = SluiceFactory.Password })).StatusCode);
        var approved = await op.PostAsJsonAsync($"/api/v1/admin/privacy/requests/{requestId}/approve", new { reason = "verified by password" });
        Assert.Equal(HttpStatusCode.OK, approved.StatusCode);
        Assert.Equal("approved", (await approved.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("status").GetString());

        // Closed at once: the session ends, sign-in fails, the key stops working.
        Assert.Equal(HttpStatusCode.Unauthorized, (await person.GetAsync("/api/v1/me")).StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, (await sluice.Anonymous().PostAsJsonAsync("/api/v1/auth/login", new { email = Email, password = SluiceFactory.Password })).StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, (await client.PostAsync("/v1/chat/completions", Chat("echo", "again"))).StatusCode);

        // Within the grace period (30 days) the sweeper erases her personal data.
        clock.Advance(TimeSpan.FromDays(30) + TimeSpan.FromMinutes(1));
        using var later = await OperatorAsync(sluice);
        var swept = await later.PostAsync("/api/v1/admin/retention/sweep", null);
        Assert.True(swept.StatusCode == HttpStatusCode.OK, await swept.Content.ReadAsStringAsync());
        var erased = (await swept.Content.ReadFromJsonAsync<JsonElement>()).EnumerateArray().Single(r => r.GetProperty("class").GetString() == "deleted_accounts");
        Assert.Equal(1, erased.GetProperty("deleted").GetInt32());

        var everything = await DumpRowsAsync(database);
        Assert.Contains(personId.ToString(), everything, StringComparison.OrdinalIgnoreCase); // the scan does see the rows
        foreach (var personal in new[] { Email, Name, Address, "zephyrine" })
        {
            Assert.DoesNotContain(personal, everything, StringComparison.OrdinalIgnoreCase);
        }

        await using var db = database.CreateContext();
        Assert.All(await db.LedgerEntries.GroupBy(e => e.TransactionId).Select(g => g.Sum(e => e.AmountMicros)).ToListAsync(), sum => Assert.Equal(0, sum));
        foreach (var account in await db.LedgerAccounts.ToListAsync())
        {
            Assert.Equal(await db.LedgerEntries.Where(e => e.AccountId == account.Id).SumAsync(e => e.AmountMicros), account.BalanceMicros);
        }

        Assert.True(await db.LedgerAccounts.AnyAsync(a => a.OrganizationId == orgId && a.Type == AccountTypes.CustomerWallet && a.BalanceMicros > 0), "the org's wallet is kept");
        var request = await db.PrivacyRequests.SingleAsync(r => r.Id == requestId);
        Assert.Equal("completed", request.Status);
        Assert.True(await db.AuditEntries.AnyAsync(e => e.Action == "user.erase" && e.Target == $"user:{personId}"));
    }

    [Fact]
    public async Task An_export_holds_every_category_the_policy_lists_and_its_download_expires()
    {
        var clock = new ManualTimeProvider(DateTimeOffset.UtcNow);
        await using var database = await TestDatabase.CreateAsync(provider);
        await using var sluice = new SluiceFactory(database, time: clock);
        using var op = await OperatorAsync(sluice);
        var (person, personId) = await SignUpAsync(sluice);
        var orgId = await SluiceFactory.CreateOrganizationAsync(person, "Lab");
        var (_, key) = await SluiceFactory.CreateKeyAsync(person, orgId, "inference");
        using (var client = sluice.WithKey(key))
        {
            Assert.Equal(HttpStatusCode.OK, (await client.PostAsync("/v1/chat/completions", Chat("echo", "hello"))).StatusCode);
        }

        Assert.NotEmpty(await UsageAsync(database, 1)); // the usage writer has stored the request the export must hold
        Assert.Equal(HttpStatusCode.OK, (await person.PutAsJsonAsync("/api/v1/me/consents", new { purpose = "analytics", granted = true })).StatusCode);
        var requestId = await VerifiedRequestAsync(person, "export");
        Assert.Equal(HttpStatusCode.OK, (await op.PostAsJsonAsync($"/api/v1/admin/privacy/requests/{requestId}/approve", new { })).StatusCode);

        var download = await person.GetAsync($"/api/v1/privacy/requests/{requestId}/export");
        Assert.Equal(HttpStatusCode.OK, download.StatusCode);
        Assert.Equal("attachment", download.Content.Headers.ContentDisposition?.DispositionType);
        var archive = await download.Content.ReadFromJsonAsync<JsonElement>();
        var policy = await sluice.Anonymous().GetFromJsonAsync<JsonElement>("/privacy.json");
        var categories = policy.GetProperty("dataCategories").EnumerateArray().Select(c => c.GetProperty("id").GetString()!).ToList();
        Assert.NotEmpty(categories);
        Assert.All(categories, category => Assert.True(archive.TryGetProperty(category, out _), $"the export has no '{category}' section"));
        Assert.Equal(Email, archive.GetProperty("account").GetProperty("email").GetString());
        Assert.Equal(Address, archive.GetProperty("login_events")[0].GetProperty("address").GetString());
        Assert.Contains(archive.GetProperty("consents").EnumerateArray(), c => c.GetProperty("purpose").GetString() == "analytics" && c.GetProperty("granted").GetBoolean());
        Assert.Contains(archive.GetProperty("memberships").EnumerateArray(), m => m.GetProperty("organizationId").GetGuid() == orgId);
        Assert.Single(archive.GetProperty("api_keys").EnumerateArray());
        Assert.NotEmpty(archive.GetProperty("usage_metadata").EnumerateArray());
        Assert.Contains(archive.GetProperty("privacy_requests").EnumerateArray(), r => r.GetProperty("id").GetGuid() == requestId);
        Assert.Contains(archive.GetProperty("audit_entries").EnumerateArray(), e => e.GetProperty("action").GetString() == "org.create");
        Assert.Equal(personId, archive.GetProperty("subject").GetGuid());

        clock.Advance(TimeSpan.FromDays(7) + TimeSpan.FromMinutes(1));
        var person2 = sluice.Anonymous();
        await person2.PostAsJsonAsync("/api/v1/auth/login", new { email = Email, password = SluiceFactory.Password });
        Assert.Equal(HttpStatusCode.Gone, (await person2.GetAsync($"/api/v1/privacy/requests/{requestId}/export")).StatusCode);
    }

    [Fact]
    public async Task Requests_about_someone_else_unverified_approvals_and_too_many_wrong_passwords_are_refused_and_audited()
    {
        await using var database = await TestDatabase.CreateAsync(provider);
        await using var sluice = new SluiceFactory(database);
        using var op = await OperatorAsync(sluice);
        var (person, personId) = await SignUpAsync(sluice);
        var (stranger, strangerId) = await sluice.SignUpAndLoginAsync("stranger@example.com");

        var forSomeoneElse = await stranger.PostAsJsonAsync("/api/v1/privacy/requests", new { type = "access", subjectEmail = Email });
        var byId = await stranger.PostAsJsonAsync("/api/v1/privacy/requests", new { type = "deletion", subjectUserId = personId });
        Assert.Equal(HttpStatusCode.Forbidden, forSomeoneElse.StatusCode);
        Assert.Equal(HttpStatusCode.Forbidden, byId.StatusCode);

        var created = await person.PostAsJsonAsync("/api/v1/privacy/requests", new { type = "access" });
        var body = await created.Content.ReadFromJsonAsync<JsonElement>();
        var requestId = body.GetProperty("id").GetGuid();
        Assert.Equal("pending_verification", body.GetProperty("status").GetString());
        Assert.Equal(TimeSpan.FromDays(30), body.GetProperty("dueAt").GetDateTimeOffset() - body.GetProperty("createdAt").GetDateTimeOffset());
        Assert.Equal(HttpStatusCode.NotFound, (await stranger.GetAsync($"/api/v1/privacy/requests/{requestId}")).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await stranger.PostAsJsonAsync($"/api/v1/privacy/requests/{requestId}/verify", new { password = SluiceFactory.Password })).StatusCode);

        var unverified = await op.PostAsJsonAsync($"/api/v1/admin/privacy/requests/{requestId}/approve", new { });
        Assert.Equal(HttpStatusCode.Conflict, unverified.StatusCode);
        Assert.Contains("verif", await unverified.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        var noReason = await op.PostAsJsonAsync($"/api/v1/admin/privacy/requests/{requestId}/deny", new { });
        Assert.Equal(HttpStatusCode.BadRequest, noReason.StatusCode);
        Assert.Equal(HttpStatusCode.BadRequest, (await person.PostAsJsonAsync("/api/v1/privacy/requests", new { type = "everything" })).StatusCode);
        Assert.Equal(HttpStatusCode.Forbidden, (await person.GetAsync("/api/v1/admin/privacy/requests")).StatusCode);

        for (var attempt = 1; attempt <= 4; attempt++)
        {
            var wrong = await person.PostAsJsonAsync($"/api/v1/privacy/requests/{requestId}/verify", new { password = "not my password" });
            Assert.Equal(HttpStatusCode.BadRequest, wrong.StatusCode);
            Assert.Contains($"{5 - attempt} attempt", await wrong.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        }

        Assert.Equal(HttpStatusCode.Forbidden, (await person.PostAsJsonAsync($"/api/v1/privacy/requests/{requestId}/verify", new { password = "still wrong" })).StatusCode);
        var locked = await person.PostAsJsonAsync($"/api/v1/privacy/requests/{requestId}/verify", new { password = SluiceFactory.Password });
        Assert.Equal(HttpStatusCode.Conflict, locked.StatusCode);
        Assert.Equal(HttpStatusCode.Conflict, (await op.PostAsJsonAsync($"/api/v1/admin/privacy/requests/{requestId}/approve", new { })).StatusCode);
        Assert.Equal("verification_failed", (await person.GetFromJsonAsync<JsonElement>($"/api/v1/privacy/requests/{requestId}")).GetProperty("status").GetString());

        await using var db = database.CreateContext();
        var refused = await db.AuditEntries.Where(e => e.Outcome == "refused").Select(e => e.Action + " " + e.Target).ToListAsync();
        Assert.Equal(2, refused.Count(r => r.StartsWith("privacy_request.create", StringComparison.Ordinal)));
        Assert.Contains(refused, r => r.StartsWith("privacy_request.read", StringComparison.Ordinal));
        Assert.Contains(refused, r => r.StartsWith("privacy_request.approve", StringComparison.Ordinal) && r.EndsWith("unverified", StringComparison.Ordinal));
        Assert.Contains(refused, r => r.StartsWith("privacy_request.deny", StringComparison.Ordinal));
        Assert.Equal(5, await db.AuditEntries.CountAsync(e => e.Action == "privacy_request.verify_failed"));
        Assert.False(await db.PrivacyRequests.AnyAsync(r => r.UserId == strangerId));
        var stored = await Canary.DumpDatabaseAsync(database);
        foreach (var password in new[] { SluiceFactory.Password, "not my password", "still wrong" })
        {
            Canary.AssertAbsent(sluice.Logs.All, password, "the logs");
            Canary.AssertAbsent(stored, password, "the database");
        }
    }

    [Fact]
    public async Task A_denied_request_can_be_appealed_once_and_a_correction_is_applied_on_approval()
    {
        await using var database = await TestDatabase.CreateAsync(provider);
        await using var sluice = new SluiceFactory(database);
        using var op = await OperatorAsync(sluice);
        var (person, _) = await SignUpAsync(sluice);

        var badCorrection = await person.PostAsJsonAsync("/api/v1/privacy/requests", new { type = "correction", details = new { email = "not an email" } });
        Assert.Equal(HttpStatusCode.BadRequest, badCorrection.StatusCode);
        Assert.Contains("details.email", await badCorrection.Content.ReadAsStringAsync(), StringComparison.Ordinal);

        var requestId = await VerifiedRequestAsync(person, "correction", new { name = "Zephyrine Q. Ashdown", email = "z.ashdown@example.com" });
        Assert.Equal(HttpStatusCode.Conflict, (await person.PostAsJsonAsync($"/api/v1/privacy/requests/{requestId}/appeal", new { reason = "nothing was denied yet" })).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await op.PostAsJsonAsync($"/api/v1/admin/privacy/requests/{requestId}/deny", new { reason = "we could not confirm the new name" })).StatusCode);
        var appeal = await person.PostAsJsonAsync($"/api/v1/privacy/requests/{requestId}/appeal", new { reason = "my passport shows it" });
        Assert.Equal("appealed", (await appeal.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("status").GetString());
        var approved = await op.PostAsJsonAsync($"/api/v1/admin/privacy/requests/{requestId}/approve", new { reason = "confirmed on appeal" });
        Assert.Equal("completed", (await approved.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("status").GetString());

        var me = await person.GetFromJsonAsync<JsonElement>("/api/v1/me");
        Assert.Equal("Zephyrine Q. Ashdown", me.GetProperty("name").GetString());
        Assert.Equal("z.ashdown@example.com", me.GetProperty("email").GetString());
        Assert.Equal(HttpStatusCode.Conflict, (await person.PostAsJsonAsync($"/api/v1/privacy/requests/{requestId}/appeal", new { reason = "again" })).StatusCode);
        await using var db = database.CreateContext();
        Assert.Null(await db.PrivacyRequests.Where(r => r.Id == requestId).Select(r => r.Details).SingleAsync());
    }

    [Fact]
    public async Task An_operator_erases_an_account_learned_to_belong_to_a_child_at_once_with_a_reason_unless_a_hold_covers_it()
    {
        await using var database = await TestDatabase.CreateAsync(provider);
        await using var sluice = new SluiceFactory(database);
        using var op = await OperatorAsync(sluice);
        var (person, personId) = await SignUpAsync(sluice);

        Assert.Equal(HttpStatusCode.BadRequest, (await op.PostAsJsonAsync($"/api/v1/admin/users/{personId}/erase", new { })).StatusCode);
        Assert.Equal(HttpStatusCode.Forbidden, (await person.PostAsJsonAsync($"/api/v1/admin/users/{personId}/erase", new { reason = "me" })).StatusCode);
        var hold = await op.PostAsJsonAsync("/api/v1/admin/legal-holds", new { scope = "user", userId = personId, reason = "subpoena 12" });
        Assert.Equal(HttpStatusCode.Conflict, (await op.PostAsJsonAsync($"/api/v1/admin/users/{personId}/erase", new { reason = "under 18" })).StatusCode);
        var holdId = (await hold.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetGuid();
        await op.PostAsJsonAsync($"/api/v1/admin/legal-holds/{holdId}/release", new { reason = "withdrawn" });

        Assert.Equal(HttpStatusCode.NoContent, (await op.PostAsJsonAsync($"/api/v1/admin/users/{personId}/erase", new { reason = "the account holder is under 18" })).StatusCode);

        Assert.Equal(HttpStatusCode.Unauthorized, (await person.GetAsync("/api/v1/me")).StatusCode);
        await using var db = database.CreateContext();
        var user = await db.Users.SingleAsync(u => u.Id == personId);
        Assert.InRange(user.ErasedAt ?? DateTimeOffset.MinValue, DateTimeOffset.UtcNow.AddMinutes(-2), DateTimeOffset.UtcNow.AddMinutes(1));
        Assert.DoesNotContain("zephyrine", user.Email, StringComparison.OrdinalIgnoreCase);
        Assert.Null(user.DisplayName);
        Assert.False(await db.LoginEvents.AnyAsync(e => e.UserId == personId));
        var entries = await db.AuditEntries.Where(e => e.Target.Contains(personId.ToString())).Select(e => e.Action + " " + e.Outcome).ToListAsync();
        Assert.Contains("user.close success", entries);
        Assert.Contains("user.erase success", entries);
        Assert.Equal(2, entries.Count(e => e == "user.erase refused"));
    }

    internal static async Task<(HttpClient Client, Guid UserId)> SignUpAsync(SluiceFactory sluice)
    {
        var client = sluice.Anonymous();
        client.DefaultRequestHeaders.Add(ClientAddressFilter.Header, Address);
        Assert.Equal(HttpStatusCode.Created, (await client.PostAsJsonAsync("/api/v1/auth/signup", new { email = Email, name = Name, password = SluiceFactory.Password, ageAttestation = true })).StatusCode);
        var login = await client.PostAsJsonAsync("/api/v1/auth/login", new { email = Email, password = SluiceFactory.Password });
        Assert.Equal(HttpStatusCode.OK, login.StatusCode);
        return (client, (await login.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetGuid());
    }

    internal static async Task<Guid> VerifiedRequestAsync(HttpClient person, string type, object? details = null)
    {
        var created = await person.PostAsJsonAsync("/api/v1/privacy/requests", new { type, details });
        Assert.True(created.StatusCode == HttpStatusCode.Created, await created.Content.ReadAsStringAsync());
        var id = (await created.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetGuid();
        var verified = await person.PostAsJsonAsync($"/api/v1/privacy/requests/{id}/verify", new { password = SluiceFactory.Password });
        Assert.True(verified.StatusCode == HttpStatusCode.OK, await verified.Content.ReadAsStringAsync());
        return id;
    }

    /// <summary>Every value of every column of every table, as text.</summary>
    private static async Task<string> DumpRowsAsync(TestDatabase database)
    {
        await using var connection = database.OpenConnection();
        var tables = new List<string>();
        await using (var list = connection.CreateCommand())
        {
            list.CommandText = database.Provider == DatabaseProvider.Sqlite
                ? "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
                : "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'";
            await using var reader = await list.ExecuteReaderAsync();
            while (await reader.ReadAsync())
            {
                tables.Add(reader.GetString(0));
            }
        }

        Assert.Contains("users", tables);
        var dump = new StringBuilder();
        foreach (var table in tables)
        {
            await using var select = connection.CreateCommand();
            select.CommandText = $"SELECT * FROM \"{table}\"";
            await using DbDataReader reader = await select.ExecuteReaderAsync();
            while (await reader.ReadAsync())
            {
                for (var i = 0; i < reader.FieldCount; i++)
                {
                    dump.Append(reader.IsDBNull(i) ? "" : reader.GetValue(i) is byte[] bytes ? Encoding.Latin1.GetString(bytes) : Convert.ToString(reader.GetValue(i), System.Globalization.CultureInfo.InvariantCulture)).Append('|');
                }

                dump.Append('\n');
            }
        }

        return dump.ToString();
    }
}

public sealed class SqlitePrivacyRequestTests() : PrivacyRequestTests(DatabaseProvider.Sqlite);

public sealed class PostgresPrivacyRequestTests() : PrivacyRequestTests(DatabaseProvider.Postgres);
