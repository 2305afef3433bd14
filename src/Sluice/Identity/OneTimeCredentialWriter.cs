namespace Sluice.Identity;

/// <summary>Shows a newly created secret to the person starting Sluice, once. It never goes through logging.</summary>
public interface IOneTimeCredentialWriter
{
    void Write(string title, string account, string secret);
}

internal sealed class ConsoleOneTimeCredentialWriter : IOneTimeCredentialWriter
{
    private static readonly Lock Gate = new();

    public void Write(string title, string account, string secret)
    {
        lock (Gate)
        {
            var output = Console.Out;
            output.WriteLine();
            output.WriteLine("==================================================================");
            output.WriteLine($"  {title}");
            output.WriteLine($"    account:  {account}");
            output.WriteLine($"    password: {secret}");
            output.WriteLine("  Shown once: it is stored only as a bcrypt hash and never printed again.");
            output.WriteLine("==================================================================");
            output.WriteLine();
            output.Flush();
        }
    }
}
