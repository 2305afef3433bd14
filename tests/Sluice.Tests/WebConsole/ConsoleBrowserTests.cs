using Microsoft.Playwright;
using Sluice.Tests.TestSupport;

namespace Sluice.Tests.WebConsole;

/// <summary>The console in real Chromium: what a person does with a keyboard and a mouse, at desktop and phone sizes.</summary>
[Collection(RealProcessLoad.Name)]
public sealed class ConsoleBrowserTests : ConsoleBrowserTest
{
    [Fact]
    public async Task A_person_signs_up_with_the_keyboard_creates_an_organization_and_lands_on_its_overview_loading_nothing_from_elsewhere()
    {
        await using var browser = await BrowserKit.OpenAsync(Kit.RootUrl);
        var page = browser.Page;
        await page.GotoAsync("/");
        Assert.EndsWith("/signin", page.Url);
        await page.GetByRole(AriaRole.Link, new() { Name = "Create an account" }).ClickAsync();

        await page.GetByLabel("Your name").FillAsync("Grace Hopper");
        await page.GetByLabel("Email").FillAsync("grace@example.com");
        await page.GetByLabel("Password").FillAsync(ConsoleKit.Password);
        await page.GetByLabel("I am at least 18 years old").CheckAsync();
        await browser.ScreenshotAsync("signup-desktop");
        await page.Keyboard.PressAsync("Enter");

        await page.WaitForURLAsync("**/orgs/new");
        await page.GetByLabel("Organization name").FillAsync("Hopper Labs");
        await page.GetByRole(AriaRole.Button, new() { Name = "Create organization" }).ClickAsync();
        await page.WaitForURLAsync("**/orgs/*-*");

        Assert.Equal("Overview", await page.Locator("main h1").TextContentAsync());
        Assert.Contains("Hopper Labs", await page.Locator(".switcher summary").TextContentAsync());
        await browser.ScreenshotAsync("overview-desktop");
        browser.AssertSameOriginOnly();
        browser.AssertNoScriptErrors();

        var cookie = Assert.Single(await browser.Cookies());
        Assert.Equal(("sluice_session", true, SameSiteAttribute.Lax), (cookie.Name, cookie.HttpOnly, cookie.SameSite));
    }

    [Fact]
    public async Task On_a_phone_the_sign_up_form_shows_its_errors_beside_the_fields()
    {
        await using var browser = await BrowserKit.OpenAsync(Kit.RootUrl, BrowserKit.Phone);
        var page = browser.Page;
        await page.GotoAsync("/signup");
        await page.GetByLabel("Your name").FillAsync("Ada");
        await page.GetByLabel("Email").FillAsync("ada-at-example");
        await page.GetByRole(AriaRole.Button, new() { Name = "Create account" }).ClickAsync();
        await page.WaitForLoadStateAsync();

        Assert.NotEmpty((await page.Locator("[data-valmsg-for=Email]").TextContentAsync())!.Trim());
        Assert.Equal("ada-at-example", await page.GetByLabel("Email").InputValueAsync());
        Assert.Equal("Ada", await page.GetByLabel("Your name").InputValueAsync());
        var width = await page.EvaluateAsync<int>("() => document.documentElement.scrollWidth");
        Assert.True(width <= 390, $"the page is {width}px wide on a 390px phone");
        await browser.ScreenshotAsync("signup-errors-phone");
        browser.AssertSameOriginOnly();
        browser.AssertNoScriptErrors();
    }
}
