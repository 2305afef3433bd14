using System.Numerics;

namespace Sluice.Audit;

/// <summary>
/// A Merkle tree over leaf hashes [0, size), able to compute roots and proofs. A pruned prefix [0, prunedSize) is
/// represented only by the hashes of the perfect subtrees that cover it (its "compact range"), which suffice for
/// every root and proof that does not reach inside the prefix.
/// </summary>
public sealed class MerkleTree
{
    private readonly IReadOnlyList<byte[]> _leaves;
    private readonly Dictionary<(ulong Start, ulong Size), byte[]> _pruned;

    /// <param name="prunedSubtrees">The compact range of the pruned prefix, if any.</param>
    /// <param name="leaves">Leaf hashes from <c>prunedSize</c> on.</param>
    public MerkleTree(IReadOnlyList<(ulong Start, ulong Size, byte[] Hash)> prunedSubtrees, IReadOnlyList<byte[]> leaves)
    {
        _pruned = prunedSubtrees.ToDictionary(s => (s.Start, s.Size), s => s.Hash);
        PrunedSize = prunedSubtrees.Count == 0 ? 0 : prunedSubtrees.Max(s => s.Start + s.Size);
        _leaves = leaves;
    }

    public ulong PrunedSize { get; }

    public ulong Size => PrunedSize + (ulong)_leaves.Count;

    public byte[] Root(ulong size)
    {
        EnsureWithin(size);
        return size == 0 ? Merkle.EmptyRoot : Hash(0, size);
    }

    public byte[] LeafHash(ulong index) => Hash(index, index + 1);

    /// <summary>RFC 9162 §2.1.3 inclusion proof (audit path) for leaf <paramref name="index"/> in the tree of <paramref name="size"/>.</summary>
    public List<byte[]> InclusionProof(ulong index, ulong size)
    {
        EnsureWithin(size);
        if (index >= size)
        {
            throw new ArgumentOutOfRangeException(nameof(index), $"index {index} is not below the tree size {size}");
        }

        var proof = new List<byte[]>();
        Path(index, 0, size, proof);
        return proof;
    }

    /// <summary>RFC 9162 §2.1.4 consistency proof between the trees of <paramref name="size1"/> and <paramref name="size2"/>.</summary>
    public List<byte[]> ConsistencyProof(ulong size1, ulong size2)
    {
        EnsureWithin(size2);
        if (size1 == 0 || size1 > size2)
        {
            throw new ArgumentOutOfRangeException(nameof(size1), $"a consistency proof needs 0 < from ({size1}) ≤ to ({size2})");
        }

        var proof = new List<byte[]>();
        if (size1 < size2)
        {
            SubProof(size1, 0, size2, true, proof);
        }

        return proof;
    }

    /// <summary>The perfect subtrees covering [0, size): the record kept when entries below <paramref name="size"/> are pruned.</summary>
    public List<(ulong Start, ulong Size, byte[] Hash)> CompactRange(ulong size)
    {
        EnsureWithin(size);
        var result = new List<(ulong, ulong, byte[])>();
        ulong start = 0;
        while (start < size)
        {
            var width = 1UL << (63 - BitOperations.LeadingZeroCount(size - start));
            result.Add((start, width, Hash(start, start + width)));
            start += width;
        }

        return result;
    }

    private void Path(ulong index, ulong start, ulong end, List<byte[]> proof)
    {
        if (end - start <= 1)
        {
            return;
        }

        var k = LargestPowerOfTwoBelow(end - start);
        if (index < start + k)
        {
            Path(index, start, start + k, proof);
            proof.Add(Hash(start + k, end));
        }
        else
        {
            Path(index, start + k, end, proof);
            proof.Add(Hash(start, start + k));
        }
    }

    private void SubProof(ulong m, ulong start, ulong end, bool completeSubtree, List<byte[]> proof)
    {
        var n = end - start;
        if (m == n)
        {
            if (!completeSubtree)
            {
                proof.Add(Hash(start, end));
            }

            return;
        }

        var k = LargestPowerOfTwoBelow(n);
        if (m <= k)
        {
            SubProof(m, start, start + k, completeSubtree, proof);
            proof.Add(Hash(start + k, end));
        }
        else
        {
            SubProof(m - k, start + k, end, false, proof);
            proof.Add(Hash(start, start + k));
        }
    }

    private byte[] Hash(ulong start, ulong end)
    {
        if (_pruned.TryGetValue((start, end - start), out var stored))
        {
            return stored;
        }

        if (end - start == 1)
        {
            if (start < PrunedSize)
            {
                throw new PrunedRangeException(start, end);
            }

            return _leaves[(int)(start - PrunedSize)];
        }

        var k = LargestPowerOfTwoBelow(end - start);
        return Merkle.HashChildren(Hash(start, start + k), Hash(start + k, end));
    }

    private void EnsureWithin(ulong size)
    {
        if (size > Size)
        {
            throw new ArgumentOutOfRangeException(nameof(size), $"the tree has {Size} leaves, not {size}");
        }
    }

    /// <summary>The largest power of two strictly smaller than <paramref name="n"/> (n ≥ 2).</summary>
    private static ulong LargestPowerOfTwoBelow(ulong n) => 1UL << (63 - BitOperations.LeadingZeroCount(n - 1));
}

/// <summary>A root or proof would need hashes inside the pruned prefix, which are no longer kept.</summary>
public sealed class PrunedRangeException(ulong start, ulong end)
    : InvalidOperationException($"entries {start}..{end - 1} were pruned; this proof would need them");
