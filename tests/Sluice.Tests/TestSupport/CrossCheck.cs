namespace Sluice.Tests.TestSupport;

/// <summary>
/// An optional cross-check (an independent implementation, a real server, a shared file) that cannot run: skipped on a
/// developer's machine, a failure under CI (<c>CI=true</c>), where every check must run.
/// </summary>
public static class CrossCheck
{
    public static bool UnderCi => string.Equals(Environment.GetEnvironmentVariable("CI"), "true", StringComparison.OrdinalIgnoreCase);

    [System.Diagnostics.CodeAnalysis.DoesNotReturn]
    public static void Unavailable(string why)
    {
        if (UnderCi)
        {
            Assert.Fail($"{why} Under CI every cross-check must run.");
        }

        Assert.Skip(why);
    }
}
