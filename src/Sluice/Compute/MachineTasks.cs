using System.Text.Json;
using Microsoft.EntityFrameworkCore;
using Sluice.Audit;
using Sluice.Compute.Protocol;
using Sluice.Crypto;
using Sluice.Hosting;
using Sluice.Storage;

namespace Sluice.Compute;

/// <summary>A process to run: the command and its arguments, environment and working directory.</summary>
public sealed record TaskProcessInput(string? Command, List<string>? Args, Dictionary<string, string>? Environment, string? WorkingDirectory);

/// <summary>A container to run through Docker: the image, its command, environment and the port it serves on.</summary>
public sealed record TaskContainerInput(string? Image, List<string>? Command, Dictionary<string, string>? Environment, int? ContainerPort);

/// <summary>
/// <c>POST /api/v1/machines/{id}/tasks</c>. <c>gpus</c> asks for a number of free GPUs (the server picks them);
/// <c>gpuIndices</c> names them. <c>organizationId</c> says whose work it is (operators only; an org admin's task is its
/// organization's).
/// </summary>
public sealed record CreateTaskRequest(
    string? Kind, string? Runtime, TaskProcessInput? Process, TaskContainerInput? Container, int? Gpus, List<int>? GpuIndices,
    ProbeSpec? Probe, Dictionary<string, string>? Secrets, Guid? OrganizationId);

/// <summary>A task as listings show it: metadata and state, never the spec (command, environment, image, secrets).</summary>
public sealed record MachineTaskView(
    Guid Id, Guid MachineId, Guid? OrganizationId, string Kind, string Runtime, IReadOnlyList<int> GpuIndices, int Generation, string Desired,
    string State, string? Reason, int ReportedGeneration, int Restarts, int? ExitCode, DateTimeOffset? StartedAt, DateTimeOffset? ReadyAt,
    DateTimeOffset? ReportedAt, DateTimeOffset CreatedAt, DateTimeOffset UpdatedAt);

/// <summary>A placement's outcome: the task written, or the field and sentence of its refusal (nothing written).</summary>
internal sealed record TaskPlacement(MachineTask? Task, string? RefusedField, string? Refusal)
{
    public static TaskPlacement Refused(string field, string refusal) => new(null, field, refusal);
}

/// <summary>
/// Places tasks on machines and stops them: the one service the task API (and later the scheduler and deployments)
/// calls. Checks the spec and the machine (state, GPUs, owner) before writing; a refusal writes nothing but its audit
/// entry. The spec is sealed under the data key, bound to the task and its machine.
/// </summary>
public sealed class MachineTasks(
    SluiceDbContext db, AuditLog audit, AuditActor actor, SecretBox secrets, MachineAdmin machines, TimeProvider time, Serving.MachineNudger? nudger = null)
{
    public const int MaxSpecBytes = 64 * 1024;

    public async Task<MachineTaskView> CreateAsync(ComputeCaller caller, Guid machineId, CreateTaskRequest request, CancellationToken cancellationToken)
    {
        Machine machine;
        try
        {
            machine = await machines.FindAsync(caller, machineId, cancellationToken);
        }
        catch (ApiProblemException)
        {
            // Work offered to a machine the caller may not use (or that does not exist) is a refusal worth recording.
            await audit.RefuseAsync("machine.task_create", $"machine:{machineId}", null, cancellationToken);
            throw;
        }

        var organizationId = request.OrganizationId;
        if (!caller.IsOperator)
        {
            // An org admin's task is its organization's work, on its organization's machine (FindAsync checked the role).
            if (organizationId is not null && organizationId != machine.OrganizationId)
            {
                await RefuseAsync(machine, cancellationToken);
                throw ApiProblem.Forbidden("An organization admin places only its own organization's work.");
            }

            organizationId = machine.OrganizationId;
        }

        if (machine.OrganizationId is { } owner && organizationId != owner)
        {
            await RefuseAsync(machine, cancellationToken);
            throw ApiProblem.Forbidden("This machine is an organization's private machine: it runs only that organization's work.");
        }

        var errors = new FieldErrors();
        var inventory = JsonSerializer.Deserialize(machine.Inventory, ComputeJson.Default.MachineInventory)!;
        var spec = BuildSpec(request, inventory, errors);
        if (request.Gpus is not null && request.GpuIndices is not null)
        {
            errors.Add("gpus", "give gpus (a count) or gpuIndices, not both");
        }

        var gpuCount = inventory.Gpus?.Count ?? 0;
        if (request.Gpus is { } wanted && (wanted < 0 || wanted > gpuCount))
        {
            errors.Add("gpus", $"the machine has {gpuCount} GPU(s)");
        }

        if (request.GpuIndices is { } named)
        {
            if (named.Count > gpuCount)
            {
                errors.Add("gpuIndices", $"the machine has {gpuCount} GPU(s)");
            }
            else if (named.Distinct().Count() != named.Count || named.Any(i => inventory.Gpus!.All(g => g.Index != i)))
            {
                errors.Add("gpuIndices", "must be distinct indices of the machine's GPUs");
            }
        }

        if (errors.Any)
        {
            await RefuseAsync(machine, cancellationToken);
            errors.ThrowIfAny();
        }

        var placed = await PlaceAsync(machineId, organizationId, spec, request.Gpus, request.GpuIndices, gpuType: null, alongside: null, cancellationToken);
        if (placed.Task is null)
        {
            await RefuseAsync(machine, cancellationToken);
            throw ApiProblem.Conflict(placed.RefusedField!, placed.Refusal!);
        }

        return View(placed.Task);
    }

    /// <summary>
    /// Places <paramref name="spec"/> on one machine: the one path for every placement (the task API and the deployment
    /// scheduler). Placements on a machine take turns under its row lock; the machine must be ready and open to
    /// <paramref name="organizationId"/> (the platform pool, or its own private fleet), and the GPUs must be free (of
    /// <paramref name="gpuType"/> when given) at that moment. <paramref name="alongside"/> adds rows that are written in
    /// the same transaction as the task (a deployment replica). Runs in the caller's transaction when there is one
    /// (then the caller commits); otherwise in its own. A refusal writes nothing and says why; the caller audits it if
    /// it is a caller's refusal.
    /// </summary>
    internal async Task<TaskPlacement> PlaceAsync(
        Guid machineId, Guid? organizationId, TaskSpec spec, int? gpus, IReadOnlyList<int>? gpuIndices, string? gpuType,
        Action<MachineTask>? alongside, CancellationToken cancellationToken)
    {
        var sealedSpec = JsonSerializer.Serialize(spec with { TaskId = "", GpuIndices = [] }, ComputeJson.Default.TaskSpec);
        if (System.Text.Encoding.UTF8.GetByteCount(sealedSpec) > MaxSpecBytes)
        {
            return TaskPlacement.Refused("spec", $"the task's spec must be at most {MaxSpecBytes / 1024} KiB");
        }

        var now = time.GetUtcNow();
        var ownTransaction = db.Database.CurrentTransaction is null;
        await using var transaction = ownTransaction ? await db.Database.BeginTransactionAsync(cancellationToken) : null;

        async Task<TaskPlacement> Refuse(string field, string refusal)
        {
            if (transaction is not null)
            {
                await transaction.RollbackAsync(cancellationToken);
            }

            return TaskPlacement.Refused(field, refusal);
        }

        // Placements on one machine take turns: this update takes the machine's row (PostgreSQL) or the write lock
        // (SQLite) before the GPUs in use are read, and it only succeeds while the machine takes new work from this owner.
        var open = await db.Machines
            .Where(m => m.Id == machineId && m.State == MachineStates.Ready && (m.OrganizationId == null || m.OrganizationId == organizationId))
            .ExecuteUpdateAsync(set => set.SetProperty(m => m.TaskVersion, m => m.TaskVersion + 1), cancellationToken);
        if (open != 1)
        {
            return await Refuse("machine", "is not ready (cordoned, draining or decommissioned): it takes no new tasks");
        }

        var inventoryJson = await db.Machines.AsNoTracking().Where(m => m.Id == machineId).Select(m => m.Inventory).SingleAsync(cancellationToken);
        var inventory = JsonSerializer.Deserialize(inventoryJson, ComputeJson.Default.MachineInventory)!;
        var active = await db.MachineTasks.CountAsync(t => t.MachineId == machineId && (t.Desired == TaskDesired.Running || t.State != TaskStates.Terminated), cancellationToken);
        if (active >= ProtocolValidation.MaxTasks)
        {
            // The agent reports every task it holds and a heartbeat carries at most this many.
            return await Refuse("machine", $"already holds {ProtocolValidation.MaxTasks} tasks; stop some first");
        }

        var taken = (await db.MachineTasks.AsNoTracking()
                .Where(t => t.MachineId == machineId && t.State != TaskStates.Terminated && t.GpuIndices != "")
                .Select(t => t.GpuIndices).ToListAsync(cancellationToken))
            .SelectMany(s => s.Split(',')).Select(s => int.Parse(s, System.Globalization.CultureInfo.InvariantCulture)).ToHashSet();
        List<int> assigned;
        if (gpuIndices is { } indices)
        {
            if (indices.Any(taken.Contains))
            {
                return await Refuse("gpuIndices", "a GPU named is already assigned to another task that has not terminated");
            }

            assigned = indices.Order().ToList();
        }
        else
        {
            var free = (inventory.Gpus ?? []).Where(g => gpuType is null || g.Name == gpuType).Select(g => g.Index).Where(i => !taken.Contains(i)).Order().ToList();
            var count = gpus ?? 0;
            if (free.Count < count)
            {
                return await Refuse("gpus", gpuType is null
                    ? $"only {free.Count} GPU(s) of the machine are free"
                    : $"only {free.Count} {gpuType} GPU(s) of the machine are free");
            }

            assigned = free.Take(count).ToList();
        }

        var id = Guid.CreateVersion7(now);
        var task = new MachineTask
        {
            Id = id,
            MachineId = machineId,
            OrganizationId = organizationId,
            Kind = spec.Kind,
            Runtime = spec.Runtime,
            GpuIndices = string.Join(',', assigned),
            Generation = 1,
            Desired = TaskDesired.Running,
            SpecSealed = secrets.Seal(sealedSpec, SpecBinding(id, machineId)),
            State = TaskStates.Pending,
            CreatedBy = actor.Id,
            CreatedAt = now,
            UpdatedAt = now,
        };
        db.MachineTasks.Add(task);
        audit.Record("machine.task_create", $"machine_task:{id}", organizationId);
        alongside?.Invoke(task);
        await db.SaveChangesAsync(cancellationToken);
        if (transaction is not null)
        {
            // Placed in its own transaction: the agent can fetch it now. A caller's transaction nudges after its commit.
            await transaction.CommitAsync(cancellationToken);
            nudger?.Nudge(machineId);
        }

        return new TaskPlacement(task, null, null);
    }

    public async Task<List<MachineTaskView>> ListAsync(ComputeCaller caller, Guid machineId, CancellationToken cancellationToken)
    {
        await machines.FindAsync(caller, machineId, cancellationToken);
        return (await db.MachineTasks.AsNoTracking().Where(t => t.MachineId == machineId).OrderBy(t => t.CreatedAt).ToListAsync(cancellationToken)).Select(View).ToList();
    }

    public async Task<MachineTaskView> GetAsync(ComputeCaller caller, Guid machineId, Guid taskId, CancellationToken cancellationToken)
    {
        await machines.FindAsync(caller, machineId, cancellationToken);
        return View(await db.MachineTasks.AsNoTracking().SingleOrDefaultAsync(t => t.Id == taskId && t.MachineId == machineId, cancellationToken)
            ?? throw ApiProblem.NotFound("task"));
    }

    /// <summary>Takes the task out of the machine's desired set: the agent stops it at its next heartbeat.</summary>
    public async Task<MachineTaskView> StopAsync(ComputeCaller caller, Guid machineId, Guid taskId, CancellationToken cancellationToken)
    {
        await machines.FindAsync(caller, machineId, cancellationToken);
        var task = await db.MachineTasks.SingleOrDefaultAsync(t => t.Id == taskId && t.MachineId == machineId, cancellationToken)
            ?? throw ApiProblem.NotFound("task");
        Stop(task);
        await db.SaveChangesAsync(cancellationToken);
        nudger?.Nudge(machineId);
        return View(task);
    }

    /// <summary>
    /// Takes a tracked task out of its machine's desired set, with its audit entry, for the caller to save (in its own
    /// transaction): the API's stop and the scheduler's (draining replicas) share it. No caller checks.
    /// </summary>
    internal void Stop(MachineTask task)
    {
        if (task.Desired != TaskDesired.Stopped)
        {
            task.Desired = TaskDesired.Stopped;
            task.Generation++;
            task.UpdatedAt = time.GetUtcNow();
        }

        audit.Record("machine.task_stop", $"machine_task:{task.Id}", task.OrganizationId);
    }

    public static string SpecBinding(Guid taskId, Guid machineId) => $"machine-task:{taskId}:{machineId}";

    public static MachineTaskView View(MachineTask t) => new(
        t.Id, t.MachineId, t.OrganizationId, t.Kind, t.Runtime, t.Gpus(), t.Generation, t.Desired, t.State, t.Reason, t.ReportedGeneration,
        t.Restarts, t.ExitCode, t.StartedAt, t.ReadyAt, t.ReportedAt, t.CreatedAt, t.UpdatedAt);

    private async Task RefuseAsync(Machine machine, CancellationToken cancellationToken) =>
        await audit.RefuseAsync("machine.task_create", $"machine:{machine.Id}", machine.OrganizationId, cancellationToken);

    private static TaskSpec BuildSpec(CreateTaskRequest request, MachineInventory inventory, FieldErrors errors)
    {
        if (request.Kind is not (TaskKinds.ModelServer or TaskKinds.Job))
        {
            errors.Add("kind", "must be model_server or job");
        }

        ProcessRuntimeSpec? process = null;
        ContainerRuntimeSpec? container = null;
        switch (request.Runtime)
        {
            case TaskRuntimes.Process:
                if (request.Container is not null)
                {
                    errors.Add("container", "is only for runtime container");
                }

                if (string.IsNullOrWhiteSpace(request.Process?.Command))
                {
                    errors.Add("process.command", "is required for runtime process");
                }
                else
                {
                    process = new ProcessRuntimeSpec
                    {
                        Command = request.Process.Command,
                        Args = request.Process.Args ?? [],
                        Environment = request.Process.Environment,
                        WorkingDirectory = request.Process.WorkingDirectory,
                    };
                }

                break;
            case TaskRuntimes.Container:
                if (request.Process is not null)
                {
                    errors.Add("process", "is only for runtime process");
                }

                if (!inventory.DockerAvailable)
                {
                    errors.Add("runtime", "the machine reported no Docker, so it cannot run containers");
                }

                if (string.IsNullOrWhiteSpace(request.Container?.Image))
                {
                    errors.Add("container.image", "is required for runtime container");
                }
                else if (request.Container.ContainerPort is < 1 or > 65535)
                {
                    errors.Add("container.containerPort", "must be a port between 1 and 65535");
                }
                else
                {
                    container = new ContainerRuntimeSpec
                    {
                        Image = request.Container.Image,
                        Command = request.Container.Command,
                        Environment = request.Container.Environment,
                        ContainerPort = request.Container.ContainerPort,
                    };
                }

                break;
            default:
                errors.Add("runtime", "must be process or container");
                break;
        }

        if (request.Probe is { } probe && (probe.Path is not ("/health" or "/v1/models") || probe.StartupTimeoutSeconds is < 1 or > 86_400
            || probe.IntervalSeconds is < 1 or > 3600 || probe.FailureThreshold is < 1 or > 100))
        {
            errors.Add("probe", "path must be /health or /v1/models; startupTimeoutSeconds 1-86400, intervalSeconds 1-3600, failureThreshold 1-100");
        }

        if (request.Secrets is { } secretValues && (secretValues.Count > 64 || secretValues.Keys.Any(k => k.Length is 0 or > 128 || k.Contains('=') || k.Any(char.IsControl))))
        {
            errors.Add("secrets", "at most 64 environment variables with names of 1-128 characters and no '='");
        }

        var spec = new TaskSpec
        {
            TaskId = "",
            Generation = 1,
            Kind = request.Kind ?? "",
            Runtime = request.Runtime ?? "",
            Process = process,
            Container = container,
            Probe = request.Probe,
            Secrets = request.Secrets,
        };
        if (!errors.Any && JsonSerializer.SerializeToUtf8Bytes(spec, ComputeJson.Default.TaskSpec).Length > MaxSpecBytes)
        {
            errors.Add("spec", $"the task's spec must be at most {MaxSpecBytes / 1024} KiB");
        }

        return spec;
    }
}
