using System.Net;
using Sluice.Identity;
using Sluice.Tests.TestSupport;

namespace Sluice.Tests.WebConsole;

/// <summary>The usage page: breakdowns, filters, the CSV export, the paged request log, who sees money, and bad filters.</summary>
public sealed class UsagePageTests
{
    [Fact]
    public async Task Usage_shows_totals_and_charts_and_the_filters_narrow_the_request_log_to_this_organizations_matching_requests()
    {
        await using var kit = await ConsoleKit.StartAsync();
        var (owner, orgId) = await kit.OwnerAsync("owner@example.com");
        var (otherOwner, otherOrg) = await kit.OwnerAsync("other@example.com", "Other");
        var (k1, _) = await SluiceFactory.CreateKeyAsync(owner.Http, orgId, "inference");
        var (k2, _) = await SluiceFactory.CreateKeyAsync(owner.Http, orgId, "inference");
        var (otherKey, _) = await SluiceFactory.CreateKeyAsync(otherOwner.Http, otherOrg, "inference");
        var today = UsageSeed.TodayStart();
        await UsageSeed.InsertAsync(kit, [
            UsageSeed.Event(orgId, today.AddMinutes(1), model: "alpha", keyId: k1, costMicros: 1_000, requestId: "req_alpha_k1_ok"),
            UsageSeed.Event(orgId, today.AddMinutes(2), model: "alpha", keyId: k1, status: 502, requestId: "req_alpha_k1_err"),
            UsageSeed.Event(orgId, today.AddMinutes(3), model: "beta", keyId: k2, costMicros: 2_000, promptTokens: 100, completionTokens: 50, requestId: "req_beta_k2_ok"),
            UsageSeed.Event(orgId, today.AddDays(-2), model: "beta", keyId: k1, costMicros: 4_000, requestId: "req_beta_k1_old"),
            UsageSeed.Event(orgId, today.AddDays(-40), model: "alpha", keyId: k1, requestId: "req_too_old"),
            UsageSeed.Event(otherOrg, today.AddMinutes(4), model: "alpha", keyId: otherKey, costMicros: 9_000, requestId: "req_other_org"),
        ]);

        var page = await owner.GetAsync($"/orgs/{orgId}/usage");
        Assert.Equal(HttpStatusCode.OK, page.Status);
        Assert.Equal(["req_alpha_k1_err", "req_alpha_k1_ok", "req_beta_k1_old", "req_beta_k2_ok"], LoggedIds(page).Order(StringComparer.Ordinal));
        Assert.Equal("req_beta_k2_ok", LoggedIds(page)[0]); // newest first
        Assert.Equal("4", Total(page, "total-requests"));
        Assert.Equal("1", Total(page, "total-errors"));
        Assert.Equal("130", Total(page, "total-tokens-in"));
        Assert.Equal("65", Total(page, "total-tokens-out"));
        Assert.Equal("0.007 USD", Total(page, "total-cost"));
        Assert.Equal(30, page.FindAll("#usage-by-day tbody tr").Count); // the default range: the last 30 days
        Assert.Equal(2, page.FindAll("#usage-by-model tbody tr").Count);
        Assert.Equal(2, page.FindAll("#usage-by-key tbody tr").Count);
        Assert.Contains(page.FindAll("svg.chart rect.bar title"), t => t.TextContent.StartsWith("alpha: 2 requests", StringComparison.Ordinal));
        Assert.Contains("never stores prompts or completions", page.Text(), StringComparison.Ordinal);
        Assert.DoesNotContain("req_other_org", page.Body, StringComparison.Ordinal);
        Assert.DoesNotContain("req_too_old", page.Body, StringComparison.Ordinal);

        Assert.Equal(["req_alpha_k1_err", "req_alpha_k1_ok"], LoggedIds(await owner.GetAsync($"/orgs/{orgId}/usage?Model=alpha")));
        Assert.Equal(["req_beta_k2_ok"], LoggedIds(await owner.GetAsync($"/orgs/{orgId}/usage?Key={k2}")));
        Assert.Equal(["req_alpha_k1_err"], LoggedIds(await owner.GetAsync($"/orgs/{orgId}/usage?Status=errors")));
        Assert.Equal(["req_beta_k2_ok", "req_alpha_k1_ok"], LoggedIds(await owner.GetAsync($"/orgs/{orgId}/usage?Status=ok&From={Day(today)}&To={Day(today)}")));
        var narrowed = await owner.GetAsync($"/orgs/{orgId}/usage?Model=beta&Key={k1}&From={Day(today.AddDays(-60))}&To={Day(today)}");
        Assert.Equal(["req_beta_k1_old"], LoggedIds(narrowed));
        Assert.Equal("1", Total(narrowed, "total-requests"));
        Assert.Equal(61, narrowed.FindAll("#usage-by-day tbody tr").Count);
        Assert.Equal("beta", narrowed.InputValue("Model"));

        // Another organization's key, as a filter, is refused rather than shown.
        var foreign = await owner.GetAsync($"/orgs/{orgId}/usage?Key={otherKey}");
        Assert.NotEmpty(foreign.FieldError("Key"));
        Assert.Null(foreign.Find("#request-log"));
    }

    [Fact]
    public async Task The_csv_export_has_one_row_per_day_model_and_key_with_the_same_filters_and_no_cost_for_a_viewer()
    {
        await using var kit = await ConsoleKit.StartAsync();
        var (owner, orgId) = await kit.OwnerAsync("owner@example.com");
        var viewer = await kit.AddMemberAsync(owner, orgId, "viewer@example.com", "viewer");
        var (k1, secret) = await SluiceFactory.CreateKeyAsync(owner.Http, orgId, "inference");
        var keyName = $"test key ({ApiKeyFormat.LookupPrefix(secret)}…)";
        var today = UsageSeed.TodayStart();
        await UsageSeed.InsertAsync(kit, [
            UsageSeed.Event(orgId, today.AddMinutes(1), model: "alpha", keyId: k1, costMicros: 1_000),
            UsageSeed.Event(orgId, today.AddMinutes(2), model: "alpha", keyId: k1, costMicros: 1_500, status: 500),
            UsageSeed.Event(orgId, today.AddMinutes(3), model: "beta", keyId: k1, costMicros: 2_000),
            UsageSeed.Event(orgId, today.AddDays(-1), model: "alpha", keyId: null, costMicros: 3_000),
        ]);

        var csv = await owner.GetAsync($"/orgs/{orgId}/usage?handler=Csv");
        Assert.Equal(HttpStatusCode.OK, csv.Status);
        Assert.StartsWith("text/csv", csv.ContentType, StringComparison.Ordinal);
        var disposition = csv.Headers["content-disposition"];
        Assert.Contains("attachment", disposition, StringComparison.Ordinal);
        Assert.Contains($"filename=usage-{Day(today.AddDays(-29))}-to-{Day(today)}.csv", disposition, StringComparison.Ordinal);
        var lines = csv.Body.TrimEnd('\n').Split('\n');
        Assert.Equal("day,model,key_id,key_name,requests,errors,prompt_tokens,completion_tokens,cost_micros,currency", lines[0]);
        Assert.Equal([
            $"{Day(today.AddDays(-1))},alpha,,,1,0,10,5,3000,USD",
            $"{Day(today)},alpha,{k1},{keyName},2,1,20,10,2500,USD",
            $"{Day(today)},beta,{k1},{keyName},1,0,10,5,2000,USD",
        ], lines[1..]);

        var filtered = await owner.GetAsync($"/orgs/{orgId}/usage?handler=Csv&Model=beta");
        Assert.Equal(2, filtered.Body.TrimEnd('\n').Split('\n').Length);

        var viewers = await viewer.GetAsync($"/orgs/{orgId}/usage?handler=Csv");
        Assert.Equal(HttpStatusCode.OK, viewers.Status);
        Assert.Equal("day,model,key_id,key_name,requests,errors,prompt_tokens,completion_tokens", viewers.Body.Split('\n')[0]);
        Assert.DoesNotContain("USD", viewers.Body, StringComparison.Ordinal);
    }

    [Fact]
    public async Task The_request_log_pages_fifty_at_a_time_newest_first_and_the_pages_cover_every_request_once()
    {
        await using var kit = await ConsoleKit.StartAsync();
        var (owner, orgId) = await kit.OwnerAsync("owner@example.com");
        var today = UsageSeed.TodayStart();
        await UsageSeed.InsertAsync(kit, [.. Enumerable.Range(0, 120).Select(i => UsageSeed.Event(orgId, today.AddSeconds(i), requestId: $"req_{i:000}"))]);

        var seen = new List<string>();
        var page = await owner.GetAsync($"/orgs/{orgId}/usage?Model=alpha");
        var sizes = new List<int>();
        while (true)
        {
            var ids = LoggedIds(page);
            sizes.Add(ids.Count);
            seen.AddRange(ids);
            if (page.Find("a[rel=next]") is not { } older)
            {
                break;
            }

            var href = older.GetAttribute("href")!;
            Assert.Contains("Model=alpha", href, StringComparison.Ordinal); // the filters travel with the cursor
            page = await owner.GetAsync(href.Split('#')[0]);
            Assert.NotNull(page.Find($"a[href^='/orgs/{orgId}/usage']"));
        }

        Assert.Equal([50, 50, 20], sizes);
        Assert.Equal(Enumerable.Range(0, 120).Reverse().Select(i => $"req_{i:000}"), seen);
    }

    [Theory]
    [InlineData("From=2026-13-45", "From", "2026-13-45")]
    [InlineData("From=yesterday", "From", "yesterday")]
    [InlineData("To=9999-12-31", "To", "9999-12-31")]
    [InlineData("To=28/11/2026", "To", "28/11/2026")]
    [InlineData("From=2026-11-20&To=2026-11-01", "From", "2026-11-20")]
    [InlineData("From=2020-01-01&To=2026-11-01", "From", "2020-01-01")]
    [InlineData("Status=sometimes", "Status", null)]
    [InlineData("Key=not-a-key", "Key", null)]
    [InlineData("Key=0b4e7f6e-3f0c-4a55-9d7e-6f1f2f1f0e11", "Key", null)]
    public async Task A_filter_that_cannot_be_read_is_shown_beside_its_field_with_what_was_typed_and_never_a_server_error(string query, string field, string? kept)
    {
        await using var kit = await ConsoleKit.StartAsync();
        var (owner, orgId) = await kit.OwnerAsync("owner@example.com");
        await UsageSeed.InsertAsync(kit, [UsageSeed.Event(orgId, UsageSeed.TodayStart().AddSeconds(1), requestId: "req_kept_out")]);

        foreach (var handler in new[] { "", "handler=Csv&" })
        {
            var page = await owner.GetAsync($"/orgs/{orgId}/usage?{handler}{query}");
            Assert.Equal(HttpStatusCode.OK, page.Status);
            Assert.StartsWith("text/html", page.ContentType, StringComparison.Ordinal);
            Assert.NotEmpty(page.FieldError(field));
            if (kept is not null)
            {
                Assert.Equal(kept, page.InputValue(field));
            }
            else
            {
                var selected = page.Find($"select[name={field}] option[selected]");
                Assert.NotNull(selected);
                Assert.Equal(query.Split('=')[1], selected.GetAttribute("value"));
            }

            Assert.Null(page.Find("#request-log"));
            Assert.DoesNotContain("req_kept_out", page.Body, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task A_viewer_sees_requests_tokens_and_latency_but_no_cost_and_a_stranger_gets_a_404_page()
    {
        await using var kit = await ConsoleKit.StartAsync();
        var (owner, orgId) = await kit.OwnerAsync("owner@example.com");
        var viewer = await kit.AddMemberAsync(owner, orgId, "viewer@example.com", "viewer");
        var stranger = await kit.SignUpAsync("stranger@example.com");
        await UsageSeed.InsertAsync(kit, [UsageSeed.Event(orgId, UsageSeed.TodayStart().AddSeconds(1), costMicros: 123_456, latencyMs: 250, requestId: "req_seen")]);

        var page = await viewer.GetAsync($"/orgs/{orgId}/usage");
        Assert.Equal(HttpStatusCode.OK, page.Status);
        Assert.Equal(["req_seen"], LoggedIds(page));
        Assert.Contains("250 ms", page.Find("#request-log")!.TextContent, StringComparison.Ordinal);
        Assert.Null(page.Find("#total-cost"));
        Assert.DoesNotContain(page.FindAll("th"), th => th.TextContent.Contains("Cost", StringComparison.Ordinal));
        Assert.DoesNotContain("USD", page.Text(), StringComparison.Ordinal);
        Assert.DoesNotContain("0.123456", page.Body, StringComparison.Ordinal);
        Assert.NotNull(page.Find($"nav a[href='/orgs/{orgId}/usage']"));

        var owners = await owner.GetAsync($"/orgs/{orgId}/usage");
        Assert.Equal("0.123456 USD", Total(owners, "total-cost"));

        Assert.Equal(HttpStatusCode.NotFound, (await stranger.GetAsync($"/orgs/{orgId}/usage")).Status);
        var strangerCsv = await stranger.GetAsync($"/orgs/{orgId}/usage?handler=Csv");
        Assert.Equal(HttpStatusCode.NotFound, strangerCsv.Status);
        Assert.DoesNotContain("req_seen", strangerCsv.Body, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_real_request_through_a_key_appears_in_the_log_with_its_request_id_model_and_key()
    {
        await using var kit = await ConsoleKit.StartAsync();
        var (owner, orgId) = await kit.OwnerAsync("owner@example.com");
        var (_, key) = await SluiceFactory.CreateKeyAsync(owner.Http, orgId, "inference");

        var requestId = await UsageSeed.EchoAsync(kit, key);

        Assert.NotEmpty(requestId);
        await Eventually.TrueAsync(async () => LoggedIds(await owner.GetAsync($"/orgs/{orgId}/usage")).Contains(requestId), "the request to be metered");
        var row = (await owner.GetAsync($"/orgs/{orgId}/usage")).Find($"#request-log tr[data-request-id='{requestId}']")!;
        Assert.Contains("echo", row.TextContent, StringComparison.Ordinal);
        Assert.Contains("test key", row.TextContent, StringComparison.Ordinal);
        Assert.Contains("200", row.TextContent, StringComparison.Ordinal);
        Assert.DoesNotContain("hello", row.TextContent, StringComparison.Ordinal); // the prompt is nowhere
    }

    private static List<string> LoggedIds(ConsoleResponse page) =>
        [.. page.FindAll("#request-log tbody tr").Select(tr => tr.GetAttribute("data-request-id")!)];

    private static string Total(ConsoleResponse page, string id) =>
        page.Find($"#{id} .value")?.TextContent.Trim() ?? throw new Xunit.Sdk.XunitException($"no #{id} on the page: {page.Text()}");

    private static string Day(DateTimeOffset at) => at.UtcDateTime.ToString("yyyy-MM-dd", System.Globalization.CultureInfo.InvariantCulture);
}
