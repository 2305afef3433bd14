using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using Sluice.Hosting;
using Sluice.Storage;

namespace Sluice.Audit;

/// <summary>Reads the log, signs checkpoints, computes proofs, and prunes entries past retention.</summary>
public sealed class AuditService(
    SluiceDbContext db,
    CheckpointSigner signer,
    AuditLog log,
    IOptions<AuditOptions> options,
    TimeProvider time)
{
    public const int MaxPageSize = 500;

    /// <summary>Everything stored, read in one transaction so entries, checkpoints and pruning records agree.</summary>
    public async Task<AuditSnapshot> SnapshotAsync(long? upTo, CancellationToken cancellationToken)
    {
        // PostgreSQL: one snapshot for the three reads. SQLite: a transaction is always serializable.
        var isolation = db.Database.IsNpgsql() ? System.Data.IsolationLevel.RepeatableRead : System.Data.IsolationLevel.Serializable;
        await using var transaction = await db.Database.BeginTransactionAsync(isolation, cancellationToken);
        var entries = await db.AuditEntries.AsNoTracking().Where(e => upTo == null || e.Seq < upTo).OrderBy(e => e.Seq).ToListAsync(cancellationToken);
        var checkpoints = await db.AuditCheckpoints.AsNoTracking().OrderBy(c => c.TreeSize).ToListAsync(cancellationToken);
        var pruned = await db.AuditPrunedSubtrees.AsNoTracking().ToListAsync(cancellationToken);
        await transaction.CommitAsync(cancellationToken);
        return new AuditSnapshot(entries, checkpoints, pruned);
    }

    public async Task<AuditCheckpoint?> LatestCheckpointAsync(CancellationToken cancellationToken) =>
        await db.AuditCheckpoints.AsNoTracking().OrderByDescending(c => c.TreeSize).FirstOrDefaultAsync(cancellationToken);

    /// <summary>How many entries the log holds, pruned ones included: the size the next checkpoint would sign.</summary>
    public async Task<long> SizeAsync(CancellationToken cancellationToken) =>
        Math.Max(
            (await db.AuditEntries.MaxAsync(e => (long?)e.Seq, cancellationToken) ?? -1) + 1,
            await db.AuditPrunedSubtrees.MaxAsync(s => (long?)s.PrefixSize, cancellationToken) ?? 0);

    /// <summary>
    /// Signs a checkpoint when entries exist that no checkpoint covers; two cheap indexed reads when none do, so every
    /// replica can ask every few seconds.
    /// </summary>
    public async Task<AuditCheckpoint?> CheckpointIfBehindAsync(CancellationToken cancellationToken)
    {
        var size = await SizeAsync(cancellationToken);
        var signed = await db.AuditCheckpoints.MaxAsync(c => (long?)c.TreeSize, cancellationToken) ?? 0;
        return size > signed ? await CheckpointAsync(cancellationToken) : null;
    }

    /// <summary>Signs a checkpoint for the log as it stands, unless the latest checkpoint already covers it.</summary>
    public async Task<AuditCheckpoint?> CheckpointAsync(CancellationToken cancellationToken)
    {
        var snapshot = await SnapshotAsync(null, cancellationToken);
        var tree = snapshot.Tree();
        var latest = snapshot.Checkpoints.Count == 0 ? null : snapshot.Checkpoints[^1];
        if (tree.Size == 0 || (latest is not null && (ulong)latest.TreeSize >= tree.Size))
        {
            return latest;
        }

        var root = tree.Root(tree.Size);
        var checkpoint = new AuditCheckpoint
        {
            TreeSize = (long)tree.Size,
            RootHash = Convert.ToBase64String(root),
            Note = signer.Sign((long)tree.Size, root),
            CreatedAt = time.GetUtcNow(),
        };
        db.AuditCheckpoints.Add(checkpoint);
        try
        {
            await db.SaveChangesAsync(cancellationToken);
        }
        catch (DbUpdateException)
        {
            // Another replica signed this size at the same moment; its checkpoint stands.
            db.ChangeTracker.Clear();
            return await db.AuditCheckpoints.AsNoTracking().SingleAsync(c => c.TreeSize == checkpoint.TreeSize, cancellationToken);
        }

        return checkpoint;
    }

    public async Task<(AuditCheckpoint? Checkpoint, byte[] LeafHash, List<byte[]> Proof, long Size)> InclusionProofAsync(long index, long? size, CancellationToken cancellationToken)
    {
        var treeSize = size ?? (await LatestCheckpointAsync(cancellationToken))?.TreeSize
            ?? throw ApiProblem.Invalid("size", "no checkpoint has been signed yet; give a size");
        if (index < 0 || treeSize <= 0 || index >= treeSize)
        {
            throw ApiProblem.Invalid("index", $"must be at least 0 and below the tree size {treeSize}");
        }

        var snapshot = await SnapshotAsync(treeSize, cancellationToken);
        var tree = snapshot.Tree();
        if ((ulong)treeSize > tree.Size)
        {
            throw ApiProblem.Invalid("size", $"the log has {tree.Size} entries");
        }

        try
        {
            return (snapshot.Checkpoints.FirstOrDefault(c => c.TreeSize == treeSize), tree.LeafHash((ulong)index), tree.InclusionProof((ulong)index, (ulong)treeSize), treeSize);
        }
        catch (PrunedRangeException)
        {
            throw ApiProblem.Invalid("index", $"entries below {tree.PrunedSize} were pruned by retention");
        }
    }

    /// <summary>
    /// One entry of an organization with its inclusion proof against the newest signed checkpoint (null when no checkpoint
    /// covers it yet). Null when the organization has no such entry.
    /// </summary>
    public async Task<(AuditEntry Entry, AuditCheckpoint? Checkpoint, List<byte[]> Proof)?> EntryProofAsync(Guid orgId, long seq, CancellationToken cancellationToken)
    {
        var entry = await db.AuditEntries.AsNoTracking().SingleOrDefaultAsync(e => e.Seq == seq && e.OrganizationId == orgId, cancellationToken);
        if (entry is null)
        {
            return null;
        }

        var checkpoint = await LatestCheckpointAsync(cancellationToken);
        if (checkpoint is null || checkpoint.TreeSize <= seq)
        {
            return (entry, null, []);
        }

        var snapshot = await SnapshotAsync(checkpoint.TreeSize, cancellationToken);
        var tree = snapshot.Tree();
        if ((ulong)checkpoint.TreeSize > tree.Size)
        {
            return (entry, checkpoint, []); // entries were deleted below the checkpoint: the proof cannot be built and fails
        }

        return (entry, checkpoint, tree.InclusionProof((ulong)seq, (ulong)checkpoint.TreeSize));
    }

    public async Task<(AuditCheckpoint? From, AuditCheckpoint? To, List<byte[]> Proof)> ConsistencyProofAsync(long from, long? to, CancellationToken cancellationToken)
    {
        var toSize = to ?? (await LatestCheckpointAsync(cancellationToken))?.TreeSize
            ?? throw ApiProblem.Invalid("to", "no checkpoint has been signed yet; give a size");
        if (from <= 0 || from > toSize)
        {
            throw ApiProblem.Invalid("from", $"must be at least 1 and at most {toSize}");
        }

        var snapshot = await SnapshotAsync(toSize, cancellationToken);
        var tree = snapshot.Tree();
        if ((ulong)toSize > tree.Size)
        {
            throw ApiProblem.Invalid("to", $"the log has {tree.Size} entries");
        }

        try
        {
            return (snapshot.Checkpoints.FirstOrDefault(c => c.TreeSize == from), snapshot.Checkpoints.FirstOrDefault(c => c.TreeSize == toSize),
                tree.ConsistencyProof((ulong)from, (ulong)toSize));
        }
        catch (PrunedRangeException)
        {
            throw ApiProblem.Invalid("from", $"entries below {tree.PrunedSize} were pruned; use a size from {tree.PrunedSize} on");
        }
    }

    public async Task<(List<AuditEntry> Entries, long? Next)> EntriesAsync(
        Guid? orgId, DateTimeOffset? from, DateTimeOffset? to, string? actor, string? action, long? after, int? limit, CancellationToken cancellationToken)
    {
        var take = Math.Clamp(limit ?? 100, 1, MaxPageSize);
        var query = db.AuditEntries.AsNoTracking();
        if (orgId is { } org)
        {
            query = query.Where(e => e.OrganizationId == org);
        }

        if (from is { } start)
        {
            query = query.Where(e => e.Time >= start);
        }

        if (to is { } end)
        {
            query = query.Where(e => e.Time < end);
        }

        if (!string.IsNullOrEmpty(actor))
        {
            query = query.Where(e => e.Actor == actor);
        }

        if (!string.IsNullOrEmpty(action))
        {
            query = query.Where(e => e.Action == action);
        }

        if (after is { } cursor)
        {
            query = query.Where(e => e.Seq > cursor);
        }

        var page = await query.OrderBy(e => e.Seq).Take(take + 1).ToListAsync(cancellationToken);
        return page.Count > take ? (page.Take(take).ToList(), page[take - 1].Seq) : (page, null);
    }

    /// <summary>
    /// Deletes entries older than the retention, but only below the newest signed checkpoint they all precede, and only
    /// after keeping the hashes of the pruned prefix, so every later root stays verifiable, and never at or past an entry a
    /// legal hold covers (its organization, its person as actor or target, or the whole audit class). Returns the new prefix size.
    /// </summary>
    public async Task<long> PruneAsync(CancellationToken cancellationToken)
    {
        var cutoff = time.GetUtcNow() - options.Value.Retention;
        var snapshot = await SnapshotAsync(null, cancellationToken);
        var tree = snapshot.Tree();
        var holds = await Privacy.HoldSet.ActiveAsync(db, cancellationToken);
        if (holds.CoversClass(Privacy.RetentionClass.AuditLog))
        {
            return (long)tree.PrunedSize;
        }

        // The log is pruned as a prefix, so a held entry keeps itself and everything after it.
        var heldUsers = holds.Users.Select(u => u.ToString()).ToList();
        var heldActors = heldUsers.Select(u => $"user:{u}").ToHashSet(StringComparer.Ordinal);
        var firstKept = snapshot.Entries.FirstOrDefault(e => e.Time >= cutoff
            || (e.OrganizationId is { } org && holds.Organizations.Contains(org))
            || heldActors.Contains(e.Actor)
            || heldUsers.Exists(u => e.Target.Contains(u, StringComparison.Ordinal)))?.Seq ?? (long)tree.Size;
        var target = snapshot.Checkpoints.Where(c => c.TreeSize <= firstKept && (ulong)c.TreeSize > tree.PrunedSize && (ulong)c.TreeSize <= tree.Size)
            .Select(c => (long?)c.TreeSize).Max();
        if (target is not { } prefix)
        {
            return (long)tree.PrunedSize;
        }

        await using var transaction = await db.Database.BeginTransactionAsync(cancellationToken);
        foreach (var (start, size, hash) in tree.CompactRange((ulong)prefix))
        {
            db.AuditPrunedSubtrees.Add(new AuditPrunedSubtree { PrefixSize = prefix, Start = (long)start, Size = (long)size, Hash = Convert.ToBase64String(hash) });
        }

        await db.SaveChangesAsync(cancellationToken);
        var deleted = await db.AuditEntries.Where(e => e.Seq < prefix).ExecuteDeleteAsync(cancellationToken);
        log.Record("audit.prune", $"entries:{tree.PrunedSize}-{prefix - 1} ({deleted}) before {cutoff.UtcDateTime:yyyy-MM-ddTHH:mm:ssZ}", actorOverride: "system");
        await db.SaveChangesAsync(cancellationToken);
        await transaction.CommitAsync(cancellationToken);
        return prefix;
    }
}
