using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Sluice.Audit;
using Sluice.Cli;
using Sluice.Storage;
using Sluice.Tests.TestSupport;

namespace Sluice.Tests.Audit;

/// <summary>
/// An attacker with database access bypasses the triggers and edits the log directly; the verifier notices every kind
/// of edit and names the first bad entry, or the narrowest range a signed checkpoint allows.
/// </summary>
public abstract class AuditTamperTests(DatabaseProvider provider)
{
    public static TheoryData<string, string, string> Tampering => new()
    {
        { "change", "UPDATE audit_entries SET target = 'org:forged' WHERE seq = 5", "checkpoint 6: the stored entries do not match its signed root; the first bad entry is among 4..5" },
        { "delete", "DELETE FROM audit_entries WHERE seq = 5", "entry 5: missing (the next stored entry is 6)" },
        { "reorder", "UPDATE audit_entries SET seq = -1 WHERE seq = 4; UPDATE audit_entries SET seq = 4 WHERE seq = 5; UPDATE audit_entries SET seq = 5 WHERE seq = -1", "checkpoint 6: the stored entries do not match its signed root; the first bad entry is among 4..5" },
        { "insert", "UPDATE audit_entries SET seq = seq + 100 WHERE seq >= 5; UPDATE audit_entries SET seq = seq - 99 WHERE seq >= 105; INSERT INTO audit_entries (seq, time, actor, action, target, outcome) VALUES (5, 0, 'system', 'org.create', 'org:ghost', 'success')", "checkpoint 6: the stored entries do not match its signed root; the first bad entry is among 4..5" },
        { "truncate", "DELETE FROM audit_entries WHERE seq >= 6", "checkpoint 8: signed 8 entries but only 6 remain; entries 6..7 were deleted" },
        { "forge checkpoint", "UPDATE audit_checkpoints SET root_hash = 'AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=' WHERE tree_size = 4", "checkpoint 4: its stored size or root differs from what its signature covers" },
    };

    [Theory]
    [MemberData(nameof(Tampering))]
    public async Task The_verifier_catches_direct_edits_and_names_the_first_bad_entry(string kind, string sql, string firstProblem)
    {
        await using var database = await TestDatabase.CreateAsync(provider);
        await using var sluice = await LogWithCheckpointsAsync(database);
        Assert.True((await VerifyAsync(sluice)).Ok);

        // SQLite stores time as Unix microseconds; PostgreSQL as timestamptz.
        await TamperAsync(database, provider == DatabaseProvider.Postgres ? sql.Replace("VALUES (5, 0,", "VALUES (5, now(),", StringComparison.Ordinal) : sql);
        var result = await VerifyAsync(sluice);

        Assert.False(result.Ok, kind);
        Assert.Equal(firstProblem, result.Problems[0]);
    }

    /// <summary>Eight entries (start-up, sign-up, organizations) with checkpoints at 4, 6 and 8.</summary>
    internal static async Task<SluiceFactory> LogWithCheckpointsAsync(TestDatabase database)
    {
        var sluice = new SluiceFactory(database, AuditTailTests.NoPeriodicCheckpoints); // checkpoints exactly where the test signs them
        var (owner, _) = await sluice.SignUpAndLoginAsync("owner@example.com");
        await using var db = database.CreateContext();
        var count = await db.AuditEntries.CountAsync();
        Assert.True(count <= 4, $"start-up and sign-up wrote {count} entries");
        foreach (var checkpointAt in new[] { 4, 6, 8 })
        {
            while (count < checkpointAt)
            {
                await SluiceFactory.CreateOrganizationAsync(owner, $"Org {count}");
                count++;
            }

            Assert.Equal(checkpointAt, (await AuditLogTests.CheckpointAsync(sluice)).TreeSize);
        }

        return sluice;
    }

    internal static async Task TamperAsync(TestDatabase database, string sql)
    {
        // What an attacker with the database's credentials can do: switch the guards off, then edit.
        var disable = database.Provider == DatabaseProvider.Sqlite
            ? "DROP TRIGGER audit_entries_append_only; DROP TRIGGER audit_entries_prune_below_checkpoint; DROP TRIGGER audit_checkpoints_append_only;"
            : "ALTER TABLE audit_entries DISABLE TRIGGER USER; ALTER TABLE audit_checkpoints DISABLE TRIGGER USER;";
        await database.ExecuteAsync(disable + sql);
    }

    private static async Task<AuditVerifier.Result> VerifyAsync(SluiceFactory sluice)
    {
        await using var scope = sluice.Services.CreateAsyncScope();
        var signer = scope.ServiceProvider.GetRequiredService<CheckpointSigner>();
        var snapshot = await scope.ServiceProvider.GetRequiredService<AuditService>().SnapshotAsync(null, default);
        return AuditVerifier.Verify(snapshot, signer.Origin, signer.PublicKeySpki);
    }
}

public sealed class SqliteAuditTamperTests() : AuditTamperTests(DatabaseProvider.Sqlite);

public sealed class PostgresAuditTamperTests() : AuditTamperTests(DatabaseProvider.Postgres);

/// <summary>`sluice audit verify` and `sluice audit export` as an operator runs them.</summary>
public sealed class AuditCommandTests
{
    [Fact]
    public async Task Verify_passes_on_an_intact_log_and_exits_1_naming_the_first_problem_after_tampering()
    {
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Sqlite);
        await using (var _ = await AuditTamperTests.LogWithCheckpointsAsync(database))
        {
        }

        string[] Verify() => ["audit", "verify", "--database", database.ConnectionString, "--data-dir", database.Directory];
        var (intact, intactOut, intactErr) = await SluiceProcess.RunAsync(Verify());
        Assert.True(intact == ExitCodes.Success, intactErr);
        Assert.Contains("ok: 8 entries and 3 checkpoints verify", intactOut, StringComparison.Ordinal);

        await AuditTamperTests.TamperAsync(database, "DELETE FROM audit_entries WHERE seq = 3");
        var (tampered, _, tamperedErr) = await SluiceProcess.RunAsync(Verify());
        Assert.Equal(ExitCodes.Failure, tampered);
        Assert.StartsWith("tampered: entry 3: missing", tamperedErr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task An_export_verifies_offline_with_only_the_public_key_and_catches_an_edited_line()
    {
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Sqlite);
        await using (var _ = await AuditTamperTests.LogWithCheckpointsAsync(database))
        {
        }

        var export = Path.Combine(database.Directory, "export");
        var (exported, exportOut, exportErr) = await SluiceProcess.RunAsync(["audit", "export", "--out", export, "--database", database.ConnectionString, "--data-dir", database.Directory]);
        Assert.True(exported == ExitCodes.Success, exportErr);
        Assert.Contains("Exported 8 entries and 3 checkpoints", exportOut, StringComparison.Ordinal);
        var trustedKey = Path.Combine(database.Directory, "trusted.pem");
        File.Copy(Path.Combine(export, AuditExport.PublicKeyFile), trustedKey);
        File.Delete(Path.Combine(database.Directory, "sluice.db")); // offline: the database is gone

        var (ok, okOut, _) = await SluiceProcess.RunAsync(["audit", "verify", "--export", export, "--public-key", trustedKey]);
        Assert.Equal(ExitCodes.Success, ok);
        Assert.Contains("ok: 8 entries and 3 checkpoints verify", okOut, StringComparison.Ordinal);

        var entries = Path.Combine(export, AuditExport.EntriesFile);
        var lines = await File.ReadAllLinesAsync(entries);
        lines[6] = lines[6].Replace("org.create", "org.update", StringComparison.Ordinal);
        await File.WriteAllLinesAsync(entries, lines);
        var (bad, _, badErr) = await SluiceProcess.RunAsync(["audit", "verify", "--export", export, "--public-key", trustedKey]);
        Assert.Equal(ExitCodes.Failure, bad);
        Assert.Contains("tampered: checkpoint 8: the stored entries do not match its signed root; the first bad entry is among 6..7", badErr, StringComparison.Ordinal);

        using var otherKey = System.Security.Cryptography.ECDsa.Create(System.Security.Cryptography.ECCurve.NamedCurves.nistP256);
        var impostor = Path.Combine(database.Directory, "impostor.pem");
        await File.WriteAllTextAsync(impostor, otherKey.ExportSubjectPublicKeyInfoPem());
        var (wrongKey, _, wrongKeyErr) = await SluiceProcess.RunAsync(["audit", "verify", "--export", export, "--public-key", impostor]);
        Assert.Equal(ExitCodes.Failure, wrongKey);
        Assert.Contains("no signature by the audit key", wrongKeyErr, StringComparison.Ordinal);
    }
}
