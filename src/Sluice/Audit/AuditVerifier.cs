using System.Numerics;

namespace Sluice.Audit;

/// <summary>
/// Recomputes the tree from the stored entries and checks it against every signed checkpoint: numbering without gaps,
/// duplicates or reordering; each checkpoint's signature; each root; the consistency of consecutive checkpoints; and
/// that the log was not truncated below a checkpoint. Reports problems in log order, the first one first. Entries past the
/// newest good checkpoint are reported as unverified (nothing vouches for them), and a witness (a checkpoint exported
/// earlier and kept outside the database) catches a rollback of entries together with the checkpoints that covered them.
/// </summary>
public static class AuditVerifier
{
    /// <summary>What was checked. <c>Size</c> is the log's size (pruned entries included); <c>Covered</c> how many entries, from the start, the newest good checkpoint vouches for.</summary>
    public sealed record Result(long Entries, int Checkpoints, long PrunedBelow, IReadOnlyList<string> Problems, long Size = 0, long Covered = 0)
    {
        public bool Ok => Problems.Count == 0;

        /// <summary>Entries no signed checkpoint covers: nothing proves they were not edited, deleted or forged.</summary>
        public long Unverified => Math.Max(0, Size - Covered);
    }

    /// <summary>A checkpoint kept outside the database, as <c>sluice audit checkpoint --out</c> writes it.</summary>
    public sealed record Witness(string Name, string Note);

    public static Result Verify(AuditSnapshot snapshot, string origin, byte[] publicKeySpki, IReadOnlyList<Witness>? witnesses = null)
    {
        var problems = new List<string>();
        var pruned = snapshot.LatestPrunedRange();
        var prunedSize = pruned.Count == 0 ? 0UL : pruned[^1].Start + pruned[^1].Size;
        CheckPrunedRange(pruned, problems);

        var entries = snapshot.Entries.OrderBy(e => e.Seq).ToList();
        var expected = (long)prunedSize;
        foreach (var entry in entries)
        {
            if (entry.Seq != expected)
            {
                problems.Add(entry.Seq > expected
                    ? $"entry {expected}: missing (the next stored entry is {entry.Seq})"
                    : $"entry {entry.Seq}: duplicated or out of order (expected {expected})");
                break;
            }

            expected++;
        }

        var structureOk = problems.Count == 0;
        var tree = snapshot.Tree();
        var checkpoints = snapshot.Checkpoints.OrderBy(c => c.TreeSize).ToList();
        AuditCheckpoint? previousGood = null;
        byte[]? previousRoot = null;
        foreach (var checkpoint in checkpoints)
        {
            if (!CheckpointSigner.TryVerify(checkpoint.Note, origin, publicKeySpki, out var size, out var signedRoot, out var error))
            {
                problems.Add($"checkpoint {checkpoint.TreeSize}: {error}");
                continue;
            }

            if (size != checkpoint.TreeSize || Convert.ToBase64String(signedRoot) != checkpoint.RootHash)
            {
                problems.Add($"checkpoint {checkpoint.TreeSize}: its stored size or root differs from what its signature covers");
                continue;
            }

            if ((ulong)size < prunedSize)
            {
                continue; // signed before pruning; its entries are gone by retention
            }

            if ((ulong)size > tree.Size)
            {
                problems.Add($"checkpoint {size}: signed {size} entries but only {tree.Size} remain; entries {tree.Size}..{size - 1} were deleted");
                continue;
            }

            if (!structureOk)
            {
                continue;
            }

            byte[] root;
            try
            {
                root = tree.Root((ulong)size);
            }
            catch (PrunedRangeException)
            {
                problems.Add($"checkpoint {size}: the kept hashes of pruned entries do not form the pruned prefix's compact range");
                continue;
            }

            if (!root.AsSpan().SequenceEqual(signedRoot))
            {
                var from = previousGood?.TreeSize ?? (long)prunedSize;
                problems.Add($"checkpoint {size}: the stored entries do not match its signed root; the first bad entry is among {from}..{size - 1}");
                continue;
            }

            if (previousGood is not null && previousGood.TreeSize > 0
                && !Merkle.VerifyConsistency((ulong)previousGood.TreeSize, (ulong)size, tree.ConsistencyProof((ulong)previousGood.TreeSize, (ulong)size), previousRoot, signedRoot, out var consistencyError))
            {
                problems.Add($"checkpoint {size}: not consistent with checkpoint {previousGood.TreeSize} ({consistencyError})");
                continue;
            }

            previousGood = checkpoint;
            previousRoot = signedRoot;
        }

        if (prunedSize > 0 && !checkpoints.Any(c => (ulong)c.TreeSize == prunedSize))
        {
            problems.Add($"pruned prefix 0..{prunedSize - 1}: no signed checkpoint at {prunedSize} vouches for it");
        }

        foreach (var witness in witnesses ?? [])
        {
            CheckWitness(witness, tree, structureOk, prunedSize, origin, publicKeySpki, problems);
        }

        var logSize = structureOk ? (long)tree.Size : (long)prunedSize + entries.Count;
        var covered = previousGood?.TreeSize ?? (long)prunedSize;
        return new Result(entries.Count, checkpoints.Count, (long)prunedSize, problems, logSize, covered);
    }

    /// <summary>What checking one entry's inclusion proof against a signed checkpoint found.</summary>
    public sealed record EntryResult(bool SignatureOk, bool Included, long TreeSize, string? Root, string? Problem)
    {
        public bool Ok => SignatureOk && Included;
    }

    /// <summary>
    /// Checks one entry the way an outside auditor would: the checkpoint note's signature by the log's public key, then the
    /// entry's own leaf hash (recomputed from its fields) chained through <paramref name="proof"/> to the signed root.
    /// An entry edited after it was signed, a wrong proof or a forged checkpoint each fail, with the reason.
    /// </summary>
    public static EntryResult VerifyEntry(AuditEntry entry, IReadOnlyList<byte[]> proof, string checkpointNote, string origin, byte[] publicKeySpki)
    {
        if (!CheckpointSigner.TryVerify(checkpointNote, origin, publicKeySpki, out var size, out var root, out var signatureError))
        {
            return new EntryResult(false, false, size, null, $"the checkpoint's signature does not verify: {signatureError}");
        }

        var rootText = Convert.ToBase64String(root);
        if (entry.Seq < 0 || entry.Seq >= size)
        {
            return new EntryResult(true, false, size, rootText, $"entry {entry.Seq} is not covered by the checkpoint of {size} entries");
        }

        return Merkle.VerifyInclusion((ulong)entry.Seq, (ulong)size, entry.LeafHash(), proof, root, out var inclusionError)
            ? new EntryResult(true, true, size, rootText, null)
            : new EntryResult(true, false, size, rootText, $"the entry as stored does not hash to the signed root ({inclusionError}): it was changed after it was signed");
    }

    /// <summary>
    /// The witness's tree must still be a prefix of the log: the log holds at least as many entries, and the root of its
    /// first <c>size</c> entries is the witnessed root. Deleting entries together with their checkpoints (a rollback),
    /// or rewriting them and re-signing, fails this.
    /// </summary>
    private static void CheckWitness(Witness witness, MerkleTree tree, bool structureOk, ulong prunedSize, string origin, byte[] publicKeySpki, List<string> problems)
    {
        if (!CheckpointSigner.TryVerify(witness.Note, origin, publicKeySpki, out var size, out var root, out var error))
        {
            problems.Add($"witness {witness.Name}: {error}");
            return;
        }

        if ((ulong)size > tree.Size)
        {
            problems.Add($"witness {witness.Name}: it vouches for {size} entries but the log has only {tree.Size}; entries {tree.Size}..{size - 1} and the checkpoints covering them were removed (rolled back)");
            return;
        }

        if (!structureOk || size == 0)
        {
            return;
        }

        byte[] actual;
        try
        {
            actual = tree.Root((ulong)size);
        }
        catch (PrunedRangeException)
        {
            problems.Add($"witness {witness.Name}: it vouches for {size} entries but entries below {prunedSize} were pruned since; keep a newer witness");
            return;
        }

        if (!actual.AsSpan().SequenceEqual(root))
        {
            problems.Add($"witness {witness.Name}: the log's first {size} entries do not match the witnessed root; they were rewritten since it was taken");
        }
    }

    private static void CheckPrunedRange(IReadOnlyList<(ulong Start, ulong Size, byte[] Hash)> pruned, List<string> problems)
    {
        ulong next = 0;
        foreach (var (start, size, hash) in pruned)
        {
            if (start != next || !BitOperations.IsPow2(size) || hash.Length != Merkle.HashSize)
            {
                problems.Add($"pruned prefix: the kept hashes do not tile 0..{start + size - 1}");
                return;
            }

            next = start + size;
        }
    }
}
