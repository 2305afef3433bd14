using Microsoft.Extensions.DependencyInjection;
using Microsoft.Playwright;
using Sluice.Audit;
using Sluice.Tests.TestSupport;

namespace Sluice.Tests.WebConsole;

/// <summary>Members, audit, account and the privacy center in real Chromium, by keyboard and mouse, at desktop and phone sizes.</summary>
[Collection(RealProcessLoad.Name)]
public sealed class PeopleBrowserTests : ConsoleBrowserTest
{
    [Fact]
    public async Task An_owner_invites_by_keyboard_sees_the_link_once_and_changes_a_role_and_the_page_fits_a_phone()
    {
        var (owner, orgId) = await Kit.OwnerAsync("owner@example.com", "Acme");
        using var _ = owner;
        using var member = await Kit.AddMemberAsync(owner, orgId, "member@example.com", "member");

        await using (var browser = await BrowserKit.OpenAsync(Kit.RootUrl))
        {
            var page = browser.Page;
            await BrowserSteps.SignInAsync(page, "owner@example.com", $"/orgs/{orgId}");
            await page.GetByRole(AriaRole.Link, new() { Name = "Members", Exact = true }).ClickAsync();
            await page.WaitForURLAsync("**/members");

            await page.GetByLabel("Their email").FillAsync("newcomer@example.com");
            await page.GetByLabel("Role", new() { Exact = true }).SelectOptionAsync("viewer");
            await page.GetByLabel("Their email").PressAsync("Enter");
            await page.Locator("#invitation-link").WaitForAsync();
            Assert.Contains("/invitations?token=", await page.Locator("#invitation-link").TextContentAsync(), StringComparison.Ordinal);

            await page.GetByLabel("Role of member@example.com").SelectOptionAsync("billing");
            await page.Locator("form.people-role").Filter(new() { Has = page.GetByLabel("Role of member@example.com") })
                .GetByRole(AriaRole.Button, new() { Name = "Change role" }).ClickAsync();
            await page.WaitForURLAsync("**/members?done=role");
            Assert.Equal("Role changed.", (await page.Locator(".notice").TextContentAsync())!.Trim());
            Assert.Equal("billing", await page.GetByLabel("Role of member@example.com").InputValueAsync());
            Assert.Contains("newcomer@example.com", await page.Locator("main").TextContentAsync(), StringComparison.Ordinal);
            await browser.ScreenshotAsync("members-desktop");
            browser.AssertSameOriginOnly();
            browser.AssertNoScriptErrors();
        }

        await using (var phone = await BrowserKit.OpenAsync(Kit.RootUrl, BrowserKit.Phone))
        {
            var page = phone.Page;
            await BrowserSteps.SignInAsync(page, "owner@example.com", $"/orgs/{orgId}/members");
            await page.GetByRole(AriaRole.Button, new() { Name = "Create invitation" }).ClickAsync();
            await page.Locator("[data-valmsg-for=Email]:not(:empty)").WaitForAsync();
            await BrowserSteps.AssertFitsAsync(page);
            await phone.ScreenshotAsync("members-phone");
            phone.AssertSameOriginOnly();
            phone.AssertNoScriptErrors();
        }
    }

    [Fact]
    public async Task An_owner_verifies_an_audit_entry_against_the_signed_checkpoint()
    {
        var (owner, orgId) = await Kit.OwnerAsync("owner@example.com", "Acme");
        using var _ = owner;
        await using var browser = await BrowserKit.OpenAsync(Kit.RootUrl);
        var page = browser.Page;
        await BrowserSteps.SignInAsync(page, "owner@example.com", "/account");
        using (var scope = Kit.Sluice.Services.CreateScope())
        {
            await scope.ServiceProvider.GetRequiredService<AuditService>().CheckpointAsync(CancellationToken.None);
        }

        await page.GotoAsync($"/orgs/{orgId}");
        await page.GetByRole(AriaRole.Link, new() { Name = "Audit log" }).ClickAsync();
        await page.WaitForURLAsync("**/audit");
        await page.GetByRole(AriaRole.Link, new() { Name = "Verify entry" }).First.ClickAsync();
        await page.Locator("#proof").WaitForAsync();
        Assert.Contains("Verified", await page.Locator("#proof p .badge").TextContentAsync(), StringComparison.Ordinal);
        await page.EvaluateAsync("() => window.scrollTo(0, 0)"); // a full-page shot taken scrolled to #proof would draw the sticky top bar mid-page
        await browser.ScreenshotAsync("audit-desktop");
        browser.AssertSameOriginOnly();
        browser.AssertNoScriptErrors();
    }

    [Fact]
    public async Task A_person_renames_themselves_on_the_account_page()
    {
        using (await Kit.SignUpAsync("ada@example.com", "Ada"))
        {
        }

        await using var browser = await BrowserKit.OpenAsync(Kit.RootUrl);
        var page = browser.Page;
        await BrowserSteps.SignInAsync(page, "ada@example.com", "/account");
        await page.GetByLabel("Your name").FillAsync("Ada Lovelace");
        await page.GetByRole(AriaRole.Button, new() { Name = "Save profile" }).ClickAsync();
        await page.WaitForURLAsync("**/account?done=profile");
        Assert.Equal("Ada Lovelace", (await page.Locator(".topbar .who").TextContentAsync())!.Trim());
        await browser.ScreenshotAsync("account-desktop");
        browser.AssertSameOriginOnly();
        browser.AssertNoScriptErrors();
    }

    [Fact]
    public async Task A_person_allows_a_consent_and_makes_and_verifies_an_export_request_in_the_privacy_center_on_desktop_and_phone()
    {
        using (await Kit.SignUpAsync("ada@example.com", "Ada"))
        {
        }

        await using (var browser = await BrowserKit.OpenAsync(Kit.RootUrl))
        {
            var page = browser.Page;
            await BrowserSteps.SignInAsync(page, "ada@example.com", "/account");
            await page.GetByRole(AriaRole.Link, new() { Name = "Privacy center" }).First.ClickAsync();
            await page.WaitForURLAsync("**/account/privacy");
            await page.GetByRole(AriaRole.Button, new() { Name = "Allow training" }).ClickAsync();
            await page.WaitForURLAsync("**/account/privacy?done=consent");
            await page.GetByRole(AriaRole.Button, new() { Name = "Withdraw training" }).WaitForAsync();

            await page.GetByLabel("What you ask for").SelectOptionAsync("export");
            await page.GetByRole(AriaRole.Button, new() { Name = "Make request" }).ClickAsync();
            await page.WaitForURLAsync("**/account/privacy?done=created");
            await page.GetByLabel("Your password, to prove it is you").FillAsync(ConsoleKit.Password);
            await page.GetByRole(AriaRole.Button, new() { Name = "Verify request" }).ClickAsync();
            await page.WaitForURLAsync("**/account/privacy?done=verified");
            Assert.Contains("in review", await page.Locator("main table.privacy-requests").TextContentAsync(), StringComparison.Ordinal);
            await browser.ScreenshotAsync("privacy-center-desktop");
            browser.AssertSameOriginOnly();
            browser.AssertNoScriptErrors();
        }

        await using (var phone = await BrowserKit.OpenAsync(Kit.RootUrl, BrowserKit.Phone))
        {
            var page = phone.Page;
            await BrowserSteps.SignInAsync(page, "ada@example.com", "/account/privacy");
            await BrowserSteps.AssertFitsAsync(page);
            await phone.ScreenshotAsync("privacy-center-phone");
            await page.GetByRole(AriaRole.Link, new() { Name = "privacy policy" }).ClickAsync();
            await page.WaitForURLAsync("**/privacy");
            await BrowserSteps.AssertFitsAsync(page);
            await phone.ScreenshotAsync("privacy-policy-phone");
            phone.AssertSameOriginOnly();
            phone.AssertNoScriptErrors();
        }
    }
}
