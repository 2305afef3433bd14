using Microsoft.Playwright;
using Sluice.Tests.TestSupport;

namespace Sluice.Tests.WebConsole;

/// <summary>The overview and usage pages in real Chromium, at desktop and phone sizes: charts drawn, nothing loaded from elsewhere.</summary>
[Collection(RealProcessLoad.Name)]
public sealed class UsageBrowserTests : ConsoleBrowserTest
{
    [Fact]
    public async Task An_owner_reads_the_overview_and_filters_usage_by_keyboard_with_charts_drawn_at_desktop_and_phone_sizes()
    {
        var (owner, orgId) = await Kit.OwnerAsync("owner@example.com");
        var (k1, _) = await SluiceFactory.CreateKeyAsync(owner.Http, orgId, "inference");
        var today = UsageSeed.TodayStart();
        string[] models = ["llama-3.1-8b-instruct", "mistral-small", "echo"];
        await UsageSeed.InsertAsync(Kit, [.. Enumerable.Range(0, 90).Select(i => UsageSeed.Event(orgId, today.AddDays(-(i % 12)).AddMinutes(i),
            model: models[i % 3], keyId: i % 4 == 0 ? null : k1, latencyMs: 80 + (i * 37 % 900), status: i % 11 == 0 ? 500 : 200, costMicros: 1_500 + (i * 311 % 4_000),
            promptTokens: 40 + i, completionTokens: 120 + (i * 7 % 300)))]);
        await UsageSeed.CreditAsync(Kit, orgId, 25_000_000);

        await using var browser = await BrowserKit.OpenAsync(Kit.RootUrl);
        var page = browser.Page;
        await BrowserSteps.SignInAsync(page, "owner@example.com", $"/orgs/{orgId}");
        Assert.Equal("Overview", await page.Locator("main h1").TextContentAsync());
        Assert.True(await page.Locator("svg.chart rect.bar").CountAsync() >= 14);
        Assert.Equal("25.00 USD", (await page.Locator("#stat-balance .value").TextContentAsync())!.Trim());
        await browser.ScreenshotAsync("usage-overview-desktop");

        await page.GetByRole(AriaRole.Link, new() { Name = "Usage", Exact = true }).ClickAsync();
        await page.WaitForURLAsync($"**/orgs/{orgId}/usage");
        Assert.Equal(30, await page.Locator("svg.chart[aria-label='Requests per day'] rect.bar").CountAsync());
        Assert.Equal(3, await page.Locator("svg.chart[aria-label='Requests by model'] rect.bar").CountAsync());
        Assert.Equal(50, await page.Locator("#request-log tbody tr").CountAsync());
        var box = await page.Locator("svg.chart[aria-label='Requests per day']").BoundingBoxAsync();
        Assert.True(box is { Width: > 300, Height: > 80 }, $"the day chart is drawn {box?.Width}×{box?.Height}");
        await browser.ScreenshotAsync("usage-desktop");

        await page.GetByLabel("Model", new() { Exact = true }).FillAsync("mistral-small");
        await page.GetByLabel("Status", new() { Exact = true }).SelectOptionAsync("ok");
        await page.GetByLabel("Model", new() { Exact = true }).PressAsync("Enter");
        await page.WaitForURLAsync("**Model=mistral-small**");
        var rows = await page.Locator("#request-log tbody tr").AllTextContentsAsync();
        Assert.NotEmpty(rows);
        Assert.All(rows, r => Assert.Contains("mistral-small", r, StringComparison.Ordinal));
        Assert.Equal("mistral-small", await page.GetByLabel("Model", new() { Exact = true }).InputValueAsync());

        await page.SetViewportSizeAsync(BrowserKit.Phone.Width, BrowserKit.Phone.Height);
        await page.GotoAsync($"/orgs/{orgId}/usage");
        Assert.True(await page.Locator("svg.chart rect.bar").CountAsync() > 30);
        Assert.True(await Width(page) <= 390, $"usage is {await Width(page)}px wide on a 390px phone");
        await browser.ScreenshotAsync("usage-phone");
        await page.GotoAsync($"/orgs/{orgId}");
        Assert.True(await Width(page) <= 390, $"the overview is {await Width(page)}px wide on a 390px phone");
        await browser.ScreenshotAsync("usage-overview-phone");

        browser.AssertSameOriginOnly();
        browser.AssertNoScriptErrors();
    }

    private static Task<int> Width(IPage page) => page.EvaluateAsync<int>("() => document.documentElement.scrollWidth");
}
