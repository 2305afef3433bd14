using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.EntityFrameworkCore;
using Sluice.Audit;
using Sluice.Storage;
using Sluice.Tests.TestSupport;
using static Sluice.Tests.TestSupport.GatewayKit;

namespace Sluice.Tests.Billing;

/// <summary>
/// Money and its audit entry change together or not at all: a card top-up or an operator's credit whose audit entry
/// cannot be written credits nothing (and the processor's retry credits it once), a posting that cannot be written
/// leaves no audit entry, and a paid notification Sluice cannot credit is refused visibly instead of silently.
/// </summary>
public abstract class MoneyAuditTests(DatabaseProvider provider)
{
    private static Dictionary<string, string?> Stripe => new()
    {
        ["Billing:Stripe:SecretKey"] = "sk_test_stripe",
        ["Billing:Stripe:WebhookSecret"] = TopUpTests.WebhookSecret,
    };

    [Fact]
    public async Task A_top_up_whose_audit_entry_cannot_be_written_credits_nothing_and_the_retry_credits_it_once()
    {
        await using var database = await TestDatabase.CreateAsync(provider);
        await using var sluice = new SluiceFactory(database, Stripe);
        var (owner, orgId, _) = await TenantAsync(sluice);
        using var anonymous = sluice.Anonymous();
        var paid = TopUpTests.Event("evt_1", "cs_test_1", orgId, 1000);
        var signature = TopUpTests.Sign(paid, DateTimeOffset.UtcNow.ToUnixTimeSeconds());

        await FailInsertsAsync(database, "audit_entries", "action", "wallet.top_up");
        var failed = await TopUpTests.Deliver(anonymous, paid, signature);
        Assert.True((int)failed.StatusCode >= 500, $"{failed.StatusCode}: the processor must retry");
        Assert.Equal(0, await CountAsync(database, "SELECT COUNT(*) FROM ledger_transactions WHERE type = 'card_top_up'"));
        Assert.Equal(0, await WalletAsync(owner, orgId));

        await StopFailingAsync(database, "audit_entries");
        Assert.Equal(HttpStatusCode.OK, (await TopUpTests.Deliver(anonymous, paid, signature)).StatusCode); // the processor's retry
        Assert.Equal(HttpStatusCode.OK, (await TopUpTests.Deliver(anonymous, paid, signature)).StatusCode); // and a replay
        Assert.Equal(10_000_000, await WalletAsync(owner, orgId));
        await using var db = database.CreateContext();
        var posted = await db.LedgerTransactions.SingleAsync(t => t.Type == "card_top_up");
        var audited = await db.AuditEntries.SingleAsync(e => e.Action == "wallet.top_up");
        Assert.Equal($"ledger:{posted.Id} 10000000 USD card", audited.Target);
        Assert.Equal(AuditLog.Success, audited.Outcome);
    }

    [Fact]
    public async Task A_top_up_whose_ledger_posting_fails_leaves_no_audit_entry()
    {
        await using var database = await TestDatabase.CreateAsync(provider);
        await using var sluice = new SluiceFactory(database, Stripe);
        var (owner, orgId, _) = await TenantAsync(sluice);
        using var anonymous = sluice.Anonymous();
        var paid = TopUpTests.Event("evt_1", "cs_test_1", orgId, 1000);

        await FailInsertsAsync(database, "ledger_transactions", "type", "card_top_up");
        var failed = await TopUpTests.Deliver(anonymous, paid, TopUpTests.Sign(paid, DateTimeOffset.UtcNow.ToUnixTimeSeconds()));

        Assert.True((int)failed.StatusCode >= 500, failed.StatusCode.ToString());
        Assert.Equal(0, await CountAsync(database, "SELECT COUNT(*) FROM audit_entries WHERE action = 'wallet.top_up'"));
        Assert.Equal(0, await CountAsync(database, "SELECT COUNT(*) FROM ledger_entries"));
        Assert.Equal(0, await WalletAsync(owner, orgId));
    }

    [Fact]
    public async Task An_operator_credit_whose_audit_entry_cannot_be_written_credits_nothing()
    {
        await using var database = await TestDatabase.CreateAsync(provider);
        await using var sluice = new SluiceFactory(database);
        using var op = await OperatorAsync(sluice);
        var (owner, orgId, _) = await TenantAsync(sluice);

        await FailInsertsAsync(database, "audit_entries", "action", "wallet.credit");
        var failed = await op.PostAsJsonAsync($"/api/v1/admin/orgs/{orgId}/wallet/credits", new { amountMicros = 5_000_000, reason = "goodwill", idempotencyKey = "credit-1" });
        Assert.True((int)failed.StatusCode >= 500, failed.StatusCode.ToString());
        Assert.Equal(0, await CountAsync(database, "SELECT COUNT(*) FROM ledger_transactions WHERE type = 'manual_credit'"));
        Assert.Equal(0, await WalletAsync(owner, orgId));

        await StopFailingAsync(database, "audit_entries");
        var retried = await op.PostAsJsonAsync($"/api/v1/admin/orgs/{orgId}/wallet/credits", new { amountMicros = 5_000_000, reason = "goodwill", idempotencyKey = "credit-1" });
        Assert.True(retried.IsSuccessStatusCode, await retried.Content.ReadAsStringAsync());
        Assert.Equal(5_000_000, await WalletAsync(owner, orgId));
        Assert.Equal(1, await CountAsync(database, "SELECT COUNT(*) FROM audit_entries WHERE action = 'wallet.credit'"));
    }

    [Fact]
    public async Task A_paid_checkout_in_another_currency_or_for_an_unknown_organization_is_refused_logged_and_audited_once()
    {
        await using var database = await TestDatabase.CreateAsync(provider);
        await using var sluice = new SluiceFactory(database, Stripe);
        using var op = await OperatorAsync(sluice);
        var (owner, orgId, _) = await TenantAsync(sluice);
        using var anonymous = sluice.Anonymous();
        var now = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
        var euros = TopUpTests.Event("evt_eur", "cs_test_eur", orgId, 2500, "eur");
        var ghostOrg = Guid.NewGuid();
        var ghost = TopUpTests.Event("evt_ghost", "cs_test_ghost", ghostOrg, 700);

        Assert.Equal(HttpStatusCode.OK, (await TopUpTests.Deliver(anonymous, euros, TopUpTests.Sign(euros, now))).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await TopUpTests.Deliver(anonymous, euros, TopUpTests.Sign(euros, now))).StatusCode); // the processor retries
        Assert.Equal(HttpStatusCode.OK, (await TopUpTests.Deliver(anonymous, ghost, TopUpTests.Sign(ghost, now))).StatusCode);

        Assert.Equal(0, await WalletAsync(owner, orgId));
        Assert.Equal(0, await CountAsync(database, "SELECT COUNT(*) FROM ledger_transactions"));
        var page = await op.GetFromJsonAsync<JsonElement>("/api/v1/audit/entries?action=wallet.top_up");
        var refused = page.GetProperty("entries").EnumerateArray().ToList();
        Assert.Equal(2, refused.Count);
        Assert.All(refused, e => Assert.Equal("refused", e.GetProperty("outcome").GetString()));
        Assert.Equal("stripe cs_test_eur 25000000 EUR: currency EUR, this installation bills in USD", refused[0].GetProperty("target").GetString());
        Assert.Equal(orgId, refused[0].GetProperty("organizationId").GetGuid());
        Assert.Equal("stripe cs_test_ghost 7000000 USD: unknown organization", refused[1].GetProperty("target").GetString());
        Assert.Equal(JsonValueKind.Null, refused[1].GetProperty("organizationId").ValueKind);
        var owners = await owner.GetFromJsonAsync<JsonElement>($"/api/v1/audit/entries?orgId={orgId}&action=wallet.top_up");
        Assert.Single(owners.GetProperty("entries").EnumerateArray()); // the organization's admins see theirs too
        Assert.Contains($"Payment cs_test_eur from stripe for organization {orgId} refused (currency EUR, this installation bills in USD)", sluice.Logs.All, StringComparison.Ordinal);
        Assert.Contains($"Payment cs_test_ghost from stripe for organization {ghostOrg} refused (unknown organization)", sluice.Logs.All, StringComparison.Ordinal);
    }

    private static async Task<long> WalletAsync(HttpClient owner, Guid orgId) =>
        (await owner.GetFromJsonAsync<JsonElement>($"/api/v1/orgs/{orgId}/wallet")).GetProperty("balanceMicros").GetInt64();

    private static async Task<long> CountAsync(TestDatabase database, string sql) => Convert.ToInt64(await database.ScalarAsync(sql), System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>A trigger that makes inserts of one kind of row fail, as a full disk or a broken constraint would.</summary>
    private static Task<int> FailInsertsAsync(TestDatabase database, string table, string column, string value) =>
        database.ExecuteAsync(database.Provider == DatabaseProvider.Sqlite
            ? $"CREATE TRIGGER test_fail_{table} BEFORE INSERT ON {table} WHEN NEW.{column} = '{value}' BEGIN SELECT RAISE(ABORT, 'injected failure'); END;"
            : $"""
              CREATE FUNCTION test_fail_{table}() RETURNS trigger LANGUAGE plpgsql AS $$
              BEGIN IF NEW.{column} = '{value}' THEN RAISE EXCEPTION 'injected failure'; END IF; RETURN NEW; END $$;
              CREATE TRIGGER test_fail_{table} BEFORE INSERT ON {table} FOR EACH ROW EXECUTE FUNCTION test_fail_{table}();
              """);

    private static Task<int> StopFailingAsync(TestDatabase database, string table) =>
        database.ExecuteAsync(database.Provider == DatabaseProvider.Sqlite ? $"DROP TRIGGER test_fail_{table};" : $"DROP TRIGGER test_fail_{table} ON {table};");
}

public sealed class SqliteMoneyAuditTests() : MoneyAuditTests(DatabaseProvider.Sqlite);

public sealed class PostgresMoneyAuditTests() : MoneyAuditTests(DatabaseProvider.Postgres);
