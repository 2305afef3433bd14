using System.Net;
using System.Text.RegularExpressions;
using Deque.AxeCore.Playwright;
using Microsoft.AspNetCore.Mvc.RazorPages;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Playwright;
using Sluice.Tests.TestSupport;

namespace Sluice.Tests.WebConsole;

/// <summary>
/// The console as a newcomer meets it, in real Chromium and by its own pages only: sign up, create an organization,
/// create a key and copy it, chat in the playground, find the requests in usage, revoke the key. Then every page of the
/// console, as an operator who owns an organization, at desktop and phone sizes: each loads nothing from elsewhere,
/// runs no script that errs, does not scroll sideways on a phone, and breaks none of axe-core's serious or critical
/// accessibility rules.
/// </summary>
[Collection(RealProcessLoad.Name)]
public sealed partial class ConsoleJourneyTests : ConsoleBrowserTest
{
    [Fact]
    public async Task Sign_up_create_an_organization_and_a_key_chat_in_the_playground_see_it_in_usage_and_revoke_the_key()
    {
        await using var browser = await BrowserKit.OpenAsync(Kit.RootUrl);
        var page = browser.Page;
        page.Dialog += async (_, dialog) => await dialog.AcceptAsync();

        await page.GotoAsync("/");
        await page.GetByRole(AriaRole.Link, new() { Name = "Create an account" }).ClickAsync();
        await page.GetByLabel("Your name").FillAsync("Katherine Johnson");
        await page.GetByLabel("Email").FillAsync("katherine@example.com");
        await page.GetByLabel("Password").FillAsync(ConsoleKit.Password);
        await page.GetByLabel("I am at least 18 years old").CheckAsync();
        await page.GetByRole(AriaRole.Button, new() { Name = "Create account" }).ClickAsync();
        await page.GetByLabel("Organization name").FillAsync("Orbital Mechanics");
        await page.GetByRole(AriaRole.Button, new() { Name = "Create organization" }).ClickAsync();
        await Assertions.Expect(page.Locator("main h1")).ToHaveTextAsync("Overview");
        var orgPath = new Uri(page.Url).AbsolutePath;

        // A key, copied to the clipboard from the one page that shows it.
        await page.Locator("nav.sidebar").GetByRole(AriaRole.Link, new() { Name = "API keys" }).ClickAsync();
        await page.GetByLabel("Name", new() { Exact = true }).FillAsync("Journey");
        await page.GetByRole(AriaRole.Button, new() { Name = "Create key" }).ClickAsync();
        var shown = (await page.Locator("#new-key-secret").TextContentAsync())!.Trim();
        await page.GetByRole(AriaRole.Button, new() { Name = "Copy" }).ClickAsync();
        await page.GetByRole(AriaRole.Button, new() { Name = "Copied" }).WaitForAsync();
        var copied = await page.EvaluateAsync<string>("() => navigator.clipboard.readText()");
        Assert.Equal(shown, copied);
        Assert.StartsWith("sk-sluice-", copied);
        await browser.ScreenshotAsync("journey-key-created-desktop", fullPage: false);

        // The copied key works where an SDK would use it.
        using var sdk = new HttpClient { BaseAddress = new Uri(Kit.RootUrl) };
        sdk.DefaultRequestHeaders.Authorization = new("Bearer", copied);
        using (var call = await sdk.PostAsync("/v1/chat/completions", GatewayKit.Chat("echo", "from the copied key")))
        {
            Assert.Equal(HttpStatusCode.OK, call.StatusCode);
        }

        // The playground streams an answer through its own short-lived key.
        await page.Locator("nav.sidebar").GetByRole(AriaRole.Link, new() { Name = "Playground" }).ClickAsync();
        await page.GetByLabel("Model").First.SelectOptionAsync("echo");
        await page.GetByLabel("Message").FillAsync("Hello from the journey");
        await page.GetByRole(AriaRole.Button, new() { Name = "Send" }).ClickAsync();
        await Assertions.Expect(page.Locator("#chat-transcript .turn.assistant .content").Last).ToContainTextAsync("Hello from the journey");
        await Assertions.Expect(page.Locator("#chat-usage")).ToContainTextAsync("completion tokens");
        await browser.ScreenshotAsync("journey-playground-desktop", fullPage: false);

        // Both requests appear in usage: metadata only, the key named.
        await page.Locator("nav.sidebar").GetByRole(AriaRole.Link, new() { Name = "Usage" }).ClickAsync();
        // Usage events are written in batches, moments after each answer: reload until both are there.
        var log = page.Locator("#request-log tbody tr");
        await Eventually.TrueAsync(async () =>
        {
            if (await log.CountAsync() >= 2)
            {
                return true;
            }

            await page.ReloadAsync();
            return false;
        }, "both requests in the usage log", TimeSpan.FromSeconds(15));
        await Assertions.Expect(log).ToHaveCountAsync(2);
        await Assertions.Expect(log.Filter(new() { HasText = "Journey" })).ToHaveCountAsync(1);
        await Assertions.Expect(log.Filter(new() { HasText = "echo" })).ToHaveCountAsync(2);
        Assert.DoesNotContain("Hello from the journey", await page.ContentAsync(), StringComparison.Ordinal);
        await browser.ScreenshotAsync("journey-usage-desktop", fullPage: false);

        // Revoked, the key stops working at once.
        await page.Locator("nav.sidebar").GetByRole(AriaRole.Link, new() { Name = "API keys" }).ClickAsync();
        await page.GetByRole(AriaRole.Button, new() { Name = "Revoke key Journey" }).ClickAsync();
        await Assertions.Expect(page.Locator("tr", new() { HasText = "Journey" }).Locator(".key-status")).ToHaveTextAsync("revoked");
        using (var refused = await sdk.PostAsync("/v1/chat/completions", GatewayKit.Chat("echo", "after revoking")))
        {
            Assert.Equal(HttpStatusCode.Unauthorized, refused.StatusCode);
        }

        Assert.StartsWith("/orgs/", orgPath);
        browser.AssertSameOriginOnly();
        browser.AssertNoScriptErrors();
    }

    [Fact]
    public async Task Every_page_loads_only_from_its_own_origin_runs_without_script_errors_fits_a_phone_and_passes_axe()
    {
        using var operatorClient = await Kit.OperatorAsync();
        var orgId = await operatorClient.CreateOrganizationAsync("Operator's Own");
        var (_, account, secret) = Assert.Single(Kit.Sluice.Credentials.Written);
        var pages = ConsolePagePaths(orgId);
        Assert.True(pages.Count >= 20, $"only {pages.Count} console pages found: {string.Join(", ", pages)}");

        foreach (var size in new[] { BrowserKit.Desktop, BrowserKit.Phone })
        {
            await using var browser = await BrowserKit.OpenAsync(Kit.RootUrl, size);
            var page = browser.Page;
            await BrowserSteps.SignInAsync(page, account, password: secret);

            var device = size.Width < 600 ? "phone" : "desktop";
            var inaccessible = new List<string>();
            foreach (var path in pages)
            {
                var response = await page.GotoAsync(path);
                Assert.True(response is { Status: 200 }, $"{path} answered {response?.Status}");
                Assert.Equal("text/html", (await response!.HeaderValueAsync("content-type"))?.Split(';')[0]);
                Assert.NotNull(await response.HeaderValueAsync("content-security-policy"));
                await BrowserSteps.AssertFitsAsync(page);
                await browser.ScreenshotAsync($"page{ScreenshotName(path, orgId)}-{device}");

                // Labelled, keyboard-usable, readable: axe-core's serious and critical rules (names, labels, contrast, roles).
                var axe = await page.RunAxe();
                inaccessible.AddRange(axe.Violations.Where(v => v.Impact is "serious" or "critical")
                    .Select(v => $"{path}: {v.Id} ({v.Impact}) at {string.Join(" | ", v.Nodes.Take(3).Select(n => n.Target?.ToString()))}"));
            }

            Assert.True(inaccessible.Count == 0, $"accessibility at {device} size:\n{string.Join("\n", inaccessible)}");

            browser.AssertSameOriginOnly();
            browser.AssertNoScriptErrors();
        }
    }

    /// <summary>Every console page a GET can open without an id of its own (the organization's id filled in).</summary>
    private List<string> ConsolePagePaths(Guid orgId) =>
        [.. Kit.Sluice.Services.GetRequiredService<EndpointDataSource>().Endpoints.OfType<RouteEndpoint>()
            .Where(e => e.Metadata.GetMetadata<PageActionDescriptor>() is not null)
            .Select(e => "/" + e.RoutePattern.RawText!.TrimStart('/'))
            .Select(route => route.Replace("{orgId:guid}", orgId.ToString(), StringComparison.Ordinal))
            .Where(route => !route.Contains('{', StringComparison.Ordinal) && route is not "/" and not "/signin" and not "/signup" and not "/signout")
            .Distinct()
            .Order(StringComparer.Ordinal)];

    private static string ScreenshotName(string path, Guid orgId) =>
        NonWord().Replace(path.Replace(orgId.ToString(), "org", StringComparison.Ordinal), "-").TrimEnd('-');

    [GeneratedRegex("[^a-z0-9]+")]
    private static partial Regex NonWord();
}
