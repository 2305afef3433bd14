using System.Net;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Playwright;
using Sluice.Storage;
using Sluice.Tests.Compute;
using Sluice.Tests.TestSupport;

namespace Sluice.Tests.WebConsole;

/// <summary>The machines page: the organization's own fleet with status, heartbeat, GPUs and utilisation; one-time join tokens; owners and admins only.</summary>
public sealed class MachinesPageTests : IAsyncLifetime
{
    private ConsoleKit _kit = null!;

    public async ValueTask InitializeAsync() => _kit = await ConsoleKit.StartAsync();

    public async ValueTask DisposeAsync() => await _kit.DisposeAsync();

    [Fact]
    public async Task An_owner_creates_a_join_token_shown_once_a_machine_joins_with_it_and_is_listed_with_its_gpus_heartbeat_and_utilisation()
    {
        var (owner, orgId) = await _kit.OwnerAsync("fleet-owner@example.com");
        await MachinesConsole.PoolMachineAsync(_kit); // the platform pool's: never listed to an organization

        var empty = await owner.GetAsync($"/orgs/{orgId}/machines");
        Assert.Equal(HttpStatusCode.OK, empty.Status);
        Assert.Contains("No machine has joined", empty.Text());
        Assert.NotNull(empty.Find($"nav a[href='/orgs/{orgId}/machines'][aria-current=page]"));

        var created = await owner.SubmitAsync(empty, "main form[action*=Token]", new() { ["Description"] = "rack 7" });
        Assert.Equal(HttpStatusCode.OK, created.Status);
        Assert.Contains("no-store", created.Headers["cache-control"]);
        var command = created.Find("#join-command")!.TextContent.Trim();
        Assert.StartsWith($"sluice agent join --server {_kit.RootUrl} --token ", command);
        Assert.NotNull(created.Find("button[data-copy=join-command]"));
        var token = command.Split(' ')[^1];
        Assert.Equal("", created.InputValue("Description"));

        using var agent = _kit.Sluice.Anonymous();
        var joined = await ComputeKit.JoinAsync(agent, token);
        await ComputeKit.HeartbeatAsync(agent, joined.Credential, ComputeKit.Heartbeat(DateTimeOffset.UtcNow, ComputeKit.Inventory()));

        ConsoleResponse page = null!;
        await Eventually.TrueAsync(async () =>
        {
            page = await owner.GetAsync($"/orgs/{orgId}/machines");
            return page.Find("table.machines tbody tr")?.TextContent.Contains("50.0%", StringComparison.Ordinal) == true;
        }, "the machine's GPU utilisation from its telemetry is shown");
        var row = Assert.Single(page.FindAll("table.machines tbody tr"));
        Assert.Contains("gpu-node-7", row.TextContent);
        Assert.Contains("2 × NVIDIA H100 80GB HBM3", row.TextContent);
        Assert.Contains("zone=a", row.TextContent);
        Assert.Contains("0 / 0", row.TextContent);
        Assert.DoesNotContain("–", row.QuerySelectorAll("td")[2].TextContent);
        Assert.DoesNotContain(token, page.Body);
        Assert.Null(page.Find("#join-command"));
        var tokenRow = Assert.Single(page.FindAll("table.tokens tbody tr"));
        Assert.Contains("rack 7", tokenRow.TextContent);
        Assert.Contains("used", tokenRow.TextContent);
    }

    [Fact]
    public async Task A_bad_lifetime_is_shown_beside_its_field_with_the_description_kept_and_no_token_made_and_a_token_can_be_revoked()
    {
        var (owner, orgId) = await _kit.OwnerAsync("fleet-bad@example.com");

        var refused = await owner.SubmitAsync(await owner.GetAsync($"/orgs/{orgId}/machines"), "main form[action*=Token]", new() { ["Description"] = "node 3", ["TtlSeconds"] = "5" });
        Assert.Equal(HttpStatusCode.OK, refused.Status);
        Assert.Contains("must be between 60 and", refused.FieldError("TtlSeconds"));
        Assert.Equal(("node 3", "5"), (refused.InputValue("Description"), refused.InputValue("TtlSeconds")));
        Assert.Null(refused.Find("#join-command"));
        Assert.Equal(0, await MachinesConsole.TokensAsync(_kit, orgId));

        var created = await owner.SubmitAsync(await owner.GetAsync($"/orgs/{orgId}/machines"), "main form[action*=Token]", new() { ["Description"] = "node 3", ["TtlSeconds"] = "600" });
        Assert.NotNull(created.Find("#join-command"));
        var revoked = await owner.SubmitAsync(await owner.GetAsync($"/orgs/{orgId}/machines"), "main form[action*=Revoke]");
        Assert.Equal($"/orgs/{orgId}/machines?done=revoked", revoked.Location);
        var page = await owner.GetAsync(revoked.Location!);
        Assert.Contains("Join token revoked", page.Find("p.notice")!.TextContent);
        Assert.Contains("revoked", Assert.Single(page.FindAll("table.tokens tbody tr")).TextContent);
        Assert.Null(page.Find("main form[action*=Revoke]"));
    }

    [Fact]
    public async Task Members_and_viewers_get_a_403_page_and_no_menu_entry_a_forged_post_makes_no_token_and_a_stranger_gets_a_404()
    {
        var (owner, orgId) = await _kit.OwnerAsync("fleet-owner2@example.com");
        using var member = await _kit.AddMemberAsync(owner, orgId, "fleet-member@example.com", "member");
        using var viewer = await _kit.AddMemberAsync(owner, orgId, "fleet-viewer@example.com", "viewer");

        foreach (var person in new[] { member, viewer })
        {
            var page = await person.GetAsync($"/orgs/{orgId}/machines");
            Assert.Equal(HttpStatusCode.Forbidden, page.Status);
            Assert.Equal("text/html", page.ContentType);
            var overview = await person.GetAsync($"/orgs/{orgId}");
            Assert.Null(overview.Find($"nav a[href='/orgs/{orgId}/machines']"));
            Assert.NotNull(overview.Find($"nav a[href='/orgs/{orgId}/deployments']"));
        }

        var token = (await viewer.GetAsync($"/orgs/{orgId}")).Find("form.signout input[name=__RequestVerificationToken]")!.GetAttribute("value")!;
        var forged = await viewer.PostAsync($"/orgs/{orgId}/machines?handler=Token", [new("__RequestVerificationToken", token), new("Description", "sneaky")]);
        Assert.Equal(HttpStatusCode.Forbidden, forged.Status);
        Assert.DoesNotContain("sluice agent join", forged.Body);
        Assert.Equal(0, await MachinesConsole.TokensAsync(_kit, orgId));

        var (stranger, _) = await _kit.OwnerAsync("fleet-stranger@example.com", "Elsewhere");
        Assert.Equal(HttpStatusCode.NotFound, (await stranger.GetAsync($"/orgs/{orgId}/machines")).Status);
    }
}

/// <summary>The machines page in real Chromium: a join token made with the keyboard, the command shown with its copy button.</summary>
[Collection(RealProcessLoad.Name)]
public sealed class MachinesBrowserTests : ConsoleBrowserTest
{
    [Fact]
    public async Task An_owner_signs_in_creates_a_join_token_and_sees_the_joined_machine_on_desktop_and_phone()
    {
        var (owner, orgId) = await Kit.OwnerAsync("fleet-browser@example.com");
        using (var agent = Kit.Sluice.Anonymous())
        {
            var created = await owner.SubmitAsync(await owner.GetAsync($"/orgs/{orgId}/machines"), "main form[action*=Token]", new() { ["Description"] = "rack 7" });
            var joined = await ComputeKit.JoinAsync(agent, created.Find("#join-command")!.TextContent.Trim().Split(' ')[^1]);
            await ComputeKit.HeartbeatAsync(agent, joined.Credential, ComputeKit.Heartbeat(DateTimeOffset.UtcNow, ComputeKit.Inventory()));
        }

        await using (var browser = await BrowserKit.OpenAsync(Kit.RootUrl))
        {
            var page = browser.Page;
            await BrowserSteps.SignInAsync(page, "fleet-browser@example.com", $"/orgs/{orgId}/machines");
            Assert.Contains("gpu-node-7", await page.Locator("table.machines").TextContentAsync());
            await page.GetByLabel("Description (optional)").FillAsync("rack 8");
            await page.GetByRole(AriaRole.Button, new() { Name = "Create join token" }).ClickAsync();
            await page.WaitForLoadStateAsync();
            Assert.StartsWith("sluice agent join --server ", (await page.Locator("#join-command").TextContentAsync())!.Trim());
            await Assertions.Expect(page.GetByRole(AriaRole.Button, new() { Name = "Copy command" })).ToBeVisibleAsync();
            await browser.ScreenshotAsync("machines-desktop");
            browser.AssertSameOriginOnly();
            browser.AssertNoScriptErrors();
        }

        await using (var phone = await BrowserKit.OpenAsync(Kit.RootUrl, BrowserKit.Phone))
        {
            var page = phone.Page;
            await BrowserSteps.SignInAsync(page, "fleet-browser@example.com", $"/orgs/{orgId}/machines");
            await phone.ScreenshotAsync("machines-phone");
            Assert.True(await page.EvaluateAsync<int>("() => document.documentElement.scrollWidth") <= 390,
                "the machines page scrolls sideways on a 390px phone: " + await page.EvaluateAsync<string>(
                    "() => [...document.querySelectorAll('body *')].filter(e => e.getBoundingClientRect().right > 390).map(e => e.tagName + '.' + e.className).slice(-3).join(' ')"));
            phone.AssertSameOriginOnly();
            phone.AssertNoScriptErrors();
        }
    }
}

internal static class MachinesConsole
{
    /// <summary>A machine in the platform pool (joined with an operator's token).</summary>
    public static async Task PoolMachineAsync(ConsoleKit kit)
    {
        using var op = await GatewayKit.OperatorAsync(kit.Sluice);
        using var agent = kit.Sluice.Anonymous();
        await ComputeKit.JoinAsync(agent, (await ComputeKit.CreateJoinTokenAsync(op)).Token, ComputeKit.Inventory(gpus: 1) with { Gpus = [] });
    }

    public static async Task<int> TokensAsync(ConsoleKit kit, Guid orgId)
    {
        using var scope = kit.Sluice.Services.CreateScope();
        var db = scope.ServiceProvider.GetRequiredService<SluiceDbContext>();
        return await db.MachineJoinTokens.CountAsync(t => t.OrganizationId == orgId);
    }
}
