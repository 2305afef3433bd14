using System.Collections.Concurrent;
using Microsoft.Playwright;
using Sluice.Tests.TestSupport;

[assembly: AssemblyFixture(typeof(BrowserKit.Lifetime))]

namespace Sluice.Tests.TestSupport;

/// <summary>
/// Real headless Chromium for console tests, driven by Playwright for .NET. The browser is Debian's <c>chromium</c>
/// (scripts/chromium.sh installs it; ./test.sh runs it), never one Playwright downloads: it is launched through
/// <c>ExecutablePath</c> (<c>SLUICE_CHROMIUM</c>, else /usr/bin/chromium, else <c>chromium</c> on PATH). Playwright's
/// driver (the node binary and its JS package in the NuGet package's <c>.playwright</c> folder) is copied to the test
/// output by the package's build target, which downloads nothing; browsers would only be downloaded by
/// <c>playwright.ps1 install</c>, which nothing here runs. One browser process serves the whole test run: started on
/// first use, closed when the run ends. Each test opens its own <see cref="ConsoleBrowser"/> (a fresh context: own
/// cookies, storage, permissions).
/// <code>
/// if (BrowserKit.Unavailable() is { } why) CrossCheck.Unavailable(why);
/// await using var browser = await BrowserKit.OpenAsync(server.BaseUrl, BrowserKit.Phone);
/// await browser.Page.GotoAsync("/console");
/// browser.AssertSameOriginOnly();
/// browser.AssertNoScriptErrors();
/// </code>
/// </summary>
public static class BrowserKit
{
    /// <summary>The default: a laptop screen.</summary>
    public static ViewportSize Desktop => new() { Width = 1280, Height = 800 };

    /// <summary>A phone (an iPhone 14's CSS size): opened with it, the context is mobile, has touch and a phone user agent.</summary>
    public static ViewportSize Phone => new() { Width = 390, Height = 844 };

    private const string PhoneUserAgent =
        "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0.0.0 Mobile Safari/537.36";

    private static readonly SemaphoreSlim Gate = new(1, 1);
    private static IPlaywright? _playwright;
    private static IBrowser? _browser;

    /// <summary>The Chromium executable the kit launches, or null when there is none.</summary>
    public static string? ChromiumPath
    {
        get
        {
            var configured = Environment.GetEnvironmentVariable("SLUICE_CHROMIUM");
            if (!string.IsNullOrWhiteSpace(configured))
            {
                return File.Exists(configured) ? configured : null;
            }

            if (File.Exists("/usr/bin/chromium"))
            {
                return "/usr/bin/chromium";
            }

            return (Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries)
                .Select(dir => Path.Combine(dir, "chromium")).FirstOrDefault(File.Exists);
        }
    }

    /// <summary>Why browser tests cannot run here (no Chromium, no Playwright driver), or null. Pass it to <see cref="CrossCheck.Unavailable"/>.</summary>
    public static string? Unavailable()
    {
        var configured = Environment.GetEnvironmentVariable("SLUICE_CHROMIUM");
        if (ChromiumPath is null)
        {
            return string.IsNullOrWhiteSpace(configured)
                ? "Chromium is not installed (no /usr/bin/chromium, none on PATH); scripts/chromium.sh installs Debian's chromium (./test.sh runs it)."
                : $"SLUICE_CHROMIUM names {configured}, which does not exist.";
        }

        return Directory.Exists(Path.Combine(AppContext.BaseDirectory, ".playwright", "package"))
            ? null
            : "Playwright's driver (.playwright) is not next to the test assembly; rebuild tests/Sluice.Tests.";
    }

    /// <summary>Where screenshots go: <c>SLUICE_TEST_ARTIFACTS</c>, else TestResults/console-screenshots under the repository root.</summary>
    public static string ArtifactsDirectory
    {
        get
        {
            var configured = Environment.GetEnvironmentVariable("SLUICE_TEST_ARTIFACTS");
            if (!string.IsNullOrWhiteSpace(configured))
            {
                return Path.GetFullPath(configured);
            }

            for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            {
                if (File.Exists(Path.Combine(dir.FullName, "Sluice.slnx")))
                {
                    return Path.Combine(dir.FullName, "TestResults", "console-screenshots");
                }
            }

            return Path.Combine(AppContext.BaseDirectory, "TestResults", "console-screenshots");
        }
    }

    /// <summary>
    /// A fresh browser context on <paramref name="baseUrl"/> (relative <c>GotoAsync</c> paths resolve against it), at
    /// <see cref="Desktop"/> size unless told otherwise; a viewport narrower than 600 CSS pixels is a phone (mobile, touch,
    /// phone user agent). Every request is recorded; requests to another origin are recorded and aborted, so a page can
    /// never reach beyond the server under test. The clipboard may be read and written on the base URL's origin.
    /// </summary>
    public static async Task<ConsoleBrowser> OpenAsync(string baseUrl, ViewportSize? viewport = null)
    {
        var browser = await SharedBrowserAsync();
        var size = viewport ?? Desktop;
        var phone = size.Width < 600;
        var origin = new Uri(baseUrl).GetLeftPart(UriPartial.Authority);
        var options = new BrowserNewContextOptions
        {
            BaseURL = baseUrl,
            ViewportSize = new ViewportSize { Width = size.Width, Height = size.Height },
            DeviceScaleFactor = 1,
            IsMobile = phone,
            HasTouch = phone,
            Locale = "en-US",
            TimezoneId = "UTC",
        };
        if (phone)
        {
            options.UserAgent = PhoneUserAgent;
        }

        var context = await browser.NewContextAsync(options);
        try
        {
            await context.GrantPermissionsAsync(["clipboard-read", "clipboard-write"], new() { Origin = origin });
            var console = new ConsoleBrowser(context, origin);
            await console.StartAsync();
            return console;
        }
        catch
        {
            await context.CloseAsync();
            throw;
        }
    }

    private static async Task<IBrowser> SharedBrowserAsync()
    {
        if (Volatile.Read(ref _browser) is { IsConnected: true } ready)
        {
            return ready;
        }

        await Gate.WaitAsync();
        try
        {
            if (_browser is { IsConnected: true })
            {
                return _browser;
            }

            if (Unavailable() is { } why)
            {
                throw new InvalidOperationException(why);
            }

            _playwright ??= await Playwright.CreateAsync();
            List<string> args = ["--disable-dev-shm-usage", "--disable-gpu", "--no-first-run", "--no-default-browser-check"];
            if (string.Equals(Environment.UserName, "root", StringComparison.Ordinal))
            {
                // Chromium's sandbox refuses to run as root (a container's usual user); elsewhere it stays on.
                args.Add("--no-sandbox");
            }

            var launched = await _playwright.Chromium.LaunchAsync(new()
            {
                ExecutablePath = ChromiumPath,
                Headless = true,
                Args = args,
                Timeout = 60_000,
            });
            Volatile.Write(ref _browser, launched);
            return launched;
        }
        finally
        {
            Gate.Release();
        }
    }

    /// <summary>Closes the shared browser and the Playwright driver when the test run ends (if they were ever started).</summary>
    public sealed class Lifetime : IAsyncDisposable
    {
        public async ValueTask DisposeAsync()
        {
            await Gate.WaitAsync();
            try
            {
                if (_browser is not null)
                {
                    await _browser.CloseAsync();
                    _browser = null;
                }

                _playwright?.Dispose();
                _playwright = null;
            }
            finally
            {
                Gate.Release();
            }
        }
    }
}

/// <summary>One request a page made: its URL, method and Playwright's resource type (document, script, fetch, image…).</summary>
public sealed record RecordedRequest(string Url, string Method, string ResourceType);

/// <summary>
/// One test's browser: a fresh context (cookies, storage, permissions of its own) and its first page, recording every
/// request and every script error (console errors, uncaught exceptions, Content-Security-Policy violations).
/// </summary>
public sealed class ConsoleBrowser : IAsyncDisposable
{
    private readonly IBrowserContext _context;
    private readonly string _origin;
    private readonly ConcurrentQueue<RecordedRequest> _requests = new();
    private readonly ConcurrentQueue<string> _scriptErrors = new();
    private IPage? _page;

    internal ConsoleBrowser(IBrowserContext context, string origin)
    {
        _context = context;
        _origin = origin;
    }

    public IPage Page => _page ?? throw new InvalidOperationException("The browser is not open yet.");

    public IBrowserContext Context => _context;

    /// <summary>Every request any page of this context made, in order, including those aborted for leaving the origin.</summary>
    public IReadOnlyList<RecordedRequest> Requests => [.. _requests];

    /// <summary>Console errors (CSP violations among them) and uncaught page exceptions, as text.</summary>
    public IReadOnlyList<string> ScriptErrors => [.. _scriptErrors];

    internal async Task StartAsync()
    {
        _context.Request += (_, request) => _requests.Enqueue(new RecordedRequest(request.Url, request.Method, request.ResourceType));
        _context.Console += (_, message) =>
        {
            if (message.Type == "error")
            {
                _scriptErrors.Enqueue($"console.error: {message.Text} ({message.Location})");
            }
        };
        _context.WebError += (_, error) => _scriptErrors.Enqueue($"uncaught: {error.Error}");

        // Anything leaving the origin is aborted (it is recorded by the Request event above all the same), so no page
        // under test can reach the network beyond the server, and AssertSameOriginOnly names it.
        await _context.RouteAsync(url => !IsAllowed(url), route => route.AbortAsync("blockedbyclient"));
        _page = await _context.NewPageAsync();
    }

    /// <summary>Requests to anything but the base URL's origin (data: and blob: URLs are allowed).</summary>
    public IReadOnlyList<RecordedRequest> ForeignRequests() => [.. _requests.Where(request => !IsAllowed(request.Url))];

    /// <summary>Fails the test, listing them, when any page of this context requested anything outside the base URL's origin.</summary>
    public void AssertSameOriginOnly()
    {
        var foreign = ForeignRequests();
        if (foreign.Count > 0)
        {
            Assert.Fail($"Requests outside {_origin}:\n" + string.Join('\n', foreign.Select(r => $"  {r.Method} {r.Url} ({r.ResourceType})")));
        }
    }

    /// <summary>Fails the test, listing them, when a console error, an uncaught exception or a CSP violation happened.</summary>
    public void AssertNoScriptErrors()
    {
        var errors = ScriptErrors;
        if (errors.Count > 0)
        {
            Assert.Fail("Script errors in the page:\n" + string.Join('\n', errors.Select(e => "  " + e)));
        }
    }

    /// <summary>Saves a PNG of the page (the whole page unless <paramref name="fullPage"/> is false) as NAME.png in <see cref="BrowserKit.ArtifactsDirectory"/>; returns its path.</summary>
    public async Task<string> ScreenshotAsync(string name, bool fullPage = true)
    {
        var directory = BrowserKit.ArtifactsDirectory;
        Directory.CreateDirectory(directory);
        var path = Path.Combine(directory, name.EndsWith(".png", StringComparison.OrdinalIgnoreCase) ? name : name + ".png");
        await Page.ScreenshotAsync(new() { Path = path, FullPage = fullPage, Type = ScreenshotType.Png });
        return path;
    }

    /// <summary>This context's cookies (all of them, HttpOnly ones included).</summary>
    public Task<IReadOnlyList<BrowserContextCookiesResult>> Cookies() => _context.CookiesAsync();

    public async ValueTask DisposeAsync() => await _context.CloseAsync();

    private bool IsAllowed(string url) =>
        url.StartsWith("data:", StringComparison.OrdinalIgnoreCase)
        || url.StartsWith("blob:", StringComparison.OrdinalIgnoreCase)
        || url.StartsWith("about:", StringComparison.OrdinalIgnoreCase)
        || (Uri.TryCreate(url, UriKind.Absolute, out var uri) && string.Equals(uri.GetLeftPart(UriPartial.Authority), _origin, StringComparison.OrdinalIgnoreCase));
}
