using System.CommandLine;
using System.Globalization;
using Sluice.Deployments;
using Sluice.Hosting;

namespace Sluice.Cli;

/// <summary>
/// <c>sluice deployments …</c>: organizations' deployments, for operators working on the server (as an operator: every
/// organization's). The same checks as the API; each change is audited with actor <c>cli</c>. Secret values are read from
/// this command's environment (<c>--secret NAME</c> takes the variable NAME), never from its command line.
/// </summary>
internal static class DeploymentsCommand
{
    public static Command Create()
    {
        var command = new Command("deployments", "Organizations' models served on the fleet, directly against the database.");
        command.Subcommands.Add(ListCommand());
        command.Subcommands.Add(GetCommand());
        command.Subcommands.Add(CreateCommand());
        command.Subcommands.Add(UpdateCommand());
        command.Subcommands.Add(DeleteCommand());
        command.Subcommands.Add(EventsCommand());
        command.Subcommands.Add(PublishCommand());
        command.Subcommands.Add(UnpublishCommand());
        return command;
    }

    private static Argument<Guid> IdArgument() => new("deployment-id") { Description = "The deployment's id." };

    private static Command ListCommand()
    {
        var org = new Option<Guid?>("--org") { Description = "Only this organization's deployments." };
        var command = new Command("list", "List live deployments with their status and replicas wanted.") { org };
        command.RunsOnHost(async (parse, services, ct) =>
        {
            var deployments = await services.GetRequiredService<DeploymentAdmin>().ListAsync(DeploymentCaller.Cli, parse.GetValue(org), ct);
            await Console.Out.WriteLineAsync($"{"ID",-36}  {"STATUS",-14}  {"ENGINE",-18}  {"REPLICAS",-9}  {"ORGANIZATION",-36}  NAME");
            foreach (var d in deployments)
            {
                await Console.Out.WriteLineAsync($"{d.Id,-36}  {d.Status,-14}  {d.Engine,-18}  {$"{d.DesiredReplicas} ({d.MinReplicas}-{d.MaxReplicas})",-9}  {d.OrganizationId,-36}  {d.Name}{(d.Public ? "  (public)" : "")}");
            }

            return ExitCodes.Success;
        });
        return command;
    }

    private static Command GetCommand()
    {
        var id = IdArgument();
        var command = new Command("get", "Show one deployment: its spec, state, secrets' names and replicas.") { id };
        command.RunsOnHost(async (parse, services, ct) =>
        {
            await PrintAsync(await services.GetRequiredService<DeploymentAdmin>().GetAsync(DeploymentCaller.Cli, parse.GetValue(id), ct));
            return ExitCodes.Success;
        });
        return command;
    }

    /// <summary>The options create and update share: what to run, on what, how many.</summary>
    private sealed class SpecOptions
    {
        public Option<string?> Engine { get; } = new("--engine") { Description = $"One of {string.Join(", ", DeploymentEngines.All)}." };
        public Option<string?> Artifact { get; } = new("--artifact") { Description = "An absolute path on the machine (under its models directory), or an id the engine fetches (org/name, name:tag)." };
        public Option<string?> ArtifactKind { get; } = new("--artifact-kind") { Description = "path, hub, fine_tuned or none (default: from --artifact)." };
        public Option<string?> GpuType { get; } = new("--gpu-type") { Description = "The GPU model as nvidia-smi names it (\"NVIDIA L4\")." };
        public Option<int?> Gpus { get; } = new("--gpus") { Description = "GPUs per replica (0-8)." };
        public Option<int?> Min { get; } = new("--min") { Description = "Minimum replicas (0: serverless, scales to zero when idle)." };
        public Option<int?> Max { get; } = new("--max") { Description = "Maximum replicas." };
        public Option<int?> Target { get; } = new("--target-concurrency") { Description = "Requests in flight per replica the autoscaler aims for (1-1024)." };
        public Option<int?> Idle { get; } = new("--idle-timeout") { Description = "Seconds without a request before a serverless deployment scales to zero (30-86400)." };
        public Option<int?> Delay { get; } = new("--scale-down-delay") { Description = "Seconds load must stay low before a replica is removed (0-86400)." };
        public Option<string?> Description { get; } = new("--description") { Description = "A note (at most 500 characters)." };
        public Option<string[]> EngineArgs { get; } = new("--engine-arg") { Description = "Repeatable: an extra argument for the engine (--engine-arg=--max-model-len --engine-arg=8192)." };
        public Option<string?> Runtime { get; } = new("--runtime") { Description = "process or container (default: the engine's)." };
        public Option<string?> LaunchCommand { get; } = new("--command") { Description = "custom-command: the executable (serves the OpenAI API on {port})." };
        public Option<string[]> Args { get; } = new("--arg") { Description = "Repeatable: custom engines' arguments ({port} is the task's port)." };
        public Option<string?> Image { get; } = new("--image") { Description = "custom-container (or a container engine's image)." };
        public Option<int?> ContainerPort { get; } = new("--container-port") { Description = "The port the container serves on." };
        public Option<string[]> Environment { get; } = new("--env") { Description = "Repeatable: NAME=VALUE, non-secret environment for the engine (shown by get)." };
        public Option<string[]> Secrets { get; } = new("--secret") { Description = "Repeatable: NAME; the secret's value is read from this command's environment variable NAME." };

        public void AddTo(Command command)
        {
            foreach (var option in new Option[] { Engine, Artifact, ArtifactKind, GpuType, Gpus, Min, Max, Target, Idle, Delay, Description, EngineArgs, Runtime, LaunchCommand, Args, Image, ContainerPort, Environment, Secrets })
            {
                command.Options.Add(option);
            }
        }

        public bool LaunchGiven(ParseResult parse) =>
            parse.GetValue(EngineArgs) is { Length: > 0 } || parse.GetValue(Runtime) is not null || parse.GetValue(LaunchCommand) is not null
            || parse.GetValue(Args) is { Length: > 0 } || parse.GetValue(Image) is not null || parse.GetValue(ContainerPort) is not null || parse.GetValue(Environment) is { Length: > 0 };

        public DeploymentLaunchSettings Launch(ParseResult parse)
        {
            var environment = new Dictionary<string, string>(StringComparer.Ordinal);
            foreach (var pair in parse.GetValue(Environment) ?? [])
            {
                var equals = pair.IndexOf('=', StringComparison.Ordinal);
                if (equals <= 0)
                {
                    throw ApiProblem.Invalid("--env", "must be NAME=VALUE");
                }

                environment[pair[..equals]] = pair[(equals + 1)..];
            }

            return new DeploymentLaunchSettings
            {
                EngineArgs = parse.GetValue(EngineArgs) ?? [],
                Runtime = parse.GetValue(Runtime),
                Command = parse.GetValue(LaunchCommand),
                Args = parse.GetValue(Args) is { Length: > 0 } args ? args : null,
                Image = parse.GetValue(Image),
                ContainerPort = parse.GetValue(ContainerPort),
                Environment = environment.Count == 0 ? null : environment,
            };
        }

        public Dictionary<string, string>? SecretValues(ParseResult parse)
        {
            var names = parse.GetValue(Secrets) ?? [];
            if (names.Length == 0)
            {
                return null;
            }

            var values = new Dictionary<string, string>(StringComparer.Ordinal);
            foreach (var name in names)
            {
                values[name] = System.Environment.GetEnvironmentVariable(name) is { Length: > 0 } value
                    ? value
                    : throw ApiProblem.Invalid("--secret", "names an environment variable that is not set in this command's environment");
            }

            return values;
        }
    }

    private static Command CreateCommand()
    {
        var org = new Option<Guid>("--org") { Description = "The organization the deployment belongs to.", Required = true };
        var name = new Option<string>("--name") { Description = "The model id callers use (a-z, 0-9, -._/:).", Required = true };
        var spec = new SpecOptions();
        var command = new Command("create", "Create a deployment; the scheduler places its replicas.") { org, name };
        spec.AddTo(command);
        command.RunsOnHost(async (parse, services, ct) =>
        {
            var created = await services.GetRequiredService<DeploymentAdmin>().CreateAsync(DeploymentCaller.Cli, new CreateDeploymentRequest(
                parse.GetValue(org), parse.GetValue(name), parse.GetValue(spec.Description), parse.GetValue(spec.Engine), parse.GetValue(spec.ArtifactKind),
                parse.GetValue(spec.Artifact), parse.GetValue(spec.GpuType), parse.GetValue(spec.Gpus), parse.GetValue(spec.Min), parse.GetValue(spec.Max),
                parse.GetValue(spec.Target), parse.GetValue(spec.Idle), parse.GetValue(spec.Delay), spec.Launch(parse), spec.SecretValues(parse)), ct);
            await Console.Out.WriteLineAsync($"Created deployment {created.Id} ({created.Name}), generation {created.Generation}, {created.DesiredReplicas} replica(s) wanted.");
            return ExitCodes.Success;
        });
        return command;
    }

    private static Command UpdateCommand()
    {
        var id = IdArgument();
        var spec = new SpecOptions();
        var removeSecret = new Option<string[]>("--remove-secret") { Description = "Repeatable: a secret's name to remove." };
        var command = new Command("update", "Change a deployment: what a replica runs (a new generation, rolled out) or its scaling.") { id, removeSecret };
        spec.AddTo(command);
        command.RunsOnHost(async (parse, services, ct) =>
        {
            var admin = services.GetRequiredService<DeploymentAdmin>();
            var deploymentId = parse.GetValue(id);
            DeploymentLaunchSettings? launch = null;
            if (spec.LaunchGiven(parse))
            {
                // The launch settings are replaced whole over the API; here, the options given replace their part only.
                var current = (await admin.GetAsync(DeploymentCaller.Cli, deploymentId, ct)).Launch;
                var given = spec.Launch(parse);
                launch = current with
                {
                    EngineArgs = parse.GetValue(spec.EngineArgs) is { Length: > 0 } ? given.EngineArgs : current.EngineArgs,
                    Runtime = given.Runtime ?? current.Runtime,
                    Command = given.Command ?? current.Command,
                    Args = given.Args ?? current.Args,
                    Image = given.Image ?? current.Image,
                    ContainerPort = given.ContainerPort ?? current.ContainerPort,
                    Environment = given.Environment ?? current.Environment,
                };
            }

            Dictionary<string, string?>? secrets = null;
            if (spec.SecretValues(parse) is { } values || parse.GetValue(removeSecret) is { Length: > 0 })
            {
                secrets = new Dictionary<string, string?>(StringComparer.Ordinal);
                foreach (var (key, value) in spec.SecretValues(parse) ?? [])
                {
                    secrets[key] = value;
                }

                foreach (var key in parse.GetValue(removeSecret) ?? [])
                {
                    secrets[key] = null;
                }
            }

            var updated = await admin.UpdateAsync(DeploymentCaller.Cli, deploymentId, new UpdateDeploymentRequest(
                null, parse.GetValue(spec.Description), parse.GetValue(spec.Engine), parse.GetValue(spec.ArtifactKind), parse.GetValue(spec.Artifact),
                parse.GetValue(spec.GpuType), parse.GetValue(spec.Gpus), parse.GetValue(spec.Min), parse.GetValue(spec.Max), parse.GetValue(spec.Target),
                parse.GetValue(spec.Idle), parse.GetValue(spec.Delay), launch, secrets), ct);
            await Console.Out.WriteLineAsync($"Updated deployment {updated.Id} ({updated.Name}): generation {updated.Generation}, {updated.MinReplicas}-{updated.MaxReplicas} replicas, {updated.DesiredReplicas} wanted.");
            return ExitCodes.Success;
        });
        return command;
    }

    private static Command DeleteCommand()
    {
        var id = IdArgument();
        var command = new Command("delete", "Delete a deployment: its replicas are stopped and its name is free again.") { id };
        command.RunsOnHost(async (parse, services, ct) =>
        {
            await services.GetRequiredService<DeploymentAdmin>().DeleteAsync(DeploymentCaller.Cli, parse.GetValue(id), ct);
            await Console.Out.WriteLineAsync($"Deleted deployment {parse.GetValue(id)}.");
            return ExitCodes.Success;
        });
        return command;
    }

    private static Command EventsCommand()
    {
        var id = IdArgument();
        var limit = new Option<int?>("--limit") { Description = "At most this many, newest first (default 100)." };
        var command = new Command("events", "What happened to a deployment, newest first.") { id, limit };
        command.RunsOnHost(async (parse, services, ct) =>
        {
            foreach (var e in await services.GetRequiredService<DeploymentAdmin>().EventsAsync(DeploymentCaller.Cli, parse.GetValue(id), parse.GetValue(limit), ct))
            {
                await Console.Out.WriteLineAsync($"{e.At.UtcDateTime:yyyy-MM-dd HH:mm:ss}Z  {e.Kind,-18}  {e.Detail}");
            }

            return ExitCodes.Success;
        });
        return command;
    }

    private static Command PublishCommand()
    {
        var id = IdArgument();
        var input = new Option<decimal>("--input-per-million") { Description = "Price of a million input tokens, in micro-units.", Required = true };
        var output = new Option<decimal>("--output-per-million") { Description = "Price of a million output tokens, in micro-units.", Required = true };
        var command = new Command("publish", "Publish a deployment to the public catalog at per-token prices.") { id, input, output };
        command.RunsOnHost(async (parse, services, ct) =>
        {
            var d = await services.GetRequiredService<DeploymentAdmin>().PublishAsync(DeploymentCaller.Cli, parse.GetValue(id),
                new PublishDeploymentRequest(parse.GetValue(input), parse.GetValue(output)), ct);
            await Console.Out.WriteLineAsync($"Published {d.Name} ({d.Id}) at {d.InputPerMillionMicros} / {d.OutputPerMillionMicros} micro-units per million input / output tokens.");
            return ExitCodes.Success;
        });
        return command;
    }

    private static Command UnpublishCommand()
    {
        var id = IdArgument();
        var command = new Command("unpublish", "Make a published deployment private to its organization again.") { id };
        command.RunsOnHost(async (parse, services, ct) =>
        {
            var d = await services.GetRequiredService<DeploymentAdmin>().UnpublishAsync(DeploymentCaller.Cli, parse.GetValue(id), ct);
            await Console.Out.WriteLineAsync($"{d.Name} ({d.Id}) is private to its organization.");
            return ExitCodes.Success;
        });
        return command;
    }

    private static async Task PrintAsync(DeploymentView d)
    {
        static string When(DateTimeOffset? at) => at?.UtcDateTime.ToString("yyyy-MM-dd HH:mm:ss'Z'", CultureInfo.InvariantCulture) ?? "-";

        await Console.Out.WriteLineAsync($"{d.Id}  {d.Name}  {d.Status}{(d.StatusReason is null ? "" : $" ({d.StatusReason})")}");
        await Console.Out.WriteLineAsync($"organization: {d.OrganizationId}{(d.Public ? $"  public at {d.InputPerMillionMicros} / {d.OutputPerMillionMicros} per million tokens" : "")}");
        await Console.Out.WriteLineAsync($"engine:       {d.Engine} ({DeploymentLaunch.Runtime(d.Engine, d.Launch)}), artifact {d.ArtifactKind} {d.Artifact ?? "-"}");
        await Console.Out.WriteLineAsync($"gpus:         {d.GpusPerReplica} x {d.GpuType ?? "any"} per replica");
        await Console.Out.WriteLineAsync($"replicas:     {d.DesiredReplicas} wanted ({d.MinReplicas}-{d.MaxReplicas}), target {d.TargetConcurrency} in flight, idle {d.IdleTimeoutSeconds}s, scale-down delay {d.ScaleDownDelaySeconds}s");
        await Console.Out.WriteLineAsync($"generation:   {d.Generation}");
        await Console.Out.WriteLineAsync($"engine args:  {string.Join(' ', d.Launch.EngineArgs ?? [])}");
        await Console.Out.WriteLineAsync($"secrets:      {(d.SecretNames.Count == 0 ? "-" : string.Join(", ", d.SecretNames))}");
        foreach (var r in d.Replicas ?? [])
        {
            await Console.Out.WriteLineAsync($"replica:      {r.Id}  {r.State,-9}  generation {r.Generation}  machine {r.MachineId}  ready {When(r.ReadyAt)}{(r.ColdStart ? "  (cold start)" : "")}");
        }
    }
}
