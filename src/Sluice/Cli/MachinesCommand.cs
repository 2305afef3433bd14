using System.CommandLine;
using Sluice.Compute;
using Sluice.Hosting;

namespace Sluice.Cli;

/// <summary>
/// <c>sluice machines …</c>: the compute plane's machines and join tokens, for operators working on the server (as an
/// operator: every machine, the platform pool and every organization's fleet). Each change is audited with actor <c>cli</c>.
/// </summary>
internal static class MachinesCommand
{
    public static Command Create()
    {
        var command = new Command("machines", "Machines of the compute plane and their join tokens, directly against the database.");
        command.Subcommands.Add(ListCommand());
        command.Subcommands.Add(ShowCommand());
        command.Subcommands.Add(StateCommand(MachineAdmin.Cordon, "Stop placing new tasks on a machine."));
        command.Subcommands.Add(StateCommand(MachineAdmin.Uncordon, "Let a cordoned or draining machine take new tasks again."));
        command.Subcommands.Add(StateCommand(MachineAdmin.Drain, "Stop placing new tasks and let the scheduler move work away."));
        command.Subcommands.Add(Single("decommission", "Retire a machine for good: its credential is revoked and its tasks stopped.",
            (admin, id, ct) => admin.DecommissionAsync(ComputeCaller.Cli, id, ct)));
        command.Subcommands.Add(Single("revoke", "Revoke a machine's credential: its next heartbeat is refused.",
            (admin, id, ct) => admin.RevokeCredentialAsync(ComputeCaller.Cli, id, ct)));
        command.Subcommands.Add(LabelCommand());
        var tokens = new Command("join-token", "One-time tokens that let a machine join with 'sluice agent join'.");
        tokens.Subcommands.Add(CreateTokenCommand());
        tokens.Subcommands.Add(ListTokensCommand());
        tokens.Subcommands.Add(RevokeTokenCommand());
        command.Subcommands.Add(tokens);
        return command;
    }

    private static Argument<Guid> MachineArgument() => new("machine-id") { Description = "The machine's id." };

    private static Option<Guid?> OrgOption(string description) => new("--org") { Description = description };

    private static Command ListCommand()
    {
        var org = OrgOption("Only this organization's machines.");
        var command = new Command("list", "List machines with their state and liveness.") { org };
        command.RunsOnHost(async (parse, services, ct) =>
        {
            var machines = await services.GetRequiredService<MachineAdmin>().ListAsync(ComputeCaller.Cli, parse.GetValue(org), ct);
            await Console.Out.WriteLineAsync($"{"ID",-36}  {"STATE",-14}  {"LIVENESS",-9}  {"GPUS",4}  {"OWNER",-36}  HOSTNAME");
            foreach (var m in machines)
            {
                await Console.Out.WriteLineAsync(
                    $"{m.Id,-36}  {m.State,-14}  {m.Liveness,-9}  {m.Inventory.Gpus.Count,4}  {m.OrganizationId?.ToString() ?? "platform",-36}  {m.Hostname}");
            }

            return ExitCodes.Success;
        });
        return command;
    }

    private static Command ShowCommand()
    {
        var id = MachineArgument();
        var command = new Command("show", "Show one machine: inventory, labels, state, liveness and recent events.") { id };
        command.RunsOnHost(async (parse, services, ct) =>
        {
            var admin = services.GetRequiredService<MachineAdmin>();
            var m = await admin.GetAsync(ComputeCaller.Cli, parse.GetValue(id), ct);
            await Print(m);
            await Console.Out.WriteLineAsync($"agent:       {m.AgentVersion}");
            await Console.Out.WriteLineAsync($"serving:     {m.ServingUrl} (certificate sha256 {m.CertificateSha256})");
            await Console.Out.WriteLineAsync($"hardware:    {m.Inventory.CpuCores} cores, {m.Inventory.MemoryBytes >> 30} GiB RAM, {m.Inventory.DiskBytes >> 30} GiB disk, driver {m.Inventory.DriverVersion ?? "-"}, CUDA {m.Inventory.CudaVersion ?? "-"}");
            foreach (var gpu in m.Inventory.Gpus)
            {
                await Console.Out.WriteLineAsync($"gpu {gpu.Index}:       {gpu.Name} ({gpu.MemoryMib} MiB) {gpu.Uuid}");
            }

            foreach (var model in m.Inventory.Models ?? [])
            {
                await Console.Out.WriteLineAsync($"model:       {model.Path} ({model.Bytes} bytes)");
            }

            await Console.Out.WriteLineAsync($"labels:      {string.Join(", ", m.Labels.Select(l => $"{l.Key}={l.Value}"))}");
            await Console.Out.WriteLineAsync($"joined:      {m.JoinedAt.UtcDateTime:yyyy-MM-dd HH:mm:ss}Z, last heartbeat {m.LastHeartbeatAt?.UtcDateTime.ToString("yyyy-MM-dd HH:mm:ss", System.Globalization.CultureInfo.InvariantCulture) ?? "never"}");
            foreach (var e in await admin.EventsAsync(ComputeCaller.Cli, m.Id, 20, ct))
            {
                await Console.Out.WriteLineAsync($"event:       {e.At.UtcDateTime:yyyy-MM-dd HH:mm:ss}Z {e.Kind} {e.Detail}");
            }

            return ExitCodes.Success;
        });
        return command;
    }

    private static Command StateCommand(string change, string description) =>
        Single(change, description, (admin, id, ct) => admin.ChangeStateAsync(ComputeCaller.Cli, id, change, ct));

    private static Command Single(string name, string description, Func<MachineAdmin, Guid, CancellationToken, Task<MachineView>> action)
    {
        var id = MachineArgument();
        var command = new Command(name, description) { id };
        command.RunsOnHost(async (parse, services, ct) =>
        {
            await Print(await action(services.GetRequiredService<MachineAdmin>(), parse.GetValue(id), ct));
            return ExitCodes.Success;
        });
        return command;
    }

    private static Command LabelCommand()
    {
        var id = MachineArgument();
        var set = new Option<string[]>("--add") { Description = "Repeatable: key=value to set (add or replace)." };
        var remove = new Option<string[]>("--remove") { Description = "Repeatable: a label key to remove." };
        var command = new Command("label", "Set or remove a machine's labels.") { id, set, remove };
        command.RunsOnHost(async (parse, services, ct) =>
        {
            var changes = new Dictionary<string, string?>(StringComparer.Ordinal);
            foreach (var pair in parse.GetValue(set) ?? [])
            {
                var equals = pair.IndexOf('=', StringComparison.Ordinal);
                if (equals <= 0)
                {
                    throw ApiProblem.Invalid("--add", "must be key=value");
                }

                changes[pair[..equals]] = pair[(equals + 1)..];
            }

            foreach (var key in parse.GetValue(remove) ?? [])
            {
                changes[key] = null;
            }

            var m = await services.GetRequiredService<MachineAdmin>().UpdateLabelsAsync(ComputeCaller.Cli, parse.GetValue(id), new UpdateLabelsRequest(changes), ct);
            await Console.Out.WriteLineAsync($"{m.Id} labels: {string.Join(", ", m.Labels.Select(l => $"{l.Key}={l.Value}"))}");
            return ExitCodes.Success;
        });
        return command;
    }

    private static Command CreateTokenCommand()
    {
        var org = OrgOption("The organization whose private fleet the machine joins (default: the platform pool).");
        var ttl = new Option<int?>("--ttl-seconds") { Description = "Valid for this long (default and maximum: Compute:JoinTokenTtl)." };
        var description = new Option<string?>("--description") { Description = "A note to recognise the token by." };
        var command = new Command("create", "Create a one-time join token; it is printed once, on the last line.") { org, ttl, description };
        command.RunsOnHost(async (parse, services, ct) =>
        {
            var created = await services.GetRequiredService<MachineAdmin>().CreateJoinTokenAsync(
                ComputeCaller.Cli, new CreateJoinTokenRequest(parse.GetValue(org), parse.GetValue(ttl), parse.GetValue(description)), ct);
            await Console.Out.WriteLineAsync($"Created join token {created.Details.Id} for {created.Details.OrganizationId?.ToString() ?? "the platform pool"}, valid until {created.Details.ExpiresAt.UtcDateTime:yyyy-MM-dd HH:mm:ss}Z.");
            await Console.Out.WriteLineAsync("Run on the machine: sluice agent join --server URL --token TOKEN. The token is shown only now:");
            await Console.Out.WriteLineAsync(created.Token);
            return ExitCodes.Success;
        });
        return command;
    }

    private static Command ListTokensCommand()
    {
        var org = OrgOption("Only this organization's tokens.");
        var command = new Command("list", "List join tokens (metadata only: a token is never shown again).") { org };
        command.RunsOnHost(async (parse, services, ct) =>
        {
            var tokens = await services.GetRequiredService<MachineAdmin>().JoinTokensAsync(ComputeCaller.Cli, parse.GetValue(org), ct);
            await Console.Out.WriteLineAsync($"{"ID",-36}  {"STATUS",-8}  {"EXPIRES",-20}  {"OWNER",-36}  MACHINE");
            foreach (var t in tokens)
            {
                await Console.Out.WriteLineAsync($"{t.Id,-36}  {t.Status,-8}  {t.ExpiresAt.UtcDateTime,-20:yyyy-MM-dd HH:mm:ss}  {t.OrganizationId?.ToString() ?? "platform",-36}  {t.MachineId?.ToString() ?? "-"}");
            }

            return ExitCodes.Success;
        });
        return command;
    }

    private static Command RevokeTokenCommand()
    {
        var id = new Argument<Guid>("token-id") { Description = "The join token's id (not the token)." };
        var command = new Command("revoke", "Revoke an unused join token.") { id };
        command.RunsOnHost(async (parse, services, ct) =>
        {
            var token = await services.GetRequiredService<MachineAdmin>().RevokeJoinTokenAsync(ComputeCaller.Cli, parse.GetValue(id), ct);
            await Console.Out.WriteLineAsync($"Revoked join token {token.Id}.");
            return ExitCodes.Success;
        });
        return command;
    }

    private static Task Print(MachineView m) =>
        Console.Out.WriteLineAsync($"{m.Id}  {m.State}  {m.Liveness}  {m.OrganizationId?.ToString() ?? "platform"}  {m.Hostname}{(m.CredentialRevoked ? "  (credential revoked)" : "")}");
}
