using System.Text;
using System.Text.Json;
using Sluice.Audit;
using Sluice.Tests.TestSupport;

namespace Sluice.Tests.Audit;

public sealed class MerkleTests
{
    public static TheoryData<string> InclusionVectors() => Vectors("inclusion");

    public static TheoryData<string> ConsistencyVectors() => Vectors("consistency");

    [Theory]
    [MemberData(nameof(InclusionVectors))]
    public void Inclusion_vectors_verify_or_are_rejected_as_expected(string file)
    {
        using var json = JsonDocument.Parse(File.ReadAllText(SharedFiles.Require(Path.Combine("testdata", "merkle", "inclusion", file))));
        var root = json.RootElement;

        var verified = Merkle.VerifyInclusion(
            root.GetProperty("leafIdx").GetUInt64(), root.GetProperty("treeSize").GetUInt64(),
            Convert.FromBase64String(root.GetProperty("leafHash").GetString()!), Proof(root), Convert.FromBase64String(root.GetProperty("root").GetString()!), out var error);

        Assert.Equal(!root.GetProperty("wantErr").GetBoolean(), verified);
        Assert.Equal(verified, error is null);
    }

    [Theory]
    [MemberData(nameof(ConsistencyVectors))]
    public void Consistency_vectors_verify_or_are_rejected_as_expected(string file)
    {
        using var json = JsonDocument.Parse(File.ReadAllText(SharedFiles.Require(Path.Combine("testdata", "merkle", "consistency", file))));
        var root = json.RootElement;

        var verified = Merkle.VerifyConsistency(
            root.GetProperty("size1").GetUInt64(), root.GetProperty("size2").GetUInt64(), Proof(root),
            Convert.FromBase64String(root.GetProperty("root1").GetString()!), Convert.FromBase64String(root.GetProperty("root2").GetString()!), out _);

        Assert.Equal(!root.GetProperty("wantErr").GetBoolean(), verified);
    }

    [Fact]
    public void The_vectors_are_all_there()
    {
        SharedFiles.Require(Path.Combine("testdata", "merkle"));
        Assert.True(InclusionVectors().Count > 50);
        Assert.True(ConsistencyVectors().Count > 50);
    }

    [Fact]
    public void Roots_match_the_RFC_6962_reference_values()
    {
        // Leaf data and roots from RFC 6962's reference test vectors (as used by Certificate Transparency).
        byte[][] leaves = [[], [0x00], [0x10], [0x20, 0x21], [0x30, 0x31], [0x40, 0x41, 0x42, 0x43], [0x50, 0x51, 0x52, 0x53, 0x54, 0x55, 0x56, 0x57], [0x60, 0x61, 0x62, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69, 0x6a, 0x6b, 0x6c, 0x6d, 0x6e, 0x6f]];
        string[] roots =
        [
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
            "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
            "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
            "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
            "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
        ];
        var tree = new MerkleTree([], leaves.Select(l => Merkle.HashLeaf(l)).ToList());

        for (var size = 1; size <= leaves.Length; size++)
        {
            Assert.Equal(roots[size - 1], Convert.ToHexStringLower(tree.Root((ulong)size)));
        }

        Assert.Equal("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", Convert.ToHexStringLower(tree.Root(0)));
    }

    [Fact]
    public void Every_inclusion_and_consistency_proof_the_tree_produces_verifies()
    {
        var tree = new MerkleTree([], Enumerable.Range(0, 40).Select(i => Merkle.HashLeaf(Encoding.UTF8.GetBytes($"entry {i}"))).ToList());

        for (ulong size = 1; size <= 40; size++)
        {
            var root = tree.Root(size);
            for (ulong index = 0; index < size; index++)
            {
                Assert.True(Merkle.VerifyInclusion(index, size, tree.LeafHash(index), tree.InclusionProof(index, size), root, out var error), error);
            }

            for (ulong earlier = 1; earlier <= size; earlier++)
            {
                Assert.True(Merkle.VerifyConsistency(earlier, size, tree.ConsistencyProof(earlier, size), tree.Root(earlier), root, out var error), error);
            }
        }
    }

    [Fact]
    public void A_pruned_prefix_kept_as_its_compact_range_gives_the_same_roots_and_proofs_above_it()
    {
        var leaves = Enumerable.Range(0, 45).Select(i => Merkle.HashLeaf(Encoding.UTF8.GetBytes($"entry {i}"))).ToList();
        var full = new MerkleTree([], leaves);
        const ulong Pruned = 13;
        var pruned = new MerkleTree(full.CompactRange(Pruned), leaves.Skip((int)Pruned).ToList());

        Assert.Equal([(0UL, 8UL), (8UL, 4UL), (12UL, 1UL)], full.CompactRange(Pruned).Select(s => (s.Start, s.Size)));
        Assert.Equal(45UL, pruned.Size);
        for (var size = Pruned; size <= 45; size++)
        {
            Assert.Equal(full.Root(size), pruned.Root(size));
            for (var index = Pruned; index < size; index++)
            {
                Assert.Equal(full.InclusionProof(index, size), pruned.InclusionProof(index, size));
            }

            Assert.Equal(full.ConsistencyProof(Pruned, size), pruned.ConsistencyProof(Pruned, size));
        }

        Assert.Throws<PrunedRangeException>(() => pruned.InclusionProof(3, 20));
    }

    private static List<byte[]> Proof(JsonElement root) =>
        root.GetProperty("proof").ValueKind == JsonValueKind.Null
            ? []
            : root.GetProperty("proof").EnumerateArray().Select(p => Convert.FromBase64String(p.GetString()!)).ToList();

    private static TheoryData<string> Vectors(string kind)
    {
        var data = new TheoryData<string>();
        var directory = Path.GetFullPath(Path.Combine(SharedFiles.RepositoryRoot(), "..", "shared", "testdata", "merkle", kind));
        if (!Directory.Exists(directory))
        {
            data.Add("(missing)");
            return data;
        }

        foreach (var file in Directory.EnumerateFiles(directory, "*.json", SearchOption.AllDirectories).Order(StringComparer.Ordinal))
        {
            data.Add(Path.GetRelativePath(directory, file));
        }

        return data;
    }
}
