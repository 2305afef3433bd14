using System.CommandLine;
using System.Security.Cryptography;
using Sluice.Audit;

namespace Sluice.Cli;

/// <summary><c>sluice audit verify|export|checkpoint|prune</c>.</summary>
internal static class AuditCommand
{
    public static Command Create()
    {
        var command = new Command("audit", "Verify, export, checkpoint and prune the tamper-evident audit log.");
        command.Subcommands.Add(VerifyCommand());
        command.Subcommands.Add(ExportCommand());
        command.Subcommands.Add(CheckpointCommand());
        command.Subcommands.Add(PruneCommand());
        return command;
    }

    private static Command VerifyCommand()
    {
        var shared = new SharedOptions();
        var export = new Option<string?>("--export") { Description = "Verify an export directory offline instead of the database." };
        var publicKey = new Option<string?>("--public-key") { Description = "The audit public key (PEM) to trust; with --export, defaults to the export's own copy." };
        var origin = new Option<string?>("--origin") { Description = "The log's origin line (setting Audit:Origin); with --export, read from its newest checkpoint by default." };
        var witness = new Option<string[]>("--witness")
        {
            Description = "A checkpoint written earlier by `sluice audit checkpoint --out` and kept outside the database; the log must still extend it (catches a rollback). Repeatable.",
        };
        var requireSigned = new Option<bool>("--require-signed") { Description = "Exit 1 when any entry is covered by no signed checkpoint (for CI and scheduled checks)." };
        var command = new Command("verify", "Recompute the Merkle tree and check every signed checkpoint; exit 1 naming the first problem.") { export, publicKey, origin, witness, requireSigned };
        shared.AddTo(command);
        command.SetAction(async (parse, cancellationToken) =>
        {
            List<AuditVerifier.Witness> witnesses;
            try
            {
                witnesses = (parse.GetValue(witness) ?? []).Select(f => new AuditVerifier.Witness(Path.GetFileName(f), File.ReadAllText(f))).ToList();
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or ArgumentException or NotSupportedException)
            {
                await Console.Error.WriteLineAsync($"error: cannot read the witness: {ex.Message}");
                return ExitCodes.Failure;
            }

            if (parse.GetValue(export) is { } directory)
            {
                return await VerifyExportAsync(directory, parse.GetValue(publicKey), parse.GetValue(origin), witnesses, parse.GetValue(requireSigned), cancellationToken);
            }

            return await CliHost.RunAsync(shared.Read(parse), null, async (services, ct) =>
            {
                var signer = services.GetRequiredService<CheckpointSigner>();
                var key = parse.GetValue(publicKey) is { } file ? ReadPublicKey(file) : signer.PublicKeySpki;
                var snapshot = await services.GetRequiredService<AuditService>().SnapshotAsync(null, ct);
                return Report(AuditVerifier.Verify(snapshot, parse.GetValue(origin) ?? signer.Origin, key, witnesses), [], parse.GetValue(requireSigned));
            }, cancellationToken);
        });
        return command;
    }

    private static Command ExportCommand()
    {
        var output = new Option<string>("--out") { Description = "Directory to write the export to (created if missing).", Required = true };
        var command = new Command("export", "Write entries, checkpoints, pruned hashes and the public key as files for off-box archiving.") { output };
        command.RunsOnHost(async (parse, services, ct) =>
        {
            var directory = Path.GetFullPath(parse.GetValue(output)!);
            var snapshot = await services.GetRequiredService<AuditService>().SnapshotAsync(null, ct);
            await AuditExport.WriteAsync(directory, snapshot, services.GetRequiredService<CheckpointSigner>().PublicKeyPem, ct);
            await Console.Out.WriteLineAsync($"Exported {snapshot.Entries.Count} entries and {snapshot.Checkpoints.Count} checkpoints to {directory}.");
            return ExitCodes.Success;
        });
        return command;
    }

    private static Command CheckpointCommand()
    {
        var output = new Option<string?>("--out")
        {
            Description = "Also write the checkpoint to this file: a witness to keep outside the database for `audit verify --witness`.",
        };
        var command = new Command("checkpoint", "Sign a checkpoint for the log as it stands now (or print the newest, if it covers the log).") { output };
        command.RunsOnHost(async (parse, services, ct) =>
        {
            var checkpoint = await services.GetRequiredService<AuditService>().CheckpointAsync(ct);
            if (checkpoint is null)
            {
                await Console.Out.WriteAsync("The log is empty; nothing to sign.\n");
                return parse.GetValue(output) is null ? ExitCodes.Success : ExitCodes.Failure;
            }

            if (parse.GetValue(output) is { } file)
            {
                await File.WriteAllTextAsync(Path.GetFullPath(file), checkpoint.Note, ct);
            }

            await Console.Out.WriteAsync(checkpoint.Note);
            return ExitCodes.Success;
        });
        return command;
    }

    private static Command PruneCommand()
    {
        var command = new Command("prune", "Delete entries older than Audit:Retention, below a signed checkpoint, keeping the hashes that keep the rest verifiable.");
        command.RunsOnHost(async (parse, services, ct) =>
        {
            var prefix = await services.GetRequiredService<AuditService>().PruneAsync(ct);
            await Console.Out.WriteLineAsync(prefix == 0 ? "Nothing to prune." : $"Entries below {prefix} are pruned.");
            return ExitCodes.Success;
        });
        return command;
    }

    private static async Task<int> VerifyExportAsync(
        string directory, string? publicKeyFile, string? origin, List<AuditVerifier.Witness> witnesses, bool requireSigned, CancellationToken cancellationToken)
    {
        try
        {
            var key = ReadPublicKey(publicKeyFile ?? Path.Combine(directory, AuditExport.PublicKeyFile));
            var (snapshot, problems) = await AuditExport.ReadAsync(directory, cancellationToken);
            var newest = snapshot.Checkpoints.OrderBy(c => c.TreeSize).LastOrDefault();
            var logOrigin = origin ?? newest?.Note.Split('\n')[0] ?? "sluice.local/audit";
            if (publicKeyFile is null)
            {
                await Console.Error.WriteLineAsync("note: trusting the export's own public key; pass --public-key to check it against one kept elsewhere.");
            }

            return Report(AuditVerifier.Verify(snapshot, logOrigin, key, witnesses), problems, requireSigned);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or CryptographicException or ArgumentException or System.Text.Json.JsonException)
        {
            await Console.Error.WriteLineAsync($"error: cannot read the export: {ex.Message}");
            return ExitCodes.Failure;
        }
    }

    private static byte[] ReadPublicKey(string file)
    {
        using var key = ECDsa.Create();
        key.ImportFromPem(File.ReadAllText(file));
        return key.ExportSubjectPublicKeyInfo();
    }

    private static int Report(AuditVerifier.Result result, List<string> readProblems, bool requireSigned)
    {
        var problems = readProblems.Concat(result.Problems).ToList();
        if (problems.Count > 0)
        {
            foreach (var problem in problems)
            {
                Console.Error.WriteLine($"tampered: {problem}");
            }

            return ExitCodes.Failure;
        }

        var pruned = result.PrunedBelow > 0 ? $" (0..{result.PrunedBelow - 1} pruned)" : "";
        if (result.Unverified == 0)
        {
            Console.Out.WriteLine($"ok: {result.Entries} entries{pruned} and {result.Checkpoints} checkpoints verify.");
            return ExitCodes.Success;
        }

        // Nothing vouches for the tail: it could have been edited, deleted or forged without a trace.
        var verified = result.Entries - result.Unverified;
        Console.Out.WriteLine($"unverified: entries {result.Covered}..{result.Size - 1} ({result.Unverified} of {result.Entries}) are covered by no signed checkpoint; "
            + $"{verified} entries{pruned} and {result.Checkpoints} checkpoints verify.");
        if (requireSigned)
        {
            Console.Error.WriteLine($"error: {result.Unverified} entries are unsigned (--require-signed); sign them with `sluice audit checkpoint` or wait for the server to.");
            return ExitCodes.Failure;
        }

        return ExitCodes.Success;
    }
}
