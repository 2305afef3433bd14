using System.Net;
using System.Text.Json;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Sluice.Files;
using Sluice.Storage;
using Sluice.Tests.TestSupport;
using static Sluice.Tests.TestSupport.BatchKit;
using static Sluice.Tests.TestSupport.GatewayKit;

namespace Sluice.Tests.Files;

/// <summary>/v1/files and /v1/batches refuse bad input clearly, never leak content, shred on delete and expiry.</summary>
public sealed class FileApiTests
{
    private static string Error(string body) => JsonDocument.Parse(body).RootElement.GetProperty("error").GetProperty("code").GetString() ?? "";

    [Fact]
    public async Task Bad_uploads_and_batch_requests_get_OpenAI_errors_and_leave_nothing_behind()
    {
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Sqlite);
        await using var sluice = new SluiceFactory(database, new Dictionary<string, string?> { ["Files:MaxFileBytes"] = "100000" });
        var (_, _, key) = await TenantAsync(sluice);
        var (_, _, otherKey) = await TenantAsync(sluice, "other@example.com");
        using var client = sluice.WithKey(key);
        using var other = sluice.WithKey(otherKey);

        var wrongPurpose = await UploadAsync(client, ChatLines(1), purpose: "assistants");
        Assert.Equal((HttpStatusCode.BadRequest, "purpose"), (wrongPurpose.StatusCode, JsonDocument.Parse(await wrongPurpose.Content.ReadAsStringAsync()).RootElement.GetProperty("error").GetProperty("param").GetString()));
        var notJsonl = await UploadAsync(client, ChatLines(1) + "not json\n");
        Assert.Equal((HttpStatusCode.BadRequest, "invalid_file_format"), (notJsonl.StatusCode, Error(await notJsonl.Content.ReadAsStringAsync())));
        Assert.Contains("line 2", await notJsonl.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        var oversize = await UploadAsync(client, new string('x', 200_000), purpose: "user_data");
        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, oversize.StatusCode);
        var notMultipart = await client.PostAsync("/v1/files", Json("{}"));
        Assert.Equal(HttpStatusCode.BadRequest, notMultipart.StatusCode);
        Assert.Empty(Directory.EnumerateFiles(Path.Combine(database.Directory, "files"), "*.sf"));

        var userData = JsonDocument.Parse(await (await UploadAsync(client, "{}", purpose: "user_data")).Content.ReadAsStringAsync()).RootElement.GetProperty("id").GetString()!;
        var batchFile = await UploadIdAsync(client, ChatLines(2));
        async Task<(HttpStatusCode, string)> Create(HttpClient caller, object body)
        {
            var response = await caller.PostAsync("/v1/batches", Json(JsonSerializer.Serialize(body)));
            return (response.StatusCode, Error(await response.Content.ReadAsStringAsync()));
        }

        Assert.Equal(HttpStatusCode.BadRequest, (await Create(client, new { input_file_id = batchFile, endpoint = "/v1/images/generations", completion_window = "24h" })).Item1);
        Assert.Equal(HttpStatusCode.BadRequest, (await Create(client, new { input_file_id = batchFile, endpoint = "/v1/chat/completions", completion_window = "1h" })).Item1);
        Assert.Equal(HttpStatusCode.BadRequest, (await Create(client, new { endpoint = "/v1/chat/completions", completion_window = "24h" })).Item1);
        Assert.Equal((HttpStatusCode.BadRequest, "invalid_file_purpose"), await Create(client, new { input_file_id = userData, endpoint = "/v1/chat/completions", completion_window = "24h" }));
        Assert.Equal((HttpStatusCode.NotFound, "file_not_found"), await Create(other, new { input_file_id = batchFile, endpoint = "/v1/chat/completions", completion_window = "24h" }));
        Assert.Equal(HttpStatusCode.BadRequest, (await client.PostAsync("/v1/batches", Json("[1,"))).StatusCode);

        // Another organization's file is not there at all.
        Assert.Equal(HttpStatusCode.NotFound, (await other.GetAsync($"/v1/files/{batchFile}")).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await other.GetAsync($"/v1/files/{batchFile}/content")).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await other.DeleteAsync($"/v1/files/{batchFile}")).StatusCode);
        Assert.Empty(JsonDocument.Parse(await other.GetStringAsync("/v1/files")).RootElement.GetProperty("data").EnumerateArray());
        Assert.Equal(HttpStatusCode.NotFound, (await client.GetAsync("/v1/batches/batch_nope")).StatusCode);
        Assert.Equal(2, JsonDocument.Parse(await client.GetStringAsync("/v1/files")).RootElement.GetProperty("data").GetArrayLength());
    }

    [Fact]
    public async Task A_canary_in_a_batch_is_never_stored_readably_and_is_gone_with_its_key_after_deletion()
    {
        var canary = "CANARY-" + Guid.NewGuid().ToString("N");
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Sqlite);
        await using var sluice = new SluiceFactory(database);
        var (_, _, key) = await TenantAsync(sluice);
        using var client = sluice.WithKey(key);

        var input = await UploadIdAsync(client, ChatLines(3, i => $"{canary} {i}"));
        var batch = await WaitAsync(client, (await CreateAsync(client, input)).GetProperty("id").GetString()!);
        var output = batch.GetProperty("output_file_id").GetString()!;
        Assert.Contains(canary, (await LinesAsync(client, output))[0].GetRawText(), StringComparison.Ordinal); // the echo model returned it
        Assert.Contains(canary, await client.GetStringAsync($"/v1/files/{input}/content"), StringComparison.Ordinal);

        // The error paths: a refused upload, a batch failing validation, a line the model refuses.
        Assert.Equal(HttpStatusCode.BadRequest, (await UploadAsync(client, ChatLines(1) + canary + "\n")).StatusCode);
        var invalid = ChatLines(1, model: "no-such-model").Replace("question 0", canary, StringComparison.Ordinal);
        var failed = await WaitAsync(client, (await CreateAsync(client, await UploadIdAsync(client, invalid))).GetProperty("id").GetString()!);
        Assert.Equal("failed", failed.GetProperty("status").GetString());
        Canary.AssertAbsent(failed.GetRawText(), canary, "a failed batch's errors");
        var refused = JsonSerializer.Serialize(new { custom_id = "x", method = "POST", url = "/v1/chat/completions", body = new { model = "echo", messages = canary } }) + "\n";
        var refusedBatch = await WaitAsync(client, (await CreateAsync(client, await UploadIdAsync(client, refused))).GetProperty("id").GetString()!);
        Canary.AssertAbsent((await LinesAsync(client, refusedBatch.GetProperty("error_file_id").GetString()!))[0].GetRawText(), canary, "an error line");

        await Task.Delay(300);
        var store = sluice.Services.GetRequiredService<FileStore>();
        Canary.AssertAbsent(await Canary.DumpDirectoryAsync(database.Directory), canary, "the data directory");
        Canary.AssertAbsent(await Canary.DumpDatabaseAsync(database), canary, "the database");
        Canary.AssertAbsent(sluice.Logs.All, canary, "the log");

        var paths = new[] { input, output }.Select(id => store.PathOf(Guid.ParseExact(id["file-".Length..], "N"))).ToList();
        var wrappedKeys = paths.Select(p => Convert.ToBase64String(File.ReadAllBytes(p).AsSpan(16, FileKeyRing.SlotSize))).ToList();
        var copy = Path.Combine(Path.GetTempPath(), Guid.NewGuid().ToString("N"));
        File.Copy(paths[0], copy); // a backup taken before deletion
        foreach (var id in new[] { input, output })
        {
            var deleted = JsonDocument.Parse(await (await client.DeleteAsync($"/v1/files/{id}")).Content.ReadAsStringAsync()).RootElement;
            Assert.True(deleted.GetProperty("deleted").GetBoolean());
            Assert.Equal(HttpStatusCode.NotFound, (await client.GetAsync($"/v1/files/{id}/content")).StatusCode);
        }

        Assert.All(paths, p => Assert.False(File.Exists(p)));
        var disk = await Canary.DumpDirectoryAsync(database.Directory);
        var stored = await Canary.DumpDatabaseAsync(database);
        foreach (var wrapped in wrappedKeys)
        {
            Canary.AssertAbsent(disk + stored, wrapped, "storage after shredding");
        }

        // The backup still carries the wrapping; once the key-encryption key is rotated and retired, it cannot be opened.
        using (var scope = sluice.Services.CreateScope())
        {
            await ActivatorUtilities.CreateInstance<KeyRotation>(scope.ServiceProvider).RotateAsync(addKey: true, retireOld: true, CancellationToken.None);
        }

        Assert.ThrowsAny<System.Security.Cryptography.CryptographicException>(() =>
            EncryptedFile.OpenRead(copy, store.Keys, FileStore.FileBinding(Guid.ParseExact(input["file-".Length..], "N"), Guid.Empty)).Dispose());
        File.Delete(copy);
    }

    [Fact]
    public async Task The_key_ring_rotates_itself_and_a_backup_becomes_unreadable_two_intervals_later()
    {
        var clock = new ManualTimeProvider(DateTimeOffset.UtcNow);
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Sqlite);
        await using var sluice = new SluiceFactory(database, new Dictionary<string, string?> { ["Files:KeyRotationInterval"] = "7.00:00:00", ["Files:KeyRotationCheckInterval"] = "30.00:00:00" }, clock);
        var (_, _, key) = await TenantAsync(sluice);
        using var client = sluice.WithKey(key);
        var id = await UploadIdAsync(client, ChatLines(2));
        var store = sluice.Services.GetRequiredService<FileStore>();
        var scheduler = sluice.Services.GetRequiredService<KeyRotationScheduler>();
        var path = store.PathOf(Guid.ParseExact(id["file-".Length..], "N"));
        var backup = path + ".backup";
        File.Copy(path, backup);
        var binding = FileStore.FileBinding(Guid.ParseExact(id["file-".Length..], "N"), await OrgOfAsync(database, id));

        Assert.False(await scheduler.RotateIfDueAsync(CancellationToken.None)); // not due yet
        clock.Advance(TimeSpan.FromDays(7) + TimeSpan.FromMinutes(1));
        Assert.True(await scheduler.RotateIfDueAsync(CancellationToken.None));
        Assert.Equal(2, store.Keys.Count); // the old key stays until nothing can still be wrapping under it
        EncryptedFile.OpenRead(backup, store.Keys, binding).Dispose();

        clock.Advance(TimeSpan.FromDays(7) + TimeSpan.FromMinutes(1));
        Assert.True(await scheduler.RotateIfDueAsync(CancellationToken.None));
        Assert.Equal(2, store.Keys.Count);
        Assert.Equal(ChatLines(2), await client.GetStringAsync($"/v1/files/{id}/content")); // rewrapped, still readable
        Assert.ThrowsAny<System.Security.Cryptography.CryptographicException>(() => EncryptedFile.OpenRead(backup, store.Keys, binding).Dispose());
        File.Delete(backup);
        await using var db = database.CreateContext();
        Assert.Equal(2, await db.AuditEntries.CountAsync(e => e.Action == "files.kek_rotate" && e.Actor == "system"));
    }

    [Fact]
    public async Task On_PostgreSQL_one_replica_at_a_time_rotates_the_key_ring()
    {
        var clock = new ManualTimeProvider(DateTimeOffset.UtcNow);
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Postgres);
        var settings = new Dictionary<string, string?> { ["Files:KeyRotationCheckInterval"] = "30.00:00:00" };
        await using var replicaA = new SluiceFactory(database, settings, clock);
        await using var replicaB = new SluiceFactory(database, settings, clock);
        _ = replicaA.Services;
        _ = replicaB.Services;
        clock.Advance(TimeSpan.FromDays(7) + TimeSpan.FromMinutes(1));

        var rotated = await Task.WhenAll(
            replicaA.Services.GetRequiredService<KeyRotationScheduler>().RotateIfDueAsync(CancellationToken.None),
            replicaB.Services.GetRequiredService<KeyRotationScheduler>().RotateIfDueAsync(CancellationToken.None));

        Assert.Equal(1, rotated.Count(r => r)); // the advisory lock and the ring's new time let exactly one rotate
        Assert.Equal(2, replicaB.Services.GetRequiredService<FileStore>().Keys.Count);
    }

    private static async Task<Guid> OrgOfAsync(TestDatabase database, string fileId)
    {
        await using var db = database.CreateContext();
        var id = Guid.ParseExact(fileId["file-".Length..], "N");
        return await db.Files.Where(f => f.Id == id).Select(f => f.OrganizationId).SingleAsync();
    }

    [Fact]
    public async Task Files_expire_within_thirty_days_and_the_sweeper_shreds_them_exactly_at_expiry()
    {
        var clock = new ManualTimeProvider(DateTimeOffset.UtcNow);
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Sqlite);
        await using var sluice = new SluiceFactory(database, time: clock);
        var (_, _, key) = await TenantAsync(sluice);
        using var client = sluice.WithKey(key);
        var id = await UploadIdAsync(client, ChatLines(1));
        var file = JsonDocument.Parse(await client.GetStringAsync($"/v1/files/{id}")).RootElement;
        Assert.Equal(30 * 86_400, file.GetProperty("expires_at").GetInt64() - file.GetProperty("created_at").GetInt64());
        var sweeper = sluice.Services.GetRequiredService<FileSweeper>();
        var path = sluice.Services.GetRequiredService<FileStore>().PathOf(Guid.ParseExact(id["file-".Length..], "N"));

        clock.Advance(TimeSpan.FromDays(30) - TimeSpan.FromMinutes(1));
        await sweeper.SweepAsync(CancellationToken.None);
        Assert.True(File.Exists(path));
        Assert.Equal(HttpStatusCode.OK, (await client.GetAsync($"/v1/files/{id}")).StatusCode);

        clock.Advance(TimeSpan.FromMinutes(2));
        Assert.Equal(HttpStatusCode.NotFound, (await client.GetAsync($"/v1/files/{id}")).StatusCode);
        Assert.True(await sweeper.SweepAsync(CancellationToken.None) >= 1);
        Assert.False(File.Exists(path));
        await using var db = database.CreateContext();
        Assert.Empty(db.Files);
    }
}
