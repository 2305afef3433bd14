using System.CommandLine;
using Sluice.Files;

namespace Sluice.Cli;

/// <summary><c>sluice files rotate-kek</c>: the key-encryption keys that protect stored files and batch journals.</summary>
internal static class FilesCommand
{
    public static Command Create()
    {
        var command = new Command("files", "Manage the encryption of stored files and batch data.");
        var retire = new Option<bool>("--retire-old") { Description = "After rewrapping, remove every older key from the ring (copies wrapped under them become unreadable)." };
        var noNewKey = new Option<bool>("--no-new-key") { Description = "Rewrap under the current key without adding one (finish an earlier rotation)." };
        var rotate = new Command("rotate-kek", "Add a new key-encryption key and rewrap every data key under it.") { retire, noNewKey };
        rotate.RunsOnHost(async (parse, services, ct) =>
        {
            var result = await ActivatorUtilities.CreateInstance<KeyRotation>(services).RotateAsync(!parse.GetValue(noNewKey), parse.GetValue(retire), ct);
            await Console.Out.WriteLineAsync($"Current key {result.CurrentKey}: {result.Rewrapped} rewrapped, {result.AlreadyCurrent} already current, {result.Unreadable} unreadable.");
            if (parse.GetValue(retire))
            {
                await Console.Out.WriteLineAsync(result.Retired ? "Older keys retired." : "Older keys kept: some objects could not be rewrapped, or there is only one key.");
            }

            return result.Unreadable == 0 ? ExitCodes.Success : ExitCodes.Failure;
        });
        command.Subcommands.Add(rotate);
        return command;
    }
}
