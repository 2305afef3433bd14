using System.Net;
using System.Text;
using System.Text.Json;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Playwright;
using Sluice.Tests.TestSupport;
using Sluice.WebConsole;

namespace Sluice.Tests.WebConsole;

/// <summary>The files and batches pages: upload (multipart, with the form token as a field), list, download, delete; batches created from a file, run, cancelled, downloaded.</summary>
public sealed class FilesAndBatchesPageTests
{
    private const string Canary = "CANARY-file-bytes-7f3a9c";

    [Fact]
    public async Task An_uploaded_JSONL_file_is_listed_by_its_metadata_downloads_decrypted_and_is_deleted_and_its_bytes_reach_no_log_or_page()
    {
        await using var kit = await ConsoleKit.StartAsync();
        var (owner, orgId) = await kit.OwnerAsync("files@example.com");
        var bytes = ChatLines(3, Canary);

        var uploaded = await owner.UploadAsync(await owner.GetAsync($"/orgs/{orgId}/files"), "requests.jsonl", bytes, "batch");
        Assert.Equal(HttpStatusCode.Redirect, uploaded.Status);
        var listed = await owner.GetAsync(uploaded.Location!);

        Assert.Contains("File uploaded", listed.Find(".notice")!.TextContent, StringComparison.Ordinal);
        var row = Assert.Single(listed.FindAll("#files-table tbody tr"));
        Assert.Contains("requests.jsonl", row.TextContent, StringComparison.Ordinal);
        Assert.Contains("batch", row.TextContent, StringComparison.Ordinal);
        Assert.Contains(ConsoleFormat.Bytes(bytes.Length), row.TextContent, StringComparison.Ordinal);
        Assert.DoesNotContain(Canary, listed.Body, StringComparison.Ordinal);
        await using (var db = kit.Database.CreateContext())
        {
            var stored = await db.Files.AsNoTracking().SingleAsync();
            Assert.Equal((orgId, "requests.jsonl", (long)bytes.Length, 3), (stored.OrganizationId, stored.Filename, stored.Bytes, stored.Lines));
            Assert.Contains(stored.PublicId, row.TextContent, StringComparison.Ordinal);
        }

        var link = row.QuerySelector("a[download]")!.GetAttribute("href")!;
        using (var download = await owner.Http.GetAsync(link.TrimStart('/')))
        {
            Assert.Equal(HttpStatusCode.OK, download.StatusCode);
            Assert.Equal("application/jsonl", download.Content.Headers.ContentType!.MediaType);
            Assert.Equal(bytes, await download.Content.ReadAsByteArrayAsync());
        }

        Assert.DoesNotContain(Canary, kit.Sluice.Logs.All, StringComparison.Ordinal);
        var deleted = await owner.SubmitAsync(listed, "#files-table form");
        Assert.Equal(HttpStatusCode.Redirect, deleted.Status);
        var after = await owner.GetAsync(deleted.Location!);
        Assert.Contains("File deleted", after.Find(".notice")!.TextContent, StringComparison.Ordinal);
        Assert.Empty(after.FindAll("#files-table tbody tr"));
        await using (var db = kit.Database.CreateContext())
        {
            Assert.False(await db.Files.AnyAsync());
        }

        using var gone = await owner.Http.GetAsync(link.TrimStart('/'));
        Assert.Equal(HttpStatusCode.NotFound, gone.StatusCode);
    }

    [Fact]
    public async Task A_batch_file_that_is_not_JSONL_or_is_too_large_is_an_inline_error_and_nothing_is_stored()
    {
        await using var kit = await ConsoleKit.StartAsync(settings: new Dictionary<string, string?> { ["Files:MaxFileBytes"] = "4096" });
        var (owner, orgId) = await kit.OwnerAsync("files@example.com");

        var notJsonl = await owner.UploadAsync(await owner.GetAsync($"/orgs/{orgId}/files"), "notes.txt", Encoding.UTF8.GetBytes("just some words\n"), "batch");
        var tooLarge = await owner.UploadAsync(await owner.GetAsync($"/orgs/{orgId}/files"), "big.jsonl", ChatLines(100, "x"), "batch");
        var noFile = await owner.UploadAsync(await owner.GetAsync($"/orgs/{orgId}/files"), null, [], "user_data");

        Assert.Equal(HttpStatusCode.OK, notJsonl.Status);
        Assert.Contains("line 1 is not a JSON object", notJsonl.FieldError("Upload"), StringComparison.Ordinal);
        Assert.Equal("batch", (notJsonl.Find("select[name=Purpose] option[selected]") ?? notJsonl.Find("select[name=Purpose] option"))!.GetAttribute("value"));
        Assert.Contains("larger than the limit", tooLarge.FieldError("Upload"), StringComparison.Ordinal);
        Assert.Contains("Choose a file", noFile.FieldError("Upload"), StringComparison.Ordinal);
        Assert.Equal("user_data", noFile.Find("select[name=Purpose] option[selected]")!.GetAttribute("value"));
        await using var db = kit.Database.CreateContext();
        Assert.False(await db.Files.AnyAsync());
        var store = (Sluice.Files.FileStore)kit.Sluice.Services.GetService(typeof(Sluice.Files.FileStore))!;
        Assert.DoesNotContain(store.Objects(), o => !o.IsJournal);
    }

    [Fact]
    public async Task Files_are_for_roles_that_use_keys_a_viewer_gets_a_403_page_a_stranger_a_404_page_and_forged_posts_change_nothing()
    {
        await using var kit = await ConsoleKit.StartAsync();
        var (owner, orgId) = await kit.OwnerAsync("owner@example.com");
        var viewer = await kit.AddMemberAsync(owner, orgId, "viewer@example.com", "viewer");
        var billing = await kit.AddMemberAsync(owner, orgId, "billing@example.com", "billing");
        var member = await kit.AddMemberAsync(owner, orgId, "member@example.com", "member");
        using var stranger = await kit.SignUpAsync("stranger@example.com");
        await owner.UploadAsync(await owner.GetAsync($"/orgs/{orgId}/files"), "mine.jsonl", ChatLines(1, "x"), "batch");
        string fileId;
        await using (var db = kit.Database.CreateContext())
        {
            fileId = (await db.Files.AsNoTracking().SingleAsync()).PublicId;
        }

        foreach (var path in new[] { "/files", "/batches" })
        {
            var denied = await viewer.GetAsync($"/orgs/{orgId}{path}");
            Assert.Equal(HttpStatusCode.Forbidden, denied.Status);
            Assert.Equal(HttpStatusCode.Forbidden, (await billing.GetAsync($"/orgs/{orgId}{path}")).Status);
            Assert.Equal(HttpStatusCode.NotFound, (await stranger.GetAsync($"/orgs/{orgId}{path}")).Status);
            Assert.Equal(HttpStatusCode.OK, (await member.GetAsync($"/orgs/{orgId}{path}")).Status);
        }

        var overview = await viewer.GetAsync($"/orgs/{orgId}");
        Assert.DoesNotContain($"/orgs/{orgId}/files", overview.Body, StringComparison.Ordinal);
        Assert.DoesNotContain($"/orgs/{orgId}/batches", overview.Body, StringComparison.Ordinal);
        using var download = await viewer.Http.GetAsync($"orgs/{orgId}/files?handler=Content&id={fileId}");
        Assert.Equal(HttpStatusCode.Forbidden, download.StatusCode);
        using var strangerDownload = await stranger.Http.GetAsync($"orgs/{orgId}/files?handler=Content&id={fileId}");
        Assert.Equal(HttpStatusCode.NotFound, strangerDownload.StatusCode);

        var token = overview.Find("form input[name=__RequestVerificationToken]")!.GetAttribute("value")!;
        var delete = await viewer.PostAsync($"/orgs/{orgId}/files?handler=Delete&id={fileId}", [new("__RequestVerificationToken", token)]);
        Assert.Equal(HttpStatusCode.Forbidden, delete.Status);
        var upload = await viewer.UploadAsync(overview, "forged.jsonl", ChatLines(1, "x"), "batch", $"/orgs/{orgId}/files?handler=Upload");
        Assert.Equal(HttpStatusCode.Forbidden, upload.Status);
        await using (var db = kit.Database.CreateContext())
        {
            Assert.Equal(fileId, (await db.Files.AsNoTracking().SingleAsync()).PublicId);
        }
    }

    [Fact]
    public async Task A_batch_created_from_an_uploaded_file_runs_to_completion_and_its_output_downloads_and_bad_choices_are_inline_errors()
    {
        await using var kit = await ConsoleKit.StartAsync(settings: new Dictionary<string, string?> { ["Batches:PollInterval"] = "00:00:00.050" });
        var (owner, orgId) = await kit.OwnerAsync("batches@example.com");
        var (keyId, _) = await SluiceFactory.CreateKeyAsync(owner.Http, orgId, "inference");
        var empty = await owner.GetAsync($"/orgs/{orgId}/batches");
        Assert.Null(empty.Find("#create-batch-form"));
        Assert.Contains("Upload a JSONL file", empty.Text(), StringComparison.Ordinal);
        await owner.UploadAsync(await owner.GetAsync($"/orgs/{orgId}/files"), "requests.jsonl", ChatLines(3, Canary), "batch");
        await owner.UploadAsync(await owner.GetAsync($"/orgs/{orgId}/files"), "notes.bin", [1, 2, 3], "user_data");
        string inputId;
        await using (var db = kit.Database.CreateContext())
        {
            inputId = (await db.Files.AsNoTracking().SingleAsync(f => f.Purpose == "batch")).PublicId;
        }

        var page = await owner.GetAsync($"/orgs/{orgId}/batches");
        var noKey = await owner.SubmitAsync(page, "#create-batch-form", new() { ["InputFileId"] = inputId, ["KeyId"] = "" });
        var badEndpoint = await owner.SubmitAsync(await owner.GetAsync($"/orgs/{orgId}/batches"), "#create-batch-form",
            new() { ["InputFileId"] = inputId, ["KeyId"] = keyId.ToString(), ["Endpoint"] = "/v1/images" });
        Assert.Contains("Choose an active API key", noKey.FieldError("KeyId"), StringComparison.Ordinal);
        Assert.Contains("Choose one of", badEndpoint.FieldError("Endpoint"), StringComparison.Ordinal);
        Assert.Equal(keyId.ToString(), badEndpoint.Find("select[name=KeyId] option[selected]")!.GetAttribute("value"));
        await using (var db = kit.Database.CreateContext())
        {
            Assert.False(await db.Batches.AnyAsync());
        }

        var created = await owner.SubmitAsync(await owner.GetAsync($"/orgs/{orgId}/batches"), "#create-batch-form",
            new() { ["InputFileId"] = inputId, ["KeyId"] = keyId.ToString(), ["Endpoint"] = "/v1/chat/completions" });
        Assert.Equal(HttpStatusCode.Redirect, created.Status);
        Assert.Contains("Batch created", (await owner.GetAsync(created.Location!)).Find(".notice")!.TextContent, StringComparison.Ordinal);

        ConsoleResponse listed = null!;
        await Eventually.TrueAsync(async () =>
        {
            listed = await owner.GetAsync($"/orgs/{orgId}/batches");
            return listed.Find("#batches-table tbody tr .badge")?.TextContent == "completed";
        }, "the batch to complete", TimeSpan.FromSeconds(60));
        var row = Assert.Single(listed.FindAll("#batches-table tbody tr"));
        Assert.Contains("requests.jsonl", row.TextContent, StringComparison.Ordinal);
        Assert.Contains("3 / 0 / 3", row.TextContent, StringComparison.Ordinal);
        Assert.Null(row.QuerySelector("form"));
        var output = row.QuerySelectorAll("a[download]").Single(a => a.TextContent.StartsWith("Output", StringComparison.Ordinal)).GetAttribute("href")!;
        using var download = await owner.Http.GetAsync(output.TrimStart('/'));
        var lines = (await download.Content.ReadAsStringAsync()).Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(HttpStatusCode.OK, download.StatusCode);
        Assert.Equal(3, lines.Length);
        Assert.All(lines, line => Assert.Equal(200, JsonDocument.Parse(line).RootElement.GetProperty("response").GetProperty("status_code").GetInt32()));
        Assert.DoesNotContain(Canary, listed.Body, StringComparison.Ordinal);
        Assert.DoesNotContain(Canary, kit.Sluice.Logs.All, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_running_batch_is_cancelled_from_the_page_and_a_forged_cancel_by_a_viewer_is_refused()
    {
        // The batch's model answers each line after 10 s, one line at a time: the batch is still running when cancelled.
        await using var kit = await ConsoleKit.StartAsync(settings: new Dictionary<string, string?> { ["Batches:PollInterval"] = "00:00:00.050", ["Batches:MaxConcurrency"] = "1" });
        await using var slow = await FakeUpstream.StartAsync();
        slow.DelayBeforeHeaders = TimeSpan.FromSeconds(10);
        using (var @operator = await GatewayKit.OperatorAsync(kit.Sluice))
        {
            await GatewayKit.ProviderAsync(@operator, "slow-provider", slow.BaseUrl);
            await GatewayKit.ModelAsync(@operator, "slow");
            await GatewayKit.RouteAsync(@operator, "slow", "slow-provider", "slow");
            await GatewayKit.CatalogSeesAsync("slow", false, kit.Sluice);
        }

        var (owner, orgId) = await kit.OwnerAsync("batches@example.com");
        var viewer = await kit.AddMemberAsync(owner, orgId, "viewer@example.com", "viewer");
        var (keyId, _) = await SluiceFactory.CreateKeyAsync(owner.Http, orgId, "inference");
        await owner.UploadAsync(await owner.GetAsync($"/orgs/{orgId}/files"), "requests.jsonl", ChatLines(20, "x", model: "slow"), "batch");
        string inputId, batchId;
        await using (var db = kit.Database.CreateContext())
        {
            inputId = (await db.Files.AsNoTracking().SingleAsync()).PublicId;
        }

        var scope = kit.Sluice.Services.CreateScope();
        var batch = await scope.ServiceProvider.GetRequiredService<Sluice.Batches.BatchCommands>().CreateAsync(orgId, keyId, inputId, "/v1/chat/completions", null, null, default);
        batchId = batch.PublicId;
        var token = (await viewer.GetAsync($"/orgs/{orgId}")).Find("form input[name=__RequestVerificationToken]")!.GetAttribute("value")!;
        var forged = await viewer.PostAsync($"/orgs/{orgId}/batches?handler=Cancel&id={batchId}", [new("__RequestVerificationToken", token)]);
        Assert.Equal(HttpStatusCode.Forbidden, forged.Status);
        await using (var db = kit.Database.CreateContext())
        {
            Assert.NotEqual("cancelling", (await db.Batches.AsNoTracking().SingleAsync()).Status);
            Assert.Null((await db.Batches.AsNoTracking().SingleAsync()).CancellingAt);
        }

        var page = await owner.GetAsync($"/orgs/{orgId}/batches");
        Assert.NotNull(page.Find("#batches-table form"));
        var cancelled = await owner.SubmitAsync(page, "#batches-table form");
        Assert.Equal(HttpStatusCode.Redirect, cancelled.Status);
        await using (var db = kit.Database.CreateContext())
        {
            Assert.NotNull((await db.Batches.AsNoTracking().SingleAsync()).CancellingAt);
        }

        scope.Dispose();
    }

    internal static byte[] ChatLines(int count, string text, string model = "echo") => Encoding.UTF8.GetBytes(string.Concat(Enumerable.Range(1, count).Select(i =>
        JsonSerializer.Serialize(new { custom_id = $"r{i}", method = "POST", url = "/v1/chat/completions", body = new { model, messages = new[] { new { role = "user", content = $"{text} {i}" } } } }) + "\n")));
}

/// <summary>Posting the files page's multipart upload form as a browser does: the form token is a field of the multipart body.</summary>
internal static class FilesPageClient
{
    public static async Task<ConsoleResponse> UploadAsync(this ConsoleClient client, ConsoleResponse page, string? filename, byte[] bytes, string purpose, string? action = null)
    {
        var token = page.Find("#upload-form input[name=__RequestVerificationToken]")?.GetAttribute("value")
            ?? page.Find("form input[name=__RequestVerificationToken]")!.GetAttribute("value")!;
        action ??= page.Find("#upload-form")!.GetAttribute("action")!;
        using var content = new MultipartFormDataContent();
        content.Add(new StringContent(token), "__RequestVerificationToken");
        content.Add(new StringContent(purpose), "Purpose");
        if (filename is not null)
        {
            var file = new ByteArrayContent(bytes);
            file.Headers.ContentType = new("application/octet-stream");
            content.Add(file, "Upload", filename);
        }

        using var request = new HttpRequestMessage(HttpMethod.Post, action.TrimStart('/')) { Content = content };
        request.Headers.Add("Origin", client.RootUrl);
        using var response = await client.Http.SendAsync(request);
        return await ConsoleResponse.ReadAsync(response, new Uri(client.Http.BaseAddress!, action.TrimStart('/')));
    }
}

/// <summary>The files and batches pages in real Chromium.</summary>
[Collection(RealProcessLoad.Name)]
public sealed class FilesAndBatchesBrowserTests
{
    [Fact]
    public async Task A_member_uploads_a_batch_file_with_the_file_picker_and_starts_a_batch_from_it()
    {
        if (BrowserKit.Unavailable() is { } why)
        {
            CrossCheck.Unavailable(why);
        }

        await using var kit = await ConsoleKit.StartAsync(settings: new Dictionary<string, string?> { ["Batches:PollInterval"] = "00:00:00.050" });
        var (owner, orgId) = await kit.OwnerAsync("owner@example.com");
        await kit.AddMemberAsync(owner, orgId, "member@example.com", "member");
        await SluiceFactory.CreateKeyAsync(owner.Http, orgId, "inference");

        await using var browser = await BrowserKit.OpenAsync(kit.RootUrl);
        var page = browser.Page;
        await BrowserSteps.SignInAsync(page, "member@example.com");
        await page.GotoAsync($"/orgs/{orgId}/files");
        await page.GetByLabel("File", new() { Exact = true }).SetInputFilesAsync(new FilePayload { Name = "requests.jsonl", MimeType = "application/jsonl", Buffer = FilesAndBatchesPageTests.ChatLines(2, "hello") });
        await page.GetByLabel("Purpose").SelectOptionAsync("batch");
        await page.GetByRole(AriaRole.Button, new() { Name = "Upload file" }).ClickAsync();
        await Assertions.Expect(page.Locator(".notice")).ToContainTextAsync("File uploaded");
        await Assertions.Expect(page.Locator("#files-table")).ToContainTextAsync("requests.jsonl");
        await browser.ScreenshotAsync("files-desktop");

        await page.GetByRole(AriaRole.Link, new() { Name = "Batches" }).ClickAsync();
        await page.GetByLabel("Run under API key").SelectOptionAsync(new SelectOptionValue { Index = 1 });
        await page.GetByRole(AriaRole.Button, new() { Name = "Create batch" }).ClickAsync();
        await Assertions.Expect(page.Locator(".notice")).ToContainTextAsync("Batch created");
        await Eventually.TrueAsync(async () =>
        {
            await page.ReloadAsync();
            return await page.Locator("#batches-table .badge").First.TextContentAsync() == "completed";
        }, "the batch to complete", TimeSpan.FromSeconds(60));
        await browser.ScreenshotAsync("batches-desktop");
        browser.AssertSameOriginOnly();
        browser.AssertNoScriptErrors();
    }
}
