using System.Net;
using System.Net.Http.Headers;
using System.Text.Json;
using Sluice.Files;
using Sluice.Storage;
using Sluice.Tests.TestSupport;
using static Sluice.Tests.TestSupport.GatewayKit;

namespace Sluice.Tests.Files;

/// <summary><c>Files:MaxFileBytes</c> is exact: the limit is accepted, one byte more is refused, whatever the chunking.</summary>
public sealed class FileLimitTests
{
    [Theory]
    [InlineData(EncryptedFile.ChunkSize)] // the default (512 MiB) is a whole number of chunks too
    [InlineData(2 * EncryptedFile.ChunkSize)]
    [InlineData(EncryptedFile.ChunkSize + 100)]
    public async Task An_upload_of_exactly_the_limit_is_stored_and_one_byte_more_is_refused(int limit)
    {
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Sqlite);
        await using var sluice = new SluiceFactory(database, new Dictionary<string, string?> { ["Files:MaxFileBytes"] = limit.ToString(System.Globalization.CultureInfo.InvariantCulture) });
        var (_, _, key) = await TenantAsync(sluice);
        using var client = sluice.WithKey(key);

        var atLimit = await UploadBytesAsync(client, limit);
        var overLimit = await UploadBytesAsync(client, limit + 1);

        Assert.Equal(HttpStatusCode.OK, atLimit.StatusCode);
        Assert.Equal(limit, JsonDocument.Parse(await atLimit.Content.ReadAsStringAsync()).RootElement.GetProperty("bytes").GetInt64());
        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, overLimit.StatusCode);
        Assert.Equal("file_too_large", JsonDocument.Parse(await overLimit.Content.ReadAsStringAsync()).RootElement.GetProperty("error").GetProperty("code").GetString());
        Assert.Single(Directory.EnumerateFiles(Path.Combine(database.Directory, "files"), "*.sf")); // nothing of the refused one is left
    }

    private static async Task<HttpResponseMessage> UploadBytesAsync(HttpClient client, int size)
    {
        using var form = new MultipartFormDataContent();
        form.Add(new StringContent("user_data"), "purpose");
        var file = new ByteArrayContent(Enumerable.Repeat((byte)'x', size).ToArray());
        file.Headers.ContentType = new MediaTypeHeaderValue("application/octet-stream");
        form.Add(file, "file", "data.bin");
        return await client.PostAsync("/v1/files", form);
    }
}
