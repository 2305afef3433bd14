using System.Data.Common;
using System.Text;
using System.Text.Json;
using Sluice.Storage;

namespace Sluice.Tests.TestSupport;

/// <summary>Looks for a secret in every form it could leak as: plain, JSON-escaped, base64 (any alignment), hex.</summary>
public static class Canary
{
    public static IReadOnlyList<string> Forms(string secret)
    {
        var bytes = Encoding.UTF8.GetBytes(secret);
        var forms = new List<string> { secret, JsonSerializer.Serialize(secret).Trim('"'), Convert.ToHexString(bytes), Convert.ToHexStringLower(bytes) };
        for (var offset = 0; offset < 3; offset++)
        {
            // base64 of the secret preceded by 0-2 other bytes: the middle characters are fixed whatever surrounds it.
            var encoded = Convert.ToBase64String([.. new byte[offset], .. bytes]);
            var start = (offset * 4 + 2) / 3 + 1;
            forms.Add(encoded[start..(encoded.Length - 4)]);
        }

        return forms.Distinct().ToList();
    }

    public static void AssertAbsent(string haystack, string secret, string where)
    {
        foreach (var form in Forms(secret))
        {
            Assert.False(haystack.Contains(form, StringComparison.Ordinal), $"a secret appears in {where} (as '{form[..Math.Min(6, form.Length)]}…')");
        }
    }

    /// <summary>Every file under <paramref name="directory"/>, as bytes read as Latin-1 (so any encoding of the canary shows).</summary>
    public static async Task<string> DumpDirectoryAsync(string directory)
    {
        var text = new StringBuilder();
        foreach (var path in Directory.EnumerateFiles(directory, "*", SearchOption.AllDirectories))
        {
            FileStream stream;
            try
            {
                stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
            }
            catch (FileNotFoundException)
            {
                continue; // removed since it was listed (SQLite's -shm and -journal come and go)
            }
            catch (IOException) when (new FileInfo(path) is { Exists: true, Length: 0 })
            {
                continue; // an empty file held under an exclusive lock (a live spend journal's lock file): nothing to read
            }

            await using var _ = stream;
            using var reader = new StreamReader(stream, Encoding.Latin1);
            text.Append(path).Append('\n').Append(await reader.ReadToEndAsync()).Append('\n');
        }

        return text.ToString();
    }

    /// <summary>Everything stored: the SQLite file and its WAL as bytes, or every PostgreSQL row as text.</summary>
    public static async Task<string> DumpDatabaseAsync(TestDatabase database)
    {
        if (database.Provider == DatabaseProvider.Sqlite)
        {
            var file = database.Target.SqliteFile!;
            var text = new StringBuilder();
            foreach (var path in new[] { file, file + "-wal", file + "-journal" }.Where(File.Exists))
            {
                await using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
                using var reader = new StreamReader(stream, Encoding.Latin1);
                text.Append(await reader.ReadToEndAsync());
            }

            return text.ToString();
        }

        await using var connection = database.OpenConnection();
        var tables = new List<string>();
        await using (var list = connection.CreateCommand())
        {
            list.CommandText = "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'";
            await using var reader = await list.ExecuteReaderAsync();
            while (await reader.ReadAsync())
            {
                tables.Add(reader.GetString(0));
            }
        }

        var dump = new StringBuilder();
        foreach (var table in tables)
        {
            await using var select = connection.CreateCommand();
            select.CommandText = $"SELECT row_to_json(t)::text FROM \"{table}\" t";
            await using DbDataReader reader = await select.ExecuteReaderAsync();
            while (await reader.ReadAsync())
            {
                dump.AppendLine(reader.GetString(0));
            }
        }

        return dump.ToString();
    }
}
