using System.Net;
using Microsoft.EntityFrameworkCore;

namespace Sluice.Tests.WebConsole;

/// <summary>The organization's settings page: name, billing email, data policy, cost in responses; audited like the API.</summary>
public sealed class SettingsPageTests : IAsyncLifetime
{
    private ConsoleKit _kit = null!;

    public async ValueTask InitializeAsync() => _kit = await ConsoleKit.StartAsync();

    public async ValueTask DisposeAsync() => await _kit.DisposeAsync();

    [Fact]
    public async Task An_owner_changes_the_name_billing_email_and_data_policy_and_each_change_is_audited()
    {
        var (owner, orgId) = await _kit.OwnerAsync("owner@example.com", "Acme");
        using var _ = owner;
        var page = await owner.GetAsync($"/orgs/{orgId}/settings");
        Assert.Equal("Acme", page.InputValue("Name"));

        var saved = await owner.SubmitAsync(page, fields: new()
        {
            ["Name"] = "Acme Research", ["BillingEmail"] = "bills@example.com",
            ["RequireZeroRetention"] = "true", ["RequireNoTraining"] = "true", ["UsageCostInResponses"] = "",
        });
        Assert.Equal($"/orgs/{orgId}/settings?done=saved", saved.Location);
        var after = await owner.GetAsync(saved.Location!);
        Assert.Contains("Settings saved.", after.Find(".notice")!.TextContent);
        Assert.Equal(("Acme Research", "bills@example.com"), (after.InputValue("Name"), after.InputValue("BillingEmail")));
        Assert.True(after.Find("input[name=RequireZeroRetention][type=checkbox]")!.HasAttribute("checked"));

        var org = await _kit.InScopeAsync(db => db.Organizations.AsNoTracking().SingleAsync(o => o.Id == orgId));
        Assert.Equal(("Acme Research", "bills@example.com", true, true, false),
            (org.Name, org.BillingEmail, org.RequireZeroRetention, org.RequireNoTraining, org.UsageCostInResponses));
        var actions = await _kit.InScopeAsync(db => db.AuditEntries.Where(e => e.OrganizationId == orgId).Select(e => e.Action).ToListAsync());
        Assert.Contains("org.update", actions);
        Assert.Contains("org.usage_cost.disable", actions); // on by default; its own entry when it changes

        // Unchecking a box turns the policy off again.
        await owner.SubmitAsync(after, fields: new() { ["RequireZeroRetention"] = "" });
        Assert.False(await _kit.InScopeAsync(db => db.Organizations.Where(o => o.Id == orgId).Select(o => o.RequireZeroRetention).SingleAsync()));
    }

    [Fact]
    public async Task Bad_input_is_shown_beside_the_fields_with_what_was_typed_and_nothing_changes()
    {
        var (owner, orgId) = await _kit.OwnerAsync("owner@example.com", "Acme");
        using var _ = owner;
        var refused = await owner.SubmitAsync(await owner.GetAsync($"/orgs/{orgId}/settings"),
            fields: new() { ["Name"] = "  ", ["BillingEmail"] = "bills-at-example", ["RequireNoTraining"] = "true" });
        Assert.Equal(HttpStatusCode.OK, refused.Status);
        Assert.NotEmpty(refused.FieldError("Name"));
        Assert.NotEmpty(refused.FieldError("BillingEmail"));
        Assert.Equal("bills-at-example", refused.InputValue("BillingEmail"));
        Assert.True(refused.Find("input[name=RequireNoTraining][type=checkbox]")!.HasAttribute("checked"));
        var org = await _kit.InScopeAsync(db => db.Organizations.AsNoTracking().SingleAsync(o => o.Id == orgId));
        Assert.Equal(("Acme", null, false), (org.Name, org.BillingEmail, org.RequireNoTraining));
    }

    [Fact]
    public async Task A_member_gets_a_403_page_by_url_no_menu_entry_and_a_forged_post_changes_nothing_while_a_stranger_gets_a_404()
    {
        var (owner, orgId) = await _kit.OwnerAsync("owner@example.com", "Acme");
        using var _ = owner;
        using var member = await _kit.AddMemberAsync(owner, orgId, "member@example.com", "member");

        var page = await member.GetAsync($"/orgs/{orgId}/settings");
        Assert.Equal((HttpStatusCode.Forbidden, "text/html"), (page.Status, page.ContentType));
        var overview = await member.GetAsync($"/orgs/{orgId}");
        Assert.Null(overview.Find($"nav a[href='/orgs/{orgId}/settings']"));
        Assert.NotNull((await owner.GetAsync($"/orgs/{orgId}")).Find($"nav a[href='/orgs/{orgId}/settings']"));

        var forged = await member.ForgeAsync($"/orgs/{orgId}/settings", new() { ["Name"] = "Taken over", ["RequireZeroRetention"] = "true" });
        Assert.Equal(HttpStatusCode.Forbidden, forged.Status);
        var org = await _kit.InScopeAsync(db => db.Organizations.AsNoTracking().SingleAsync(o => o.Id == orgId));
        Assert.Equal(("Acme", false), (org.Name, org.RequireZeroRetention));

        using var stranger = await _kit.SignUpAsync("stranger@example.com");
        Assert.Equal(HttpStatusCode.NotFound, (await stranger.GetAsync($"/orgs/{orgId}/settings")).Status);
    }
}
