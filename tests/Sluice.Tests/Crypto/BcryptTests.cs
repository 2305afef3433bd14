using System.Diagnostics;
using Sluice.Crypto;

using Sluice.Tests.TestSupport;

namespace Sluice.Tests.Crypto;

public sealed class BcryptTests
{
    [Fact]
    public void A_hash_is_2b_with_the_requested_cost_a_fresh_salt_and_verifies_only_the_right_secret()
    {
        var first = Bcrypt.Hash("correct horse battery staple", 10);
        var second = Bcrypt.Hash("correct horse battery staple", 10);

        Assert.Matches(@"^\$2b\$10\$[./A-Za-z0-9]{53}$", first);
        Assert.NotEqual(first, second);
        Assert.True(Bcrypt.Verify("correct horse battery staple", first));
        Assert.True(Bcrypt.Verify("correct horse battery staple", second));
        Assert.False(Bcrypt.Verify("correct horse battery stapler", first));
        Assert.False(Bcrypt.Verify("", first));
    }

    [Fact]
    public void Secrets_are_limited_to_72_bytes_of_utf8_and_never_truncated()
    {
        var exactly72 = new string('a', 72);
        var hash = Bcrypt.Hash(exactly72, 10);
        Assert.True(Bcrypt.Verify(exactly72, hash));

        var error = Assert.Throws<SecretTooLongException>(() => Bcrypt.Hash(exactly72 + "b", 10));
        Assert.Contains("72 bytes", error.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("aaaa", error.Message, StringComparison.Ordinal);

        // A 73-byte secret sharing the first 72 bytes must not verify against the 72-byte hash.
        Assert.False(Bcrypt.Verify(exactly72 + "b", hash));

        var thirtySixTwoByteChars = new string('é', 36);
        Assert.True(Bcrypt.Verify(thirtySixTwoByteChars, Bcrypt.Hash(thirtySixTwoByteChars, 10)));
        Assert.Throws<SecretTooLongException>(() => Bcrypt.Hash(thirtySixTwoByteChars + "é", 10));
    }

    [Theory]
    [InlineData("")]
    [InlineData("not a hash")]
    [InlineData("$2b$10$tooshort")]
    [InlineData("$1$md5salt$hash")]
    public void A_malformed_hash_never_verifies(string hash) => Assert.False(Bcrypt.Verify("secret", hash));

    [Fact]
    public void A_secret_with_a_NUL_character_is_refused()
    {
        Assert.Throws<ArgumentException>(() => Bcrypt.Hash("abc\0def", 10));
        Assert.False(Bcrypt.Verify("abc\0def", Bcrypt.Hash("abc", 10)));
    }

    [Fact]
    public void Hashes_agree_with_an_independent_implementation_when_one_is_installed()
    {
        var htpasswd = new[] { "/usr/bin/htpasswd", "/usr/sbin/htpasswd" }.FirstOrDefault(File.Exists);
        if (htpasswd is null)
        {
            CrossCheck.Unavailable("htpasswd (apache2-utils) is not installed; ./test.sh installs it (as root or with sudo).");
        }

        const string Secret = "Tr0ub4dor&3 über";
        var theirs = Run(htpasswd, "-nbBC", "10", "user", Secret).Trim().Split(':', 2)[1];
        Assert.True(Bcrypt.Verify(Secret, theirs));
        Assert.False(Bcrypt.Verify(Secret + "!", theirs));

        var file = Path.GetTempFileName();
        try
        {
            File.WriteAllText(file, $"user:{Bcrypt.Hash(Secret, 10)}\n");
            Assert.Equal(0, ExitCode(htpasswd, "-vb", file, "user", Secret));
            Assert.NotEqual(0, ExitCode(htpasswd, "-vb", file, "user", Secret + "!"));
        }
        finally
        {
            File.Delete(file);
        }
    }

    private static string Run(string program, params string[] arguments)
    {
        using var process = Start(program, arguments);
        var output = process.StandardOutput.ReadToEnd();
        process.WaitForExit();
        Assert.Equal(0, process.ExitCode);
        return output;
    }

    private static int ExitCode(string program, params string[] arguments)
    {
        using var process = Start(program, arguments);
        process.StandardOutput.ReadToEnd();
        process.WaitForExit();
        return process.ExitCode;
    }

    private static Process Start(string program, string[] arguments)
    {
        var info = new ProcessStartInfo(program) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var argument in arguments)
        {
            info.ArgumentList.Add(argument);
        }

        return Process.Start(info)!;
    }
}
