using Sluice.Identity;

namespace Sluice.Tests.Identity;

public sealed class ApiKeyFormatTests
{
    [Fact]
    public void Generated_keys_have_the_scannable_prefix_base62_secret_and_checksum()
    {
        var keys = Enumerable.Range(0, 200).Select(_ => ApiKeyFormat.Generate()).ToList();

        Assert.All(keys, key =>
        {
            Assert.Matches("^sk-sluice-[0-9A-Za-z]{38}$", key);
            Assert.True(ApiKeyFormat.IsWellFormed(key));
        });
        Assert.Equal(keys.Count, keys.Distinct().Count());
        Assert.Equal(keys.Count, keys.Select(ApiKeyFormat.LookupPrefix).Distinct().Count());
    }

    [Fact]
    public void Any_single_character_change_is_caught_by_the_checksum()
    {
        var key = ApiKeyFormat.Generate();
        for (var i = ApiKeyFormat.Prefix.Length; i < key.Length; i++)
        {
            var chars = key.ToCharArray();
            chars[i] = chars[i] == 'a' ? 'b' : 'a';
            Assert.False(ApiKeyFormat.IsWellFormed(new string(chars)), $"a change at position {i} went unnoticed");
        }
    }

    [Theory]
    [InlineData("")]
    [InlineData("sk-sluice-")]
    [InlineData("sk-openai-0123456789abcdefghijABCDEFGHIJ0123456789")]
    [InlineData("sk-sluice-0123456789abcdefghijABCDEFGHIJ01 3456789")]
    [InlineData("sk-sluice-0123456789abcdefghijABCDEFGHIJ012345678")]
    public void Malformed_keys_are_rejected(string key) => Assert.False(ApiKeyFormat.IsWellFormed(key));
}
