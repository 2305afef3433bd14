using Microsoft.Playwright;
using Sluice.Tests.TestSupport;

namespace Sluice.Tests.WebConsole;

/// <summary>The operators' pages in real Chromium: an operator adds a provider, a model and a route with the keyboard and mouse, on a desktop and a phone.</summary>
[Collection(RealProcessLoad.Name)]
public sealed class OperatorBrowserTests : ConsoleBrowserTest
{
    [Fact]
    public async Task An_operator_adds_a_provider_and_a_routed_priced_model_and_reviews_the_privacy_queue_on_a_desktop()
    {
        await using var browser = await BrowserKit.OpenAsync(Kit.RootUrl);
        var page = browser.Page;
        await BrowserSteps.SignInAsync(page, OperatorAccount().Email, password: OperatorAccount().Password);

        await page.GetByRole(AriaRole.Link, new() { Name = "Providers" }).ClickAsync();
        await page.WaitForURLAsync("**/admin/providers");
        await page.GetByLabel("Name", new() { Exact = true }).FillAsync("local-vllm");
        await page.GetByLabel("Base URL").FillAsync("ftp://nope.example/");
        await page.GetByLabel("API key (optional; never shown again)").FillAsync("sk-browser-canary-51");
        await page.GetByRole(AriaRole.Button, new() { Name = "Add provider" }).ClickAsync();
        await page.WaitForLoadStateAsync();
        Assert.Contains("http(s)", await page.Locator("[data-valmsg-for=BaseUrl]").TextContentAsync());
        Assert.Equal("", await page.GetByLabel("API key (optional; never shown again)").InputValueAsync());

        await page.GetByLabel("Base URL").FillAsync("http://127.0.0.1:8000/v1/");
        await page.GetByLabel("API key (optional; never shown again)").FillAsync("sk-browser-canary-51");
        await page.GetByRole(AriaRole.Button, new() { Name = "Add provider" }).ClickAsync();
        await page.WaitForURLAsync("**/admin/providers?done=created");
        Assert.Contains("local-vllm", await page.Locator("tr[data-provider]").First.TextContentAsync());
        Assert.DoesNotContain("sk-browser-canary-51", await page.ContentAsync());

        await page.GetByRole(AriaRole.Link, new() { Name = "Models and prices" }).ClickAsync();
        await page.WaitForURLAsync("**/admin/models");
        await page.GetByLabel("Model id").FillAsync("llama-3.1-8b");
        await page.GetByLabel("Description (optional)").FillAsync("Llama 3.1 8B on the local vLLM");
        await page.GetByRole(AriaRole.Button, new() { Name = "Add model" }).ClickAsync();
        await page.WaitForURLAsync("**/admin/models?done=model");
        await page.Locator("#RouteModel").FillAsync("llama-3.1-8b");
        await page.Locator("#Provider").FillAsync("local-vllm");
        await page.GetByLabel("Upstream model (the provider's name for it)").FillAsync("meta-llama/Llama-3.1-8B-Instruct");
        await page.GetByLabel("Does the provider keep prompts or completions?").SelectOptionAsync("no");
        await page.GetByLabel("May the provider train on what it receives?").SelectOptionAsync("no");
        await page.GetByRole(AriaRole.Button, new() { Name = "Add route" }).ClickAsync();
        await page.WaitForURLAsync("**/admin/models?done=route");
        await page.GetByLabel("Route", new() { Exact = true }).SelectOptionAsync(new SelectOptionValue { Label = "llama-3.1-8b via local-vllm (meta-llama/Llama-3.1-8B-Instruct)" });
        await page.GetByLabel("Input, USD per million tokens", new() { Exact = true }).FillAsync("0.20");
        await page.GetByLabel("Output, USD per million tokens", new() { Exact = true }).FillAsync("0.60");
        await page.GetByRole(AriaRole.Button, new() { Name = "Set price" }).ClickAsync();
        await page.WaitForURLAsync("**/admin/models?done=price");
        Assert.Contains("0.20 USD / 0.60 USD", await page.Locator("section[data-model='llama-3.1-8b'] td.price").TextContentAsync());
        await browser.ScreenshotAsync("admin-models-desktop");

        await page.GetByRole(AriaRole.Link, new() { Name = "Providers" }).ClickAsync();
        await page.WaitForURLAsync("**/admin/providers");
        Assert.Contains("closed", await page.Locator("tr:has-text('local-vllm') td.circuit").TextContentAsync());
        await browser.ScreenshotAsync("admin-providers-desktop");

        await page.GetByRole(AriaRole.Link, new() { Name = "Privacy requests" }).ClickAsync();
        await page.WaitForURLAsync("**/admin/privacy");
        await page.GetByLabel("Account email").FillAsync("nobody@example.com");
        await page.GetByLabel("Reason", new() { Exact = true }).FillAsync("Account of a child");
        await page.GetByRole(AriaRole.Button, new() { Name = "Erase account" }).ClickAsync();
        await page.WaitForLoadStateAsync();
        Assert.Contains("no account", await page.Locator("[data-valmsg-for=EraseEmail]").TextContentAsync());
        await browser.ScreenshotAsync("admin-privacy-desktop");

        browser.AssertSameOriginOnly();
        browser.AssertNoScriptErrors();
    }

    [Fact]
    public async Task On_a_phone_an_operator_sets_an_organizations_limits_without_scrolling_sideways()
    {
        var (owner, orgId) = await Kit.OwnerAsync("phone-owner@example.com", "Phone Co");
        owner.Dispose();
        await using var browser = await BrowserKit.OpenAsync(Kit.RootUrl, BrowserKit.Phone);
        var page = browser.Page;
        await BrowserSteps.SignInAsync(page, OperatorAccount().Email, password: OperatorAccount().Password);

        await page.GotoAsync("/admin/orgs");
        await page.GetByRole(AriaRole.Link, new() { Name = "Phone Co" }).ClickAsync();
        await page.WaitForURLAsync($"**/admin/orgs?org={orgId}*");
        await page.GetByLabel("Requests per minute (blank: no limit)").FillAsync("120");
        await page.GetByRole(AriaRole.Button, new() { Name = "Save limits" }).ClickAsync();
        await page.WaitForURLAsync("**done=limits*");
        Assert.Contains("120 req/min", await page.Locator($"tr[data-org='{orgId}']").TextContentAsync());

        var width = await page.EvaluateAsync<int>("() => document.documentElement.scrollWidth");
        Assert.True(width <= 390, $"the page is {width}px wide on a 390px phone");
        await browser.ScreenshotAsync("admin-orgs-phone");
        browser.AssertSameOriginOnly();
        browser.AssertNoScriptErrors();
    }

    private (string Email, string Password) OperatorAccount()
    {
        var (_, account, secret) = Assert.Single(Kit.Sluice.Credentials.Written);
        return (account, secret);
    }
}
