using System.Text;
using System.Text.Json;

namespace Sluice.Audit;

/// <summary>
/// The off-box archive of the log: <c>entries.jsonl</c> (each line exactly the canonical bytes hashed as its leaf),
/// <c>checkpoints/NNNNNNNNNNNN.note</c> (the signed notes), <c>pruned.json</c> (the hashes kept for pruned entries)
/// and <c>public-key.pem</c>. It can be verified offline with the public key alone.
/// </summary>
public static class AuditExport
{
    public const string EntriesFile = "entries.jsonl";
    public const string CheckpointsDirectory = "checkpoints";
    public const string PrunedFile = "pruned.json";
    public const string PublicKeyFile = "public-key.pem";

    public static async Task WriteAsync(string directory, AuditSnapshot snapshot, string publicKeyPem, CancellationToken cancellationToken)
    {
        Directory.CreateDirectory(Path.Combine(directory, CheckpointsDirectory));
        await using (var entries = new StreamWriter(Path.Combine(directory, EntriesFile), append: false, new UTF8Encoding(false)))
        {
            entries.NewLine = "\n";
            foreach (var entry in snapshot.Entries.OrderBy(e => e.Seq))
            {
                await entries.WriteLineAsync(Encoding.UTF8.GetString(entry.CanonicalBytes()).AsMemory(), cancellationToken);
            }
        }

        foreach (var checkpoint in snapshot.Checkpoints)
        {
            await File.WriteAllTextAsync(Path.Combine(directory, CheckpointsDirectory, $"{checkpoint.TreeSize:D12}.note"), checkpoint.Note, new UTF8Encoding(false), cancellationToken);
        }

        var pruned = snapshot.PrunedSubtrees.Select(s => new PrunedRecord(s.PrefixSize, s.Start, s.Size, s.Hash)).ToList();
        await File.WriteAllTextAsync(Path.Combine(directory, PrunedFile), JsonSerializer.Serialize(pruned), cancellationToken);
        await File.WriteAllTextAsync(Path.Combine(directory, PublicKeyFile), publicKeyPem, cancellationToken);
    }

    /// <summary>Reads an export back. A line that is not in canonical form is itself a finding, reported by its number.</summary>
    public static async Task<(AuditSnapshot Snapshot, List<string> Problems)> ReadAsync(string directory, CancellationToken cancellationToken)
    {
        var problems = new List<string>();
        var entries = new List<AuditEntry>();
        var lineNumber = 0;
        foreach (var line in await File.ReadAllLinesAsync(Path.Combine(directory, EntriesFile), cancellationToken))
        {
            lineNumber++;
            try
            {
                var entry = Parse(line);
                if (Encoding.UTF8.GetString(entry.CanonicalBytes()) != line)
                {
                    problems.Add($"{EntriesFile} line {lineNumber}: not in canonical form");
                }

                entries.Add(entry);
            }
            catch (Exception ex) when (ex is JsonException or FormatException or KeyNotFoundException or InvalidOperationException)
            {
                problems.Add($"{EntriesFile} line {lineNumber}: not an audit entry");
            }
        }

        var checkpoints = new List<AuditCheckpoint>();
        foreach (var file in Directory.EnumerateFiles(Path.Combine(directory, CheckpointsDirectory), "*.note").Order(StringComparer.Ordinal))
        {
            var note = await File.ReadAllTextAsync(file, cancellationToken);
            var lines = note.Split('\n');
            if (lines.Length > 2 && long.TryParse(lines[1], System.Globalization.CultureInfo.InvariantCulture, out var size))
            {
                checkpoints.Add(new AuditCheckpoint { TreeSize = size, RootHash = lines[2], Note = note });
            }
            else
            {
                problems.Add($"{Path.GetFileName(file)}: not a checkpoint");
            }
        }

        var prunedPath = Path.Combine(directory, PrunedFile);
        var pruned = File.Exists(prunedPath)
            ? (JsonSerializer.Deserialize<List<PrunedRecord>>(await File.ReadAllTextAsync(prunedPath, cancellationToken)) ?? [])
                .Select(p => new AuditPrunedSubtree { PrefixSize = p.PrefixSize, Start = p.Start, Size = p.Size, Hash = p.Hash }).ToList()
            : [];
        return (new AuditSnapshot(entries, checkpoints, pruned), problems);
    }

    private static AuditEntry Parse(string line)
    {
        using var json = JsonDocument.Parse(line);
        var root = json.RootElement;
        var org = root.GetProperty("org");
        var source = root.GetProperty("source");
        return new AuditEntry
        {
            Seq = root.GetProperty("seq").GetInt64(),
            Time = DateTimeOffset.UnixEpoch.AddTicks(root.GetProperty("time").GetInt64() * TimeSpan.TicksPerMicrosecond),
            Actor = root.GetProperty("actor").GetString()!,
            OrganizationId = org.ValueKind == JsonValueKind.Null ? null : Guid.Parse(org.GetString()!),
            Action = root.GetProperty("action").GetString()!,
            Target = root.GetProperty("target").GetString()!,
            Outcome = root.GetProperty("outcome").GetString()!,
            SourceNetwork = source.ValueKind == JsonValueKind.Null ? null : source.GetString(),
        };
    }

    private sealed record PrunedRecord(long PrefixSize, long Start, long Size, string Hash);
}
