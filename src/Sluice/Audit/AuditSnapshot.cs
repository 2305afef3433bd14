namespace Sluice.Audit;

/// <summary>Everything needed to verify the log: entries, checkpoints and the hashes kept for pruned entries.</summary>
public sealed record AuditSnapshot(
    IReadOnlyList<AuditEntry> Entries,
    IReadOnlyList<AuditCheckpoint> Checkpoints,
    IReadOnlyList<AuditPrunedSubtree> PrunedSubtrees)
{
    /// <summary>The latest pruning record (the compact range of the pruned prefix), or none.</summary>
    public IReadOnlyList<(ulong Start, ulong Size, byte[] Hash)> LatestPrunedRange()
    {
        if (PrunedSubtrees.Count == 0)
        {
            return [];
        }

        var prefix = PrunedSubtrees.Max(s => s.PrefixSize);
        return PrunedSubtrees.Where(s => s.PrefixSize == prefix).OrderBy(s => s.Start)
            .Select(s => ((ulong)s.Start, (ulong)s.Size, Convert.FromBase64String(s.Hash))).ToList();
    }

    public MerkleTree Tree() => new(LatestPrunedRange(), Entries.OrderBy(e => e.Seq).Select(e => e.LeafHash()).ToList());
}
