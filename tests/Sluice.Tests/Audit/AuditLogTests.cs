using System.Net.Http.Json;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Sluice.Audit;
using Sluice.Storage;
using Sluice.Tests.TestSupport;

namespace Sluice.Tests.Audit;

/// <summary>The log is append-only in the database itself, numbered without gaps, and prunable only below a checkpoint.</summary>
public abstract class AuditLogTests(DatabaseProvider provider)
{
    [Fact]
    public async Task The_database_refuses_to_update_or_delete_entries_and_checkpoints()
    {
        await using var database = await TestDatabase.CreateAsync(provider);
        await using var sluice = new SluiceFactory(database);
        var (owner, _) = await sluice.SignUpAndLoginAsync("owner@example.com");
        await SluiceFactory.CreateOrganizationAsync(owner);
        var signed = await CheckpointAsync(sluice);

        await Assert.ThrowsAnyAsync<System.Data.Common.DbException>(() => database.ExecuteAsync("UPDATE audit_entries SET action = 'nothing.happened' WHERE seq = 1"));
        await Assert.ThrowsAnyAsync<System.Data.Common.DbException>(() => database.ExecuteAsync("DELETE FROM audit_entries WHERE seq = 1"));
        await Assert.ThrowsAnyAsync<System.Data.Common.DbException>(() => database.ExecuteAsync("DELETE FROM audit_checkpoints"));
        await Assert.ThrowsAnyAsync<System.Data.Common.DbException>(() => database.ExecuteAsync("UPDATE audit_checkpoints SET root_hash = 'x'"));
        // The pruning path: hashes may be kept only for a prefix that ends at a signed checkpoint.
        await Assert.ThrowsAnyAsync<System.Data.Common.DbException>(() => database.ExecuteAsync(
            "INSERT INTO audit_pruned_subtrees (prefix_size, start, size, hash) VALUES (2, 0, 2, 'AAAA')"));
        if (provider == DatabaseProvider.Postgres)
        {
            await Assert.ThrowsAnyAsync<System.Data.Common.DbException>(() => database.ExecuteAsync("TRUNCATE audit_entries"));
        }

        Assert.Equal(signed.TreeSize, Convert.ToInt64(await database.ScalarAsync("SELECT count(*) FROM audit_entries"), System.Globalization.CultureInfo.InvariantCulture));
    }

    [Fact]
    public async Task Two_replicas_appending_at_once_leave_no_gaps_or_duplicates()
    {
        await using var database = await TestDatabase.CreateAsync(provider);
        await using var replicaA = new SluiceFactory(database);
        await using var replicaB = new SluiceFactory(database);
        var (onA, _) = await replicaA.SignUpAndLoginAsync("a@example.com");
        var (onB, _) = await replicaB.SignUpAndLoginAsync("b@example.com");

        await Task.WhenAll(Enumerable.Range(0, 15).SelectMany(i => new[]
        {
            onA.PostAsJsonAsync("/api/v1/orgs", new { name = $"A{i}" }),
            onB.PostAsJsonAsync("/api/v1/orgs", new { name = $"B{i}" }),
        }));

        await using var db = database.CreateContext();
        var seqs = await db.AuditEntries.OrderBy(e => e.Seq).Select(e => e.Seq).ToListAsync();
        Assert.Equal(Enumerable.Range(0, seqs.Count).Select(i => (long)i), seqs);
        Assert.Equal(30, await db.AuditEntries.CountAsync(e => e.Action == "org.create"));
    }

    [Fact]
    public async Task Pruning_removes_only_expired_entries_below_a_checkpoint_and_the_rest_still_verifies()
    {
        var clock = new ManualTimeProvider(DateTimeOffset.UtcNow);
        await using var database = await TestDatabase.CreateAsync(provider);
        await using var sluice = new SluiceFactory(database, new Dictionary<string, string?> { ["Audit:Retention"] = "1.00:00:00", ["Identity:SessionLifetime"] = "30.00:00:00", ["Audit:CheckpointInterval"] = "00:10:00" }, clock);
        var (owner, _) = await sluice.SignUpAndLoginAsync("owner@example.com");
        for (var i = 0; i < 5; i++)
        {
            await SluiceFactory.CreateOrganizationAsync(owner, $"Old {i}");
        }

        var first = await CheckpointAsync(sluice);
        await SluiceFactory.CreateOrganizationAsync(owner, "Old but unsigned");
        clock.Advance(TimeSpan.FromDays(2));
        await SluiceFactory.CreateOrganizationAsync(owner, "Recent");
        var second = await CheckpointAsync(sluice);

        long prefix;
        await using (var scope = sluice.Services.CreateAsyncScope())
        {
            prefix = await scope.ServiceProvider.GetRequiredService<AuditService>().PruneAsync(default);
        }

        Assert.Equal(first.TreeSize, prefix); // the unsigned old entry stays: nothing vouches for a cut after it
        await using var db = database.CreateContext();
        Assert.Equal(first.TreeSize, await db.AuditEntries.MinAsync(e => e.Seq));
        Assert.Contains(await db.AuditEntries.ToListAsync(), e => e.Action == "audit.prune");
        await using var verifyScope = sluice.Services.CreateAsyncScope();
        var service = verifyScope.ServiceProvider.GetRequiredService<AuditService>();
        var signer = verifyScope.ServiceProvider.GetRequiredService<CheckpointSigner>();
        var result = AuditVerifier.Verify(await service.SnapshotAsync(null, default), signer.Origin, signer.PublicKeySpki);
        Assert.True(result.Ok, string.Join("; ", result.Problems));
        Assert.Equal(first.TreeSize, result.PrunedBelow);

        var (_, leaf, proof, size) = await service.InclusionProofAsync(first.TreeSize, second.TreeSize, default);
        Assert.True(Merkle.VerifyInclusion((ulong)first.TreeSize, (ulong)size, leaf, proof, Convert.FromBase64String(second.RootHash), out var error), error);
        await Assert.ThrowsAsync<Sluice.Hosting.ApiProblemException>(() => service.InclusionProofAsync(0, second.TreeSize, default));
        await Assert.ThrowsAnyAsync<System.Data.Common.DbException>(() => database.ExecuteAsync($"DELETE FROM audit_entries WHERE seq = {first.TreeSize}"));
    }

    [Fact]
    public async Task Replicas_sign_checkpoints_periodically_once_per_size()
    {
        await using var database = await TestDatabase.CreateAsync(provider);
        var settings = new Dictionary<string, string?> { ["Audit:CheckpointInterval"] = "00:00:01" };
        await using var replicaA = new SluiceFactory(database, settings);
        await using var replicaB = new SluiceFactory(database, settings);
        var (owner, _) = await replicaA.SignUpAndLoginAsync("owner@example.com");
        replicaB.CreateClient().Dispose();
        await SluiceFactory.CreateOrganizationAsync(owner);

        var deadline = DateTime.UtcNow.AddSeconds(10);
        long signed = 0;
        long entries;
        do
        {
            await Task.Delay(200);
            await using var db = database.CreateContext();
            signed = await db.AuditCheckpoints.MaxAsync(c => (long?)c.TreeSize) ?? 0;
            entries = await db.AuditEntries.CountAsync();
        }
        while (DateTime.UtcNow < deadline && signed < entries);

        await using (var db = database.CreateContext())
        {
            Assert.Equal(await db.AuditEntries.CountAsync(), signed);
        }

        await using var check = database.CreateContext();
        Assert.Equal(await check.AuditCheckpoints.CountAsync(), (await check.AuditCheckpoints.Select(c => c.TreeSize).ToListAsync()).Distinct().Count());
    }

    [Fact]
    public async Task A_server_started_with_changed_settings_records_the_change_once()
    {
        await using var database = await TestDatabase.CreateAsync(provider);
        async Task<List<string>> ConfigEntriesAsync()
        {
            await using var db = database.CreateContext();
            return await db.AuditEntries.Where(e => e.Action == "config.change").OrderBy(e => e.Seq).Select(e => e.Target).ToListAsync();
        }

        await using (var first = new SluiceFactory(database))
        {
            first.CreateClient().Dispose();
        }

        await using (var same = new SluiceFactory(database))
        {
            same.CreateClient().Dispose();
        }

        var afterSame = await ConfigEntriesAsync();
        await using (var changed = new SluiceFactory(database, new Dictionary<string, string?> { ["Identity:MinimumAge"] = "16" }))
        {
            changed.CreateClient().Dispose();
        }

        var afterChange = await ConfigEntriesAsync();
        Assert.Single(afterSame);
        Assert.Equal(2, afterChange.Count);
        Assert.NotEqual(afterChange[0], afterChange[1]);
        Assert.All(afterChange, t => Assert.Matches("^settings:sha256:[0-9a-f]{32}$", t));
    }

    internal static async Task<AuditCheckpoint> CheckpointAsync(SluiceFactory sluice)
    {
        await using var scope = sluice.Services.CreateAsyncScope();
        return (await scope.ServiceProvider.GetRequiredService<AuditService>().CheckpointAsync(default))!;
    }
}

public sealed class SqliteAuditLogTests() : AuditLogTests(DatabaseProvider.Sqlite);

public sealed class PostgresAuditLogTests() : AuditLogTests(DatabaseProvider.Postgres);
