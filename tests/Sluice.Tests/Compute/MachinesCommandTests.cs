using Microsoft.EntityFrameworkCore;
using Sluice.Cli;
using Sluice.Storage;
using Sluice.Tests.TestSupport;

namespace Sluice.Tests.Compute;

/// <summary>`sluice machines …` as an operator runs it on the server: tokens, a joined machine's administration, audited.</summary>
public sealed class MachinesCommandTests
{
    [Fact]
    public async Task An_operator_creates_a_join_token_and_administers_the_machine_from_the_command_line()
    {
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Sqlite);
        string[] Db(params string[] args) => [.. args, "--database", database.ConnectionString, "--data-dir", database.Directory];

        var (created, createdOut, createdErr) = await SluiceProcess.RunAsync(Db("machines", "join-token", "create", "--ttl-seconds", "3600", "--description", "rack 7"));
        Assert.True(created == ExitCodes.Success, createdErr);
        var token = createdOut.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Last();
        Assert.StartsWith("sjt_", token);
        var (_, tokensOut, _) = await SluiceProcess.RunAsync(Db("machines", "join-token", "list"));
        Assert.Contains("active", tokensOut, StringComparison.Ordinal);
        Assert.DoesNotContain(token, tokensOut, StringComparison.Ordinal);

        // A machine joins with it through a server on the same database.
        await using (var sluice = new SluiceFactory(database))
        {
            using var agent = sluice.Anonymous();
            await ComputeKit.JoinAsync(agent, token);
        }

        Guid machineId;
        await using (var db = database.CreateContext())
        {
            machineId = (await db.Machines.SingleAsync()).Id;
        }

        var (_, listOut, _) = await SluiceProcess.RunAsync(Db("machines", "list"));
        Assert.Contains($"{machineId}", listOut, StringComparison.Ordinal);
        Assert.Contains("gpu-node-7", listOut, StringComparison.Ordinal);
        foreach (var step in new[] { "cordon", "uncordon", "drain" })
        {
            var (code, _, err) = await SluiceProcess.RunAsync(Db("machines", step, machineId.ToString()));
            Assert.True(code == ExitCodes.Success, err);
        }

        var (labelled, labelOut, labelErr) = await SluiceProcess.RunAsync(Db("machines", "label", machineId.ToString(), "--add", "gpu=h100", "--remove", "zone"));
        Assert.True(labelled == ExitCodes.Success, labelErr);
        Assert.Contains("gpu=h100", labelOut, StringComparison.Ordinal);
        Assert.DoesNotContain("zone", labelOut, StringComparison.Ordinal);
        var (_, showOut, _) = await SluiceProcess.RunAsync(Db("machines", "show", machineId.ToString()));
        Assert.Contains("draining", showOut, StringComparison.Ordinal);
        Assert.Contains("NVIDIA H100", showOut, StringComparison.Ordinal);
        Assert.Contains("state_changed", showOut, StringComparison.Ordinal);
        Assert.Equal(ExitCodes.Success, (await SluiceProcess.RunAsync(Db("machines", "revoke", machineId.ToString()))).ExitCode);
        Assert.Equal(ExitCodes.Success, (await SluiceProcess.RunAsync(Db("machines", "decommission", machineId.ToString()))).ExitCode);

        // Bad input: a clear error line and exit code 1, nothing changed.
        var (badCode, _, badErr) = await SluiceProcess.RunAsync(Db("machines", "cordon", machineId.ToString()));
        Assert.Equal(ExitCodes.Failure, badCode);
        Assert.StartsWith("error: state:", badErr.Trim(), StringComparison.Ordinal);
        var (unknownCode, _, unknownErr) = await SluiceProcess.RunAsync(Db("machines", "show", Guid.NewGuid().ToString()));
        Assert.Equal(ExitCodes.Failure, unknownCode);
        Assert.Contains("error:", unknownErr, StringComparison.Ordinal);
        var (labelCode, _, labelBad) = await SluiceProcess.RunAsync(Db("machines", "label", machineId.ToString(), "--add", "novalue"));
        Assert.Equal(ExitCodes.Failure, labelCode);
        Assert.Contains("error: --add", labelBad, StringComparison.Ordinal);

        var (_, token2Out, _) = await SluiceProcess.RunAsync(Db("machines", "join-token", "create"));
        var tokenId = token2Out.Split(' ')[3];
        Assert.Equal(ExitCodes.Success, (await SluiceProcess.RunAsync(Db("machines", "join-token", "revoke", tokenId))).ExitCode);

        await using (var db = database.CreateContext())
        {
            var audited = await db.AuditEntries.Where(e => e.Actor == "cli").OrderBy(e => e.Seq).Select(e => e.Action + "/" + e.Outcome).ToListAsync();
            Assert.Equal(
                ["machine.join_token_create/success", "machine.cordon/success", "machine.uncordon/success", "machine.drain/success", "machine.labels_update/success",
                 "machine.credential_revoke/success", "machine.decommission/success", "machine.cordon/refused", "machine.join_token_create/success", "machine.join_token_revoke/success"],
                audited);
        }
    }
}
