using System.Text;

namespace Sluice.Tests.TestSupport;

/// <summary>The canary scanner finds a secret however it is embedded, so a clean scan means something.</summary>
public sealed class CanarySelfTests
{
    [Theory]
    [InlineData(0, 0)]
    [InlineData(1, 2)]
    [InlineData(2, 1)]
    [InlineData(5, 3)]
    [InlineData(7, 0)]
    public void A_secret_is_found_in_base64_at_any_alignment(int before, int after)
    {
        const string Secret = "canary-7d1f0c2e9a";
        var embedded = Convert.ToBase64String([.. Enumerable.Repeat((byte)'x', before), .. Encoding.UTF8.GetBytes(Secret), .. Enumerable.Repeat((byte)'y', after)]);

        Assert.Throws<Xunit.Sdk.FalseException>(() => Canary.AssertAbsent($"log line {embedded} end", Secret, "test"));
    }

    [Fact]
    public void A_secret_is_found_plain_escaped_and_in_hex()
    {
        const string Secret = "canary\"quote";
        Assert.Throws<Xunit.Sdk.FalseException>(() => Canary.AssertAbsent("{\"p\":\"canary\\u0022quote\"}", Secret, "test"));
        Assert.Throws<Xunit.Sdk.FalseException>(() => Canary.AssertAbsent(Convert.ToHexString(Encoding.UTF8.GetBytes(Secret)), Secret, "test"));
        Canary.AssertAbsent("nothing to see", Secret, "test");
    }
}
