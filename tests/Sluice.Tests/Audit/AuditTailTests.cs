using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using Sluice.Audit;
using Sluice.Cli;
using Sluice.Storage;
using Sluice.Tests.TestSupport;

namespace Sluice.Tests.Audit;

/// <summary>
/// The log has no unsigned tail: new entries are signed within seconds, a clean shutdown signs the rest, so editing,
/// deleting or forging the newest entries is caught, and a witness kept outside the database catches a rollback.
/// </summary>
public abstract class AuditTailTests(DatabaseProvider provider)
{
    /// <summary>A checkpoint interval long enough that only the shutdown (or an explicit call) signs during a test.</summary>
    internal static readonly Dictionary<string, string?> NoPeriodicCheckpoints = new() { ["Audit:CheckpointInterval"] = "00:10:00" };

    [Fact]
    public async Task New_entries_are_signed_within_seconds_whichever_replica_wrote_them()
    {
        await using var database = await TestDatabase.CreateAsync(provider);
        await using var sluice = new SluiceFactory(database); // the default interval
        var (owner, _) = await sluice.SignUpAndLoginAsync("owner@example.com");
        await SluiceFactory.CreateOrganizationAsync(owner);

        var (size, signed) = await WaitForSignedAsync(database, TimeSpan.FromSeconds(15));
        Assert.True(size > 0);
        Assert.Equal(size, signed);
    }

    [Fact]
    public async Task A_clean_shutdown_leaves_no_unsigned_tail()
    {
        await using var database = await TestDatabase.CreateAsync(provider);
        await using (var sluice = new SluiceFactory(database, NoPeriodicCheckpoints))
        {
            var (owner, _) = await sluice.SignUpAndLoginAsync("owner@example.com");
            await SluiceFactory.CreateOrganizationAsync(owner);
            await using var db = database.CreateContext();
            Assert.Null(await db.AuditCheckpoints.MaxAsync(c => (long?)c.TreeSize)); // nothing signed while it ran
        }

        var result = await VerifyAsync(database);
        Assert.True(result.Ok, string.Join("; ", result.Problems));
        Assert.True(result.Size >= 3, $"{result.Size} entries");
        Assert.Equal(0, result.Unverified);
        Assert.Equal(result.Size, result.Covered);
    }

    public static TheoryData<string> TailTampering => ["edit", "delete", "forge", "rollback"];

    [Theory]
    [MemberData(nameof(TailTampering))]
    public async Task Tampering_with_the_newest_entries_is_detected(string kind)
    {
        await using var database = await TestDatabase.CreateAsync(provider);
        await using (var sluice = new SluiceFactory(database, NoPeriodicCheckpoints))
        {
            var (owner, _) = await sluice.SignUpAndLoginAsync("owner@example.com");
            await SluiceFactory.CreateOrganizationAsync(owner);
        }

        var intact = await VerifyAsync(database);
        Assert.True(intact.Ok && intact.Unverified == 0, string.Join("; ", intact.Problems));
        var last = intact.Size - 1;
        string witness;
        await using (var db = database.CreateContext())
        {
            witness = (await db.AuditCheckpoints.SingleAsync(c => c.TreeSize == intact.Size)).Note;
        }

        var time = provider == DatabaseProvider.Postgres ? "now()" : "0";
        await AuditTamperTests.TamperAsync(database, kind switch
        {
            "edit" => $"UPDATE audit_entries SET target = 'org:forged' WHERE seq = {last}",
            "delete" => $"DELETE FROM audit_entries WHERE seq = {last}",
            "forge" => $"INSERT INTO audit_entries (seq, time, actor, action, target, outcome) VALUES ({last + 1}, {time}, 'system', 'org.create', 'org:ghost', 'success')",
            _ => (provider == DatabaseProvider.Sqlite ? "DROP TRIGGER audit_checkpoints_no_delete; " : "")
                + $"DELETE FROM audit_entries WHERE seq = {last}; DELETE FROM audit_checkpoints WHERE tree_size = {intact.Size}",
        });

        var result = await VerifyAsync(database, new AuditVerifier.Witness("witness.txt", witness));
        switch (kind)
        {
            case "edit":
                Assert.StartsWith($"checkpoint {intact.Size}: the stored entries do not match its signed root", result.Problems[0], StringComparison.Ordinal);
                break;
            case "delete":
                Assert.Equal($"checkpoint {intact.Size}: signed {intact.Size} entries but only {last} remain; entries {last}..{last} were deleted", result.Problems[0]);
                break;
            case "forge":
                Assert.True(result.Ok, string.Join("; ", result.Problems));
                Assert.Equal(1, result.Unverified); // nothing vouches for it: `verify` says so and `--require-signed` fails
                break;
            default:
                // Without the witness the rolled-back log is self-consistent; the witness is what catches it.
                Assert.True((await VerifyAsync(database)).Ok);
                Assert.Equal($"witness witness.txt: it vouches for {intact.Size} entries but the log has only {last}; entries {last}..{last} and the checkpoints covering them were removed (rolled back)", Assert.Single(result.Problems));
                break;
        }
    }

    internal static async Task<(long Size, long Signed)> WaitForSignedAsync(TestDatabase database, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (true)
        {
            await using var db = database.CreateContext();
            var size = (await db.AuditEntries.MaxAsync(e => (long?)e.Seq) ?? -1) + 1;
            var signed = await db.AuditCheckpoints.MaxAsync(c => (long?)c.TreeSize) ?? 0;
            if ((size > 0 && signed >= size) || DateTime.UtcNow > deadline)
            {
                return (size, signed);
            }

            await Task.Delay(100);
        }
    }

    /// <summary>Verifies the stored log with the signing key the test server created, as `sluice audit verify` does.</summary>
    internal static async Task<AuditVerifier.Result> VerifyAsync(TestDatabase database, params AuditVerifier.Witness[] witnesses)
    {
        using var signer = new CheckpointSigner(Path.Combine(database.Directory, "keys", "audit-signing-key.pem"), new AuditOptions().Origin);
        await using var db = database.CreateContext();
        var service = new AuditService(db, signer, null!, Options.Create(new AuditOptions()), TimeProvider.System);
        return AuditVerifier.Verify(await service.SnapshotAsync(null, default), signer.Origin, signer.PublicKeySpki, witnesses);
    }
}

public sealed class SqliteAuditTailTests() : AuditTailTests(DatabaseProvider.Sqlite);

public sealed class PostgresAuditTailTests() : AuditTailTests(DatabaseProvider.Postgres);

/// <summary>`sluice audit verify` on an unsigned tail, `--require-signed`, witnesses, and CLI writes that sign before exiting.</summary>
public sealed class AuditTailCommandTests
{
    [Fact]
    public async Task Verify_reports_entries_no_checkpoint_covers_and_require_signed_fails_on_them()
    {
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Sqlite);
        await using var sluice = new SluiceFactory(database, AuditTailTests.NoPeriodicCheckpoints);
        var (owner, _) = await sluice.SignUpAndLoginAsync("owner@example.com");
        await SluiceFactory.CreateOrganizationAsync(owner);
        long size;
        await using (var db = database.CreateContext())
        {
            size = await db.AuditEntries.CountAsync();
            Assert.Equal(0, await db.AuditCheckpoints.CountAsync());
        }

        string[] Verify(params string[] extra) => ["audit", "verify", "--database", database.ConnectionString, "--data-dir", database.Directory, .. extra];
        var (plain, plainOut, plainErr) = await SluiceProcess.RunAsync(Verify());
        Assert.True(plain == ExitCodes.Success, plainErr);
        Assert.Equal($"unverified: entries 0..{size - 1} ({size} of {size}) are covered by no signed checkpoint; 0 entries and 0 checkpoints verify.", plainOut.Trim());
        Assert.DoesNotContain("ok:", plainOut, StringComparison.Ordinal);

        var (strict, _, strictErr) = await SluiceProcess.RunAsync(Verify("--require-signed"));
        Assert.Equal(ExitCodes.Failure, strict);
        Assert.Contains($"error: {size} entries are unsigned (--require-signed)", strictErr, StringComparison.Ordinal);

        await using (var db = database.CreateContext())
        {
            Assert.Equal(0, await db.AuditCheckpoints.CountAsync()); // verifying signs nothing
        }
    }

    [Fact]
    public async Task A_command_that_writes_audit_entries_signs_them_before_it_exits()
    {
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Sqlite);
        string[] Db(params string[] args) => [.. args, "--database", database.ConnectionString, "--data-dir", database.Directory];
        var (created, _, createdErr) = await SluiceProcess.RunAsync(Db("orgs", "create", "--name", "Acme Labs", "--billing-email", "billing@acme.test"));
        Assert.True(created == ExitCodes.Success, createdErr);

        await using (var db = database.CreateContext())
        {
            var size = await db.AuditEntries.MaxAsync(e => e.Seq) + 1;
            Assert.Equal(size, await db.AuditCheckpoints.MaxAsync(c => (long?)c.TreeSize));
        }

        var (verified, verifiedOut, verifiedErr) = await SluiceProcess.RunAsync(Db("audit", "verify", "--require-signed"));
        Assert.True(verified == ExitCodes.Success, verifiedOut + verifiedErr);
        Assert.StartsWith("ok: ", verifiedOut, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_witness_exported_earlier_detects_a_rollback_of_entries_and_checkpoints_together()
    {
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Sqlite);
        string[] Db(params string[] args) => [.. args, "--database", database.ConnectionString, "--data-dir", database.Directory];
        Assert.Equal(ExitCodes.Success, (await SluiceProcess.RunAsync(Db("orgs", "create", "--name", "First"))).ExitCode);
        long before;
        await using (var db = database.CreateContext())
        {
            before = await db.AuditEntries.CountAsync();
        }

        Assert.Equal(ExitCodes.Success, (await SluiceProcess.RunAsync(Db("orgs", "create", "--name", "Second"))).ExitCode);
        var witness = Path.Combine(database.Directory, "witness-1.txt");
        var (exported, exportedOut, exportedErr) = await SluiceProcess.RunAsync(Db("audit", "checkpoint", "--out", witness));
        Assert.True(exported == ExitCodes.Success, exportedErr);
        Assert.Equal(exportedOut, await File.ReadAllTextAsync(witness));
        var witnessed = long.Parse(exportedOut.Split('\n')[1], System.Globalization.CultureInfo.InvariantCulture);
        Assert.True(witnessed > before);

        var (intact, intactOut, intactErr) = await SluiceProcess.RunAsync(Db("audit", "verify", "--witness", witness, "--require-signed"));
        Assert.True(intact == ExitCodes.Success, intactOut + intactErr);

        // Roll the log back to before "Second": its entries and every checkpoint that covered them.
        await AuditTamperTests.TamperAsync(database, $"DROP TRIGGER audit_checkpoints_no_delete; DELETE FROM audit_entries WHERE seq >= {before}; DELETE FROM audit_checkpoints WHERE tree_size > {before}");
        var (alone, aloneOut, aloneErr) = await SluiceProcess.RunAsync(Db("audit", "verify", "--require-signed"));
        Assert.True(alone == ExitCodes.Success, aloneOut + aloneErr); // self-consistent without the witness

        var (rolledBack, _, rolledBackErr) = await SluiceProcess.RunAsync(Db("audit", "verify", "--witness", witness));
        Assert.Equal(ExitCodes.Failure, rolledBack);
        Assert.Contains($"tampered: witness witness-1.txt: it vouches for {witnessed} entries but the log has only {before};", rolledBackErr, StringComparison.Ordinal);
    }
}
