using System.Net;
using System.Net.Http.Json;
using AngleSharp.Dom;
using AngleSharp.Html.Dom;
using AngleSharp.Html.Parser;
using Microsoft.Playwright;
using Sluice.Storage;
using Sluice.Tests.TestSupport;

namespace Sluice.Tests.WebConsole;

/// <summary>
/// A Sluice server on a real loopback port for console tests, with people who use it through the console's own pages
/// (<see cref="ConsoleClient"/>: a cookie jar, no automatic redirects, forms filled and posted as a browser would) and,
/// for browser tests, <see cref="RootUrl"/> to open in Chromium (TestSupport/Browser.cs).
/// </summary>
public sealed class ConsoleKit : IAsyncDisposable
{
    public const string Password = SluiceFactory.Password;

    private ConsoleKit(TestDatabase database, SluiceFactory sluice, string rootUrl)
    {
        Database = database;
        Sluice = sluice;
        RootUrl = rootUrl;
    }

    public TestDatabase Database { get; }

    /// <summary>The server; its API clients (<c>GatewayKit.OperatorAsync(kit.Sluice)</c>) set up what a test needs.</summary>
    public SluiceFactory Sluice { get; }

    /// <summary><c>http://127.0.0.1:PORT</c>, no trailing slash.</summary>
    public string RootUrl { get; }

    public static async Task<ConsoleKit> StartAsync(
        DatabaseProvider provider = DatabaseProvider.Sqlite, IReadOnlyDictionary<string, string?>? settings = null, TimeProvider? time = null)
    {
        var database = await TestDatabase.CreateAsync(provider);
        var port = SluiceProcess.FreePort();
        var sluice = new SluiceFactory(database, settings, time);
        sluice.UseKestrel(port);
        sluice.StartServer();
        return new ConsoleKit(database, sluice, $"http://127.0.0.1:{port}");
    }

    /// <summary>A browser-like client with its own cookie jar, signed in as nobody.</summary>
    public ConsoleClient Visitor() => new(RootUrl);

    /// <summary>Signs up a new person through the console's sign-up page; the client is then signed in.</summary>
    public async Task<ConsoleClient> SignUpAsync(string email, string name = "Test Person")
    {
        var client = Visitor();
        var form = await client.GetAsync("/signup");
        var done = await client.SubmitAsync(form, fields: new() { ["Name"] = name, ["Email"] = email, ["Password"] = Password, ["AgeAttestation"] = "true" });
        Assert.True(done.Status == HttpStatusCode.Redirect, $"sign-up answered {(int)done.Status}: {done.Text()}");
        return client;
    }

    /// <summary>Signs up a new person and has them create an organization (they are its owner).</summary>
    public async Task<(ConsoleClient Owner, Guid OrgId)> OwnerAsync(string email, string organization = "Acme")
    {
        var owner = await SignUpAsync(email);
        return (owner, await owner.CreateOrganizationAsync(organization));
    }

    /// <summary>A client signed in through the sign-in page.</summary>
    public async Task<ConsoleClient> SignInAsync(string email, string password = Password)
    {
        var client = Visitor();
        var done = await client.SubmitAsync(await client.GetAsync("/signin"), fields: new() { ["Email"] = email, ["Password"] = password });
        Assert.True(done.Status == HttpStatusCode.Redirect, $"sign-in answered {(int)done.Status}: {done.Text()}");
        return client;
    }

    /// <summary>The platform operator the server bootstrapped (its one-time password was captured), signed in to the console.</summary>
    public Task<ConsoleClient> OperatorAsync()
    {
        var (_, account, secret) = Assert.Single(Sluice.Credentials.Written);
        return SignInAsync(account, secret);
    }

    /// <summary>Signs up a person and makes them a member of the organization with <paramref name="role"/> (invited by the owner, accepted).</summary>
    public async Task<ConsoleClient> AddMemberAsync(ConsoleClient owner, Guid orgId, string email, string role)
    {
        var member = await SignUpAsync(email);
        using var invite = await owner.Http.PostAsJsonAsync($"api/v1/orgs/{orgId}/invitations", new { email, role });
        Assert.True(invite.StatusCode == HttpStatusCode.Created, await invite.Content.ReadAsStringAsync());
        var token = (await invite.Content.ReadFromJsonAsync<System.Text.Json.JsonElement>()).GetProperty("token").GetString();
        using var accepted = await member.Http.PostAsJsonAsync("api/v1/invitations/accept", new { token });
        Assert.True(accepted.StatusCode == HttpStatusCode.OK, await accepted.Content.ReadAsStringAsync());
        return member;
    }

    public async ValueTask DisposeAsync()
    {
        await Sluice.DisposeAsync();
        await Database.DisposeAsync();
    }
}

/// <summary>One person's browser, minus the browser: GETs pages, parses them, and posts their forms with their tokens.</summary>
public sealed class ConsoleClient : IDisposable
{
    private static readonly HtmlParser Parser = new();

    public ConsoleClient(string rootUrl)
    {
        RootUrl = rootUrl;
        Cookies = new CookieContainer();
        Http = new HttpClient(new HttpClientHandler { CookieContainer = Cookies, AllowAutoRedirect = false, UseCookies = true })
        {
            BaseAddress = new Uri(rootUrl + "/"),
        };
    }

    public string RootUrl { get; }

    public CookieContainer Cookies { get; }

    /// <summary>The raw client (same cookie jar), for requests a page's script would make.</summary>
    public HttpClient Http { get; }

    public async Task<ConsoleResponse> GetAsync(string path)
    {
        using var response = await Http.GetAsync(path.TrimStart('/'));
        return await ConsoleResponse.ReadAsync(response, new Uri(Http.BaseAddress!, path.TrimStart('/')));
    }

    /// <summary>GETs the page and, while it redirects, the page it points to (as a browser does).</summary>
    public async Task<ConsoleResponse> FollowAsync(string path)
    {
        var page = await GetAsync(path);
        for (var hops = 0; page.Location is { } next && hops < 5; hops++)
        {
            page = await GetAsync(next);
        }

        return page;
    }

    /// <summary>
    /// Fills the form (the first one matching <paramref name="formSelector"/>, by default the first in <c>main</c>) as the
    /// page rendered it, with <paramref name="fields"/> typed over it (a checkbox is checked by giving its value or
    /// "true"; "" unchecks it), and posts it from this site. <paramref name="submitter"/> names the button pressed.
    /// </summary>
    public async Task<ConsoleResponse> SubmitAsync(ConsoleResponse page, string formSelector = "main form", Dictionary<string, string>? fields = null,
        string? submitter = null)
    {
        var form = page.Document.QuerySelector(formSelector) as IHtmlFormElement
            ?? throw new InvalidOperationException($"No form matches '{formSelector}' on {page.Url}.");
        var pairs = FormPairs(form, fields ?? [], submitter);
        var action = form.GetAttribute("action") is { Length: > 0 } given ? new Uri(page.Url, given) : page.Url;
        return await PostAsync(action.PathAndQuery, pairs);
    }

    /// <summary>Posts fields as a form from this site (Origin set), as a browser submitting it would.</summary>
    public async Task<ConsoleResponse> PostAsync(string path, IEnumerable<KeyValuePair<string, string>> fields, string? origin = null)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, path.TrimStart('/')) { Content = new FormUrlEncodedContent(fields) };
        request.Headers.Add("Origin", origin ?? RootUrl);
        using var response = await Http.SendAsync(request);
        return await ConsoleResponse.ReadAsync(response, new Uri(Http.BaseAddress!, path.TrimStart('/')));
    }

    /// <summary>Creates an organization through the console; returns its id.</summary>
    public async Task<Guid> CreateOrganizationAsync(string name = "Acme")
    {
        var done = await SubmitAsync(await GetAsync("/orgs/new"), fields: new() { ["Name"] = name });
        Assert.True(done.Status == HttpStatusCode.Redirect && done.Location is { } to && to.StartsWith("/orgs/", StringComparison.Ordinal),
            $"creating an organization answered {(int)done.Status}: {done.Text()}");
        return Guid.Parse(done.Location!["/orgs/".Length..]);
    }

    public static List<KeyValuePair<string, string>> FormPairs(IHtmlFormElement form, Dictionary<string, string> fields, string? submitter = null)
    {
        var pairs = new List<KeyValuePair<string, string>>();
        var typed = new HashSet<string>(StringComparer.Ordinal);
        foreach (var element in form.Elements)
        {
            var name = element.GetAttribute("name");
            if (string.IsNullOrEmpty(name) || element.HasAttribute("disabled"))
            {
                continue;
            }

            switch (element)
            {
                case IHtmlInputElement { Type: "checkbox" or "radio" } box:
                    var isChecked = fields.TryGetValue(name, out var wanted) ? wanted == box.Value || (wanted == "true" && box.Type == "checkbox") : box.IsChecked;
                    if (isChecked)
                    {
                        pairs.Add(new(name, box.Value));
                    }

                    break;
                case IHtmlInputElement { Type: "submit" or "button" or "image" or "reset" }:
                case IHtmlButtonElement:
                    if (submitter is not null && name == submitter)
                    {
                        pairs.Add(new(name, element.GetAttribute("value") ?? ""));
                    }

                    break;
                case IHtmlSelectElement select:
                    pairs.Add(new(name, fields.TryGetValue(name, out var chosen) && typed.Add(name) ? chosen : select.Value ?? ""));
                    break;
                case IHtmlTextAreaElement area:
                    pairs.Add(new(name, fields.TryGetValue(name, out var text) && typed.Add(name) ? text : area.Value));
                    break;
                case IHtmlInputElement input:
                    pairs.Add(new(name, fields.TryGetValue(name, out var value) && input.Type != "hidden" && typed.Add(name) ? value : input.Value));
                    break;
            }
        }

        // Fields the form does not render (a test adding one on purpose) go last.
        pairs.AddRange(fields.Where(f => !typed.Contains(f.Key) && !pairs.Any(p => p.Key == f.Key)).Select(f => new KeyValuePair<string, string>(f.Key, f.Value)));
        return pairs;
    }

    public void Dispose() => Http.Dispose();

    internal static IHtmlDocument Parse(string html) => Parser.ParseDocument(html);
}

/// <summary>A page as the console answered it: status, headers, redirect target and parsed HTML.</summary>
public sealed class ConsoleResponse
{
    private ConsoleResponse(HttpStatusCode status, Uri url, string body, string? location, IReadOnlyDictionary<string, string> headers, string? contentType)
    {
        Status = status;
        Url = url;
        Body = body;
        Location = location;
        Headers = headers;
        ContentType = contentType;
        Document = ConsoleClient.Parse(body);
    }

    public HttpStatusCode Status { get; }

    public Uri Url { get; }

    public string Body { get; }

    /// <summary>The redirect target as a path (<c>/orgs/…</c>), or null.</summary>
    public string? Location { get; }

    /// <summary>Response and content headers, names lower-case, values joined by ", ".</summary>
    public IReadOnlyDictionary<string, string> Headers { get; }

    public string? ContentType { get; }

    public IHtmlDocument Document { get; }

    /// <summary>The visible text of <c>main</c> (or the whole body), whitespace collapsed: for messages in failures.</summary>
    public string Text() => string.Join(' ', ((Document.QuerySelector("main") ?? Document.Body)?.TextContent ?? Body)
        .Split((char[])[' ', '\n', '\r', '\t'], StringSplitOptions.RemoveEmptyEntries));

    /// <summary>The inline error shown beside a field (its <c>asp-validation-for</c> span), or "" when there is none.</summary>
    public string FieldError(string field) =>
        Document.QuerySelector($"[data-valmsg-for='{field}']")?.TextContent.Trim() ?? "";

    /// <summary>The errors shown above the form (the validation summary), joined.</summary>
    public string FormErrors() => string.Join(" ", Document.QuerySelectorAll(".form-errors li").Select(li => li.TextContent.Trim()));

    /// <summary>The value an input shows (what the person typed, after a refused post).</summary>
    public string? InputValue(string name) => (Document.QuerySelector($"[name='{name}']") as IHtmlInputElement)?.Value;

    public IElement? Find(string selector) => Document.QuerySelector(selector);

    public IReadOnlyList<IElement> FindAll(string selector) => [.. Document.QuerySelectorAll(selector)];

    internal static async Task<ConsoleResponse> ReadAsync(HttpResponseMessage response, Uri url)
    {
        var body = await response.Content.ReadAsStringAsync();
        var headers = response.Headers.Concat(response.Content.Headers)
            .GroupBy(h => h.Key.ToLowerInvariant())
            .ToDictionary(g => g.Key, g => string.Join(", ", g.SelectMany(h => h.Value)));
        var location = response.Headers.Location is { } to ? (to.IsAbsoluteUri ? to.PathAndQuery : to.OriginalString) : null;
        return new ConsoleResponse(response.StatusCode, url, body, location, headers, response.Content.Headers.ContentType?.MediaType);
    }
}

/// <summary>
/// The base of a test class that drives the console in real Chromium: a fresh server per test (<see cref="Kit"/>),
/// skipped on a machine without Chromium and failed under CI (a browser check must run there).
/// </summary>
public abstract class ConsoleBrowserTest : IAsyncLifetime
{
    private ConsoleKit? _kit;

    protected ConsoleKit Kit => _kit ?? throw new InvalidOperationException("The server is not started yet.");

    /// <summary>Starts the server the class's tests use; override for settings or a manual clock.</summary>
    protected virtual Task<ConsoleKit> StartKitAsync() => ConsoleKit.StartAsync();

    public async ValueTask InitializeAsync()
    {
        if (BrowserKit.Unavailable() is { } why)
        {
            CrossCheck.Unavailable(why);
        }

        _kit = await StartKitAsync();
    }

    public async ValueTask DisposeAsync()
    {
        if (_kit is not null)
        {
            await _kit.DisposeAsync();
        }

        GC.SuppressFinalize(this);
    }
}

/// <summary>What every browser test does the same way.</summary>
public static class BrowserSteps
{
    /// <summary>
    /// Signs in through the sign-in page. Given <paramref name="path"/>, opens that page first (a visitor is sent to sign
    /// in) and waits to be brought back to it, as a person following a link would be.
    /// </summary>
    public static async Task SignInAsync(IPage page, string email, string? path = null, string password = ConsoleKit.Password)
    {
        await page.GotoAsync(path ?? "/signin");
        if (path is not null)
        {
            await page.WaitForURLAsync("**/signin**");
        }

        await page.GetByLabel("Email").FillAsync(email);
        await page.GetByLabel("Password").FillAsync(password);
        await page.GetByRole(AriaRole.Button, new() { Name = "Sign in" }).ClickAsync();
        if (path is null)
        {
            await page.WaitForURLAsync(url => !url.Contains("/signin", StringComparison.Ordinal));
        }
        else
        {
            await page.WaitForURLAsync("**" + path);
        }
    }

    /// <summary>The page does not scroll sideways at its viewport's width.</summary>
    public static async Task AssertFitsAsync(IPage page)
    {
        var width = await page.EvaluateAsync<int>("() => document.documentElement.scrollWidth");
        var viewport = page.ViewportSize?.Width ?? int.MaxValue;
        Assert.True(width <= viewport, $"{page.Url} is {width}px wide in a {viewport}px viewport");
    }
}
