using System.Text.RegularExpressions;
using Sluice.Tests.TestSupport;

namespace Sluice.Tests.Docs;

/// <summary>docs/commitments.md names, for every commitment id, what keeps it and which tests prove it.</summary>
public sealed partial class CommitmentsMapTests
{
    [Fact]
    public void Every_commitment_id_has_a_row_in_the_map()
    {
        var commitments = SharedFiles.Require("COMMITMENTS.md");
        var ids = CommitmentRow().Matches(File.ReadAllText(commitments)).Select(m => m.Groups["id"].Value).ToHashSet();
        var mapped = CommitmentRow().Matches(Map()).Select(m => m.Groups["id"].Value).ToHashSet();

        Assert.NotEmpty(ids);
        Assert.Empty(ids.Except(mapped).Order());
    }

    [Fact]
    public void Every_test_the_map_names_exists()
    {
        var testNames = typeof(CommitmentsMapTests).Assembly.GetTypes()
            .SelectMany(t => t.GetMethods().Where(m => m.GetCustomAttributes(typeof(FactAttribute), inherit: true).Length > 0)
                .Select(m => $"{t.Name}.{m.Name}"))
            .ToHashSet();
        var named = TestReference().Matches(Map()).Select(m => m.Groups["name"].Value).ToList();

        Assert.NotEmpty(named);
        Assert.DoesNotContain(named, n => !testNames.Contains(n));
    }

    [Fact]
    public void A_commitment_marked_kept_names_at_least_one_test()
    {
        var rows = Map().Split('\n').Where(l => CommitmentRow().IsMatch(l));
        var keptWithoutTests = rows
            .Where(r => r.Contains("| kept |", StringComparison.Ordinal) || r.Contains("| partly kept |", StringComparison.Ordinal))
            .Where(r => !TestReference().IsMatch(r));

        Assert.Empty(keptWithoutTests);
    }

    private static string Map() => File.ReadAllText(Path.Combine(SharedFiles.RepositoryRoot(), "docs", "commitments.md"));

    [GeneratedRegex(@"^\|\s*(?<id>C\d{2})\s*\|", RegexOptions.Multiline)]
    private static partial Regex CommitmentRow();

    [GeneratedRegex(@"`(?<name>[A-Z][A-Za-z]+Tests\.[A-Za-z_0-9]+)`")]
    private static partial Regex TestReference();
}
