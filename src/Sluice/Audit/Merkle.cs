using System.Numerics;
using System.Security.Cryptography;

namespace Sluice.Audit;

/// <summary>
/// RFC 6962 / RFC 9162 Merkle tree hashing: leaf = SHA-256(0x00 ‖ data), node = SHA-256(0x01 ‖ left ‖ right),
/// the tree over n leaves splitting at the largest power of two below n.
/// </summary>
public static class Merkle
{
    public const int HashSize = 32;

    /// <summary>The root of the empty tree: SHA-256 of nothing.</summary>
    public static byte[] EmptyRoot { get; } = SHA256.HashData([]);

    public static byte[] HashLeaf(ReadOnlySpan<byte> data)
    {
        var buffer = new byte[data.Length + 1];
        data.CopyTo(buffer.AsSpan(1));
        return SHA256.HashData(buffer);
    }

    public static byte[] HashChildren(ReadOnlySpan<byte> left, ReadOnlySpan<byte> right)
    {
        Span<byte> buffer = stackalloc byte[1 + HashSize + HashSize];
        buffer[0] = 1;
        left.CopyTo(buffer[1..]);
        right.CopyTo(buffer[(1 + HashSize)..]);
        return SHA256.HashData(buffer);
    }

    /// <summary>Checks that <paramref name="leafHash"/> is leaf <paramref name="index"/> of the tree of <paramref name="size"/> with <paramref name="root"/>.</summary>
    public static bool VerifyInclusion(ulong index, ulong size, ReadOnlySpan<byte> leafHash, IReadOnlyList<byte[]> proof, ReadOnlySpan<byte> root, out string? error)
    {
        error = null;
        if (index >= size)
        {
            error = $"index {index} is beyond the tree size {size}";
            return false;
        }

        if (leafHash.Length != HashSize || root.Length != HashSize || proof.Any(p => p.Length != HashSize))
        {
            error = $"hashes must be {HashSize} bytes";
            return false;
        }

        var (inner, border) = DecomposeInclusionProof(index, size);
        if (proof.Count != inner + border)
        {
            error = $"the proof has {proof.Count} hashes; a leaf at {index} in a tree of {size} needs {inner + border}";
            return false;
        }

        var hash = ChainInner(leafHash.ToArray(), proof.Take(inner), index);
        hash = ChainBorderRight(hash, proof.Skip(inner));
        return Matches(hash, root, ref error);
    }

    /// <summary>Checks that the tree of <paramref name="size2"/> with <paramref name="root2"/> extends the tree of <paramref name="size1"/> with <paramref name="root1"/>.</summary>
    public static bool VerifyConsistency(ulong size1, ulong size2, IReadOnlyList<byte[]> proof, ReadOnlySpan<byte> root1, ReadOnlySpan<byte> root2, out string? error)
    {
        error = null;
        if (proof.Any(p => p.Length != HashSize))
        {
            error = $"proof hashes must be {HashSize} bytes";
            return false;
        }

        if (size2 < size1)
        {
            error = $"size2 {size2} is smaller than size1 {size1}";
            return false;
        }

        if (size1 == 0)
        {
            error = "a consistency proof from the empty tree is meaningless";
            return false;
        }

        if (size1 == size2)
        {
            if (proof.Count > 0)
            {
                error = "equal sizes need an empty proof";
                return false;
            }

            return Matches(root1.ToArray(), root2, ref error);
        }

        if (proof.Count == 0)
        {
            error = "the proof is empty";
            return false;
        }

        if (root1.Length != HashSize || root2.Length != HashSize)
        {
            error = $"roots must be {HashSize} bytes";
            return false;
        }

        var (inner, border) = DecomposeInclusionProof(size1 - 1, size2);
        var shift = BitOperations.TrailingZeroCount(size1);
        inner -= shift;
        var (seed, start) = size1 == 1UL << shift ? (root1.ToArray(), 0) : (proof[0], 1);
        if (proof.Count != start + inner + border)
        {
            error = $"the proof has {proof.Count} hashes; sizes {size1} to {size2} need {start + inner + border}";
            return false;
        }

        var rest = proof.Skip(start).ToList();
        var mask = (size1 - 1) >> shift;
        var hash1 = ChainInnerRight(seed, rest.Take(inner), mask);
        hash1 = ChainBorderRight(hash1, rest.Skip(inner));
        if (!Matches(hash1, root1, ref error))
        {
            error = "the proof does not lead to the first root";
            return false;
        }

        var hash2 = ChainInner(seed, rest.Take(inner), mask);
        hash2 = ChainBorderRight(hash2, rest.Skip(inner));
        return Matches(hash2, root2, ref error);
    }

    /// <summary>The lengths of the lower (inner) and upper (border) parts of an inclusion proof.</summary>
    internal static (int Inner, int Border) DecomposeInclusionProof(ulong index, ulong size)
    {
        var inner = 64 - BitOperations.LeadingZeroCount(index ^ (size - 1));
        var border = BitOperations.PopCount(index >> inner);
        return (inner, border);
    }

    private static byte[] ChainInner(byte[] seed, IEnumerable<byte[]> proof, ulong index)
    {
        var i = 0;
        foreach (var hash in proof)
        {
            seed = ((index >> i) & 1) == 0 ? HashChildren(seed, hash) : HashChildren(hash, seed);
            i++;
        }

        return seed;
    }

    private static byte[] ChainInnerRight(byte[] seed, IEnumerable<byte[]> proof, ulong index)
    {
        var i = 0;
        foreach (var hash in proof)
        {
            if (((index >> i) & 1) == 1)
            {
                seed = HashChildren(hash, seed);
            }

            i++;
        }

        return seed;
    }

    private static byte[] ChainBorderRight(byte[] seed, IEnumerable<byte[]> proof)
    {
        foreach (var hash in proof)
        {
            seed = HashChildren(hash, seed);
        }

        return seed;
    }

    private static bool Matches(byte[] calculated, ReadOnlySpan<byte> expected, ref string? error)
    {
        if (calculated.AsSpan().SequenceEqual(expected))
        {
            return true;
        }

        error ??= "the calculated root does not match";
        return false;
    }
}
