using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using Microsoft.Playwright;

namespace Sluice.Tests.TestSupport;

/// <summary>The browser kit against a tiny real Kestrel server on 127.0.0.1 (not Sluice): what it records, reports and saves.</summary>
public sealed class BrowserKitTests : IAsyncLifetime
{
    private WebApplication? _app;

    private string BaseUrl => _app!.Urls.First();

    public async ValueTask InitializeAsync()
    {
        if (BrowserKit.Unavailable() is { } why)
        {
            CrossCheck.Unavailable(why);
        }

        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        _app = builder.Build();
        _app.MapGet("/app.js", () => Results.Text("document.body.dataset.loaded = 'yes';", "text/javascript"));
        _app.MapGet("/page", (string? script) => Results.Content(
            $"""
            <!doctype html><html><head><title>kit</title></head>
            <body style="margin:0;background:#2a6"><p>hello</p><script src="{script ?? "/app.js"}"></script></body></html>
            """,
            "text/html"));
        _app.MapGet("/strict", (HttpContext context) =>
        {
            context.Response.Headers.ContentSecurityPolicy = "default-src 'self'; script-src 'self'";
            return Results.Content("<!doctype html><html><body><script>document.title = 'ran';</script></body></html>", "text/html");
        });
        await _app.StartAsync();
    }

    public async ValueTask DisposeAsync()
    {
        if (_app is not null)
        {
            await _app.DisposeAsync();
        }
    }

    [Fact]
    public async Task A_page_loading_only_its_own_scripts_passes_the_same_origin_check()
    {
        await using var browser = await BrowserKit.OpenAsync(BaseUrl);

        await browser.Page.GotoAsync("/page");
        await Assertions.Expect(browser.Page.Locator("body")).ToHaveAttributeAsync("data-loaded", "yes");

        browser.AssertSameOriginOnly();
        browser.AssertNoScriptErrors();
        Assert.Contains(browser.Requests, r => r.Url.EndsWith("/app.js", StringComparison.Ordinal) && r.ResourceType == "script" && r.Method == "GET");
    }

    [Fact]
    public async Task A_script_from_another_origin_fails_the_same_origin_check_naming_its_url()
    {
        await using var browser = await BrowserKit.OpenAsync(BaseUrl);

        await browser.Page.GotoAsync("/page?script=http://example.invalid/x.js");

        var failure = Assert.ThrowsAny<Exception>(browser.AssertSameOriginOnly);
        Assert.Contains("http://example.invalid/x.js", failure.Message, StringComparison.Ordinal);
        Assert.Equal("http://example.invalid/x.js", Assert.Single(browser.ForeignRequests()).Url);
    }

    [Fact]
    public async Task Screenshots_have_the_viewport_size_on_desktop_and_phone()
    {
        await using (var desktop = await BrowserKit.OpenAsync(BaseUrl))
        {
            await desktop.Page.GotoAsync("/page");
            var path = await desktop.ScreenshotAsync("browser-kit-desktop", fullPage: false);
            Assert.Equal((1280, 800), PngSize(path));
            Assert.True(File.Exists(await desktop.ScreenshotAsync("browser-kit-desktop-full")));
        }

        await using var phone = await BrowserKit.OpenAsync(BaseUrl, BrowserKit.Phone);
        await phone.Page.GotoAsync("/page");
        Assert.Equal((390, 844), PngSize(await phone.ScreenshotAsync("browser-kit-phone", fullPage: false)));
        Assert.True(await phone.Page.EvaluateAsync<bool>("() => navigator.maxTouchPoints > 0"));
        Assert.Contains("Mobile", await phone.Page.EvaluateAsync<string>("() => navigator.userAgent"), StringComparison.Ordinal);
    }

    [Fact]
    public async Task An_inline_script_blocked_by_the_content_security_policy_is_a_script_error()
    {
        await using var browser = await BrowserKit.OpenAsync(BaseUrl);

        await browser.Page.GotoAsync("/strict");

        Assert.NotEqual("ran", await browser.Page.TitleAsync());
        var failure = Assert.ThrowsAny<Exception>(browser.AssertNoScriptErrors);
        Assert.Contains("Content Security Policy", failure.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task The_clipboard_round_trips_on_the_console_origin()
    {
        await using var browser = await BrowserKit.OpenAsync(BaseUrl);
        await browser.Page.GotoAsync("/page");

        await browser.Page.EvaluateAsync("() => navigator.clipboard.writeText('sk-copied')");

        Assert.Equal("sk-copied", await browser.Page.EvaluateAsync<string>("() => navigator.clipboard.readText()"));
        browser.AssertNoScriptErrors();
    }

    /// <summary>A PNG's width and height, from its IHDR chunk (bytes 16–23, big-endian).</summary>
    private static (int Width, int Height) PngSize(string path)
    {
        var header = File.ReadAllBytes(path).AsSpan(0, 24);
        Assert.True(header[..8].SequenceEqual(new byte[] { 0x89, (byte)'P', (byte)'N', (byte)'G', 0x0D, 0x0A, 0x1A, 0x0A }), $"{path} is not a PNG");
        return (System.Buffers.Binary.BinaryPrimitives.ReadInt32BigEndian(header[16..20]), System.Buffers.Binary.BinaryPrimitives.ReadInt32BigEndian(header[20..24]));
    }
}
