using System.Net;
using System.Text.Json;
using Microsoft.EntityFrameworkCore;
using Microsoft.Playwright;
using Sluice.Identity;
using Sluice.Tests.TestSupport;
using Sluice.WebConsole.Pages.Orgs;

namespace Sluice.Tests.WebConsole;

/// <summary>
/// The playground's key: minted on request with the page's single-use form token (each answer carries the next one),
/// scope <c>inference</c> only, short-lived, created by the viewer and listed as "playground"; and who may use the page.
/// </summary>
public sealed class PlaygroundTests : IAsyncLifetime
{
    private ConsoleKit _kit = null!;

    public async ValueTask InitializeAsync() => _kit = await ConsoleKit.StartAsync();

    public async ValueTask DisposeAsync() => await _kit.DisposeAsync();

    [Fact]
    public async Task The_page_mints_a_short_lived_inference_key_per_token_and_each_answer_carries_the_next_token()
    {
        var (owner, orgId) = await _kit.OwnerAsync("play-owner@example.com");
        using var _ = owner;
        var page = await owner.GetAsync($"/orgs/{orgId}/playground");
        Assert.Equal(HttpStatusCode.OK, page.Status);
        Assert.Contains(page.FindAll("#chat-model option"), o => o.GetAttribute("value") == "echo");
        Assert.Contains(page.FindAll("#embeddings-model option"), o => o.GetAttribute("value") == "echo");
        Assert.Empty(page.FindAll("#playground textarea[name], #playground input[name]")); // typed content is never a form field
        var token = page.Find("#playground")!.GetAttribute("data-token")!;

        var first = await MintAsync(owner, orgId, token);
        Assert.Equal(HttpStatusCode.OK, first.Status);
        var answer = JsonDocument.Parse(first.Body).RootElement;
        var secret = answer.GetProperty("key").GetString()!;
        Assert.StartsWith(ApiKeyFormat.Prefix, secret);
        Assert.Equal(1800, answer.GetProperty("expiresInSeconds").GetInt32());
        Assert.Contains("no-store", first.Headers["cache-control"]);

        // The token was spent: sent again it is refused; the answer's token works once.
        Assert.Equal(HttpStatusCode.BadRequest, (await MintAsync(owner, orgId, token)).Status);
        var second = await MintAsync(owner, orgId, answer.GetProperty("token").GetString()!);
        Assert.Equal(HttpStatusCode.OK, second.Status);

        await using (var db = _kit.Database.CreateContext())
        {
            var keys = await db.ApiKeys.AsNoTracking().Where(k => k.OrganizationId == orgId).ToListAsync();
            Assert.Equal(2, keys.Count);
            var userId = await db.Users.Where(u => u.Email == "play-owner@example.com").Select(u => u.Id).SingleAsync();
            Assert.All(keys, key =>
            {
                Assert.Equal(KeysModel.PlaygroundKeyName, key.Name);
                Assert.Equal(KeyScopes.Inference, key.Scopes);
                Assert.Equal(userId, key.CreatedByUserId);
                Assert.InRange(key.ExpiresAt!.Value, DateTimeOffset.UtcNow.AddMinutes(29), DateTimeOffset.UtcNow.AddMinutes(31));
            });
            Assert.True(await db.AuditEntries.CountAsync(e => e.Action == "key.create") >= 2);
        }

        // The key calls /v1 (and only /v1: no management scope), and the keys page lists it as the playground's.
        using var client = new HttpClient { BaseAddress = new Uri(_kit.RootUrl + "/") };
        client.DefaultRequestHeaders.Authorization = new("Bearer", secret);
        Assert.Equal(HttpStatusCode.OK, (await client.PostAsync("v1/chat/completions", GatewayKit.Chat("echo", "hello"))).StatusCode);
        Assert.Equal(HttpStatusCode.Forbidden, (await client.GetAsync($"api/v1/orgs/{orgId}/keys")).StatusCode);
        var keysPage = await owner.GetAsync($"/orgs/{orgId}/keys");
        Assert.Equal(2, keysPage.FindAll("table.keys .badge").Count(b => b.TextContent == "playground"));
    }

    [Fact]
    public async Task A_viewer_gets_403_and_no_key_a_member_may_play_and_a_stranger_gets_404()
    {
        var (owner, orgId) = await _kit.OwnerAsync("play-roles@example.com");
        using var _ = owner;
        using var viewer = await _kit.AddMemberAsync(owner, orgId, "play-viewer@example.com", "viewer");
        using var member = await _kit.AddMemberAsync(owner, orgId, "play-member@example.com", "member");
        using var stranger = await _kit.SignUpAsync("play-stranger@example.com");

        var denied = await viewer.GetAsync($"/orgs/{orgId}/playground");
        Assert.Equal(HttpStatusCode.Forbidden, denied.Status);
        Assert.Contains("text/html", denied.ContentType);
        var overview = await viewer.GetAsync($"/orgs/{orgId}");
        Assert.DoesNotContain(overview.FindAll("nav.sidebar a"), a => a.TextContent == "Playground");
        var token = overview.Find("form.signout input[name=__RequestVerificationToken]")!.GetAttribute("value")!;
        Assert.Equal(HttpStatusCode.Forbidden, (await MintAsync(viewer, orgId, token)).Status);

        Assert.Equal(HttpStatusCode.NotFound, (await stranger.GetAsync($"/orgs/{orgId}/playground")).Status);

        var page = await member.GetAsync($"/orgs/{orgId}/playground");
        Assert.Equal(HttpStatusCode.OK, page.Status);
        Assert.Contains(page.FindAll("nav.sidebar a"), a => a.TextContent == "Playground");
        Assert.Equal(HttpStatusCode.OK, (await MintAsync(member, orgId, page.Find("#playground")!.GetAttribute("data-token")!)).Status);

        await using var db = _kit.Database.CreateContext();
        var creators = await db.ApiKeys.Where(k => k.OrganizationId == orgId).Join(db.Users, k => k.CreatedByUserId, u => u.Id, (k, u) => u.Email).ToListAsync();
        Assert.Equal(["play-member@example.com"], creators);
    }

    /// <summary>What the page's script does: POST ?handler=Key with the form token in X-CSRF-TOKEN, from this origin.</summary>
    internal static async Task<ConsoleResponse> MintAsync(ConsoleClient client, Guid orgId, string token)
    {
        var path = $"orgs/{orgId}/playground?handler=Key";
        using var request = new HttpRequestMessage(HttpMethod.Post, path) { Content = new ByteArrayContent([]) };
        request.Headers.Add("X-CSRF-TOKEN", token);
        request.Headers.Add("Origin", client.RootUrl);
        using var response = await client.Http.SendAsync(request);
        return await ConsoleResponse.ReadAsync(response, new Uri(client.Http.BaseAddress!, path));
    }
}

/// <summary>
/// The playground in real Chromium: a streamed chat answer and an embedding appear; a canary typed into it is found
/// nowhere afterwards (database, data directory, logs), only the usage metadata is kept; when the key runs out the page
/// mints a new one.
/// </summary>
[Collection(RealProcessLoad.Name)]
public sealed class PlaygroundBrowserTests : ConsoleBrowserTest
{
    private readonly ManualTimeProvider _clock = new(DateTimeOffset.UtcNow);

    protected override Task<ConsoleKit> StartKitAsync() => ConsoleKit.StartAsync(time: _clock);

    [Fact]
    public async Task A_streamed_chat_and_an_embedding_leave_no_trace_of_what_was_typed_and_an_expired_key_is_replaced()
    {
        var canary = "canary-" + Guid.NewGuid().ToString("N");
        var (owner, orgId) = await Kit.OwnerAsync("play-browser@example.com", "Playground Co");
        owner.Dispose();
        await using var browser = await BrowserKit.OpenAsync(Kit.RootUrl);
        var page = browser.Page;
        await page.Clock.InstallAsync();
        await BrowserSteps.SignInAsync(page, "play-browser@example.com");
        await page.GotoAsync($"/orgs/{orgId}/playground");

        await page.GetByLabel("Model").First.SelectOptionAsync("echo");
        await page.GetByLabel("System prompt").FillAsync("You are terse.");
        await page.GetByLabel("Temperature").FillAsync("0.2");
        await page.GetByLabel("Max tokens").FillAsync("64");
        await page.GetByLabel("Message").FillAsync("Hello " + canary);
        await page.GetByRole(AriaRole.Button, new() { Name = "Send" }).ClickAsync();

        var answer = page.Locator("#chat-transcript .turn.assistant .content").Last;
        await Assertions.Expect(answer).ToContainTextAsync(canary);
        await Assertions.Expect(page.Locator("#chat-usage")).ToContainTextAsync("completion tokens");
        await Assertions.Expect(page.GetByRole(AriaRole.Button, new() { Name = "Send" })).ToBeEnabledAsync();
        Assert.Equal(2, await page.Locator("#chat-transcript .turn").CountAsync());
        Assert.Equal("", await page.GetByLabel("Message").InputValueAsync());
        await page.EvaluateAsync("() => window.scrollTo(0, 0)");
        await browser.ScreenshotAsync("playground-chat-desktop");

        await page.Locator("#embeddings-model").SelectOptionAsync("echo");
        await page.GetByLabel("Text to embed").FillAsync("Embed " + canary);
        await page.GetByRole(AriaRole.Button, new() { Name = "Embed" }).ClickAsync();
        await Assertions.Expect(page.Locator("#embeddings-dimensions")).ToHaveTextAsync("16");
        Assert.NotEmpty((await page.Locator("#embeddings-values").TextContentAsync())!);
        Assert.Equal(1, await PlaygroundKeysAsync(orgId)); // reused for the second call

        // The key runs out (server and browser clocks both move on): the next send mints a new one and still answers.
        _clock.Advance(TimeSpan.FromMinutes(31));
        await page.Clock.FastForwardAsync("31:00");
        await page.GetByLabel("Message").FillAsync("Again " + canary);
        await page.GetByLabel("Message").PressAsync("Enter");
        await Assertions.Expect(page.Locator("#chat-transcript .turn.assistant .content").Last).ToContainTextAsync("Again " + canary);
        Assert.Equal(2, await PlaygroundKeysAsync(orgId));
        Assert.Equal(4, await page.Locator("#chat-transcript .turn").CountAsync());
        browser.AssertSameOriginOnly();
        browser.AssertNoScriptErrors();
        Assert.DoesNotContain(browser.Requests, r => r.Url.Contains(canary, StringComparison.Ordinal));

        // The conversation lives in the page only: the page loaded again has none of it.
        await page.GotoAsync($"/orgs/{orgId}/playground");
        Assert.Equal(0, await page.Locator("#chat-transcript .turn").CountAsync());
        Assert.DoesNotContain(canary, await page.ContentAsync(), StringComparison.Ordinal);

        await using (var phone = await BrowserKit.OpenAsync(Kit.RootUrl, BrowserKit.Phone))
        {
            await BrowserSteps.SignInAsync(phone.Page, "play-browser@example.com");
            await phone.Page.GotoAsync($"/orgs/{orgId}/playground");
            await phone.Page.GetByLabel("Message").FillAsync("Hi from a phone " + canary);
            await phone.Page.GetByRole(AriaRole.Button, new() { Name = "Send" }).ClickAsync();
            await Assertions.Expect(phone.Page.Locator("#chat-transcript .turn.assistant .content").Last).ToContainTextAsync("phone");
            var width = await phone.Page.EvaluateAsync<int>("() => document.documentElement.scrollWidth");
            await phone.Page.EvaluateAsync("() => window.scrollTo(0, 0)");
            Assert.True(width <= 390, $"the playground is {width}px wide on a 390px phone");
            await phone.ScreenshotAsync("playground-chat-phone");
            phone.AssertSameOriginOnly();
            phone.AssertNoScriptErrors();
        }

        // Only metadata was kept: usage events for the calls, and the canary nowhere.
        var usage = await GatewayKit.UsageAsync(Kit.Database, 4);
        Assert.True(usage.Count(e => e.OrganizationId == orgId) >= 4, $"{usage.Count} usage events");
        Assert.Contains(usage, e => e.Endpoint.Contains("embeddings", StringComparison.Ordinal));
        await Kit.Sluice.DisposeAsync(); // every writer (usage, audit, logs) has finished
        var stored = await Canary.DumpDatabaseAsync(Kit.Database);
        var files = await Canary.DumpDirectoryAsync(Kit.Database.Directory);
        var logs = Kit.Sluice.Logs.All;
        Assert.Contains("chat.completions", stored, StringComparison.Ordinal); // the scan sees real data
        Assert.NotEmpty(logs);
        Canary.AssertAbsent(stored, canary, "the database");
        Canary.AssertAbsent(files, canary, "the data directory");
        Canary.AssertAbsent(logs, canary, "the logs");
    }

    private async Task<int> PlaygroundKeysAsync(Guid orgId)
    {
        await using var db = Kit.Database.CreateContext();
        return await db.ApiKeys.CountAsync(k => k.OrganizationId == orgId && k.Name == KeysModel.PlaygroundKeyName);
    }
}
