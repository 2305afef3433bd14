using System.Text.RegularExpressions;
using Sluice.Compute.Protocol;
using Sluice.Hosting;

namespace Sluice.Compute;

/// <summary>
/// Checks what an agent sends. Each failure names the field by its JSON path (snake_case) and the rule, never the value,
/// so a refusal can be shown to the agent's operator and audited without quoting anything the agent sent.
/// </summary>
internal static partial class ProtocolValidation
{
    public const int MaxGpus = 64;
    public const int MaxLabels = 32;
    public const int MaxTasks = 256;
    public const int MaxModels = 256;
    public const int MaxModelPath = 1000;
    private const long MaxMemoryBytes = 1L << 50; // 1 PiB
    private const long MaxDiskBytes = 1L << 60;
    private const long MaxGpuMemoryMib = 1L << 24; // 16 TiB

    public static void Join(JoinRequest request, FieldErrors errors, bool allowLoopbackServing = false)
    {
        Text(errors, "hostname", request.Hostname, 253);
        Text(errors, "agent_version", request.AgentVersion, 64);
        ServingUrl(errors, request.ServingUrl, allowLoopbackServing);
        if (request.CertificateSha256 is null || !Sha256Hex().IsMatch(request.CertificateSha256))
        {
            errors.Add("certificate_sha256", "must be the lower-case hex SHA-256 (64 characters) of the serving certificate");
        }

        Labels(errors, "labels", request.Labels);
        Inventory(errors, "inventory", request.Inventory);
    }

    public static void Labels(FieldErrors errors, string field, IReadOnlyDictionary<string, string>? labels)
    {
        if (labels is null)
        {
            return;
        }

        if (labels.Count > MaxLabels)
        {
            errors.Add(field, $"at most {MaxLabels} labels");
        }

        foreach (var (key, value) in labels)
        {
            if (!LabelKey().IsMatch(key))
            {
                errors.Add(field, "a label key must be 1-63 characters of a-z, 0-9, '.', '_', '/', '-', starting with a letter or digit");
                break;
            }

            if (value is null || value.Length > 255 || value.Any(char.IsControl))
            {
                errors.Add($"{field}.{key}", "a label value must be at most 255 characters without control characters");
            }
        }
    }

    public static void Inventory(FieldErrors errors, string field, MachineInventory? inventory)
    {
        if (inventory is null)
        {
            errors.Add(field, "is required");
            return;
        }

        if (inventory.CpuCores is < 1 or > 4096)
        {
            errors.Add($"{field}.cpu_cores", "must be between 1 and 4096");
        }

        if (inventory.MemoryBytes is < 1 or > MaxMemoryBytes)
        {
            errors.Add($"{field}.memory_bytes", "must be positive and at most 1 PiB");
        }

        if (inventory.DiskBytes is < 0 or > MaxDiskBytes)
        {
            errors.Add($"{field}.disk_bytes", "must be between 0 and 1 EiB");
        }

        OptionalText(errors, $"{field}.driver_version", inventory.DriverVersion, 64);
        OptionalText(errors, $"{field}.cuda_version", inventory.CudaVersion, 64);
        OptionalText(errors, $"{field}.operating_system", inventory.OperatingSystem, 200);
        var gpus = inventory.Gpus ?? [];
        if (gpus.Count > MaxGpus)
        {
            errors.Add($"{field}.gpus", $"at most {MaxGpus} GPUs");
            return;
        }

        for (var i = 0; i < gpus.Count; i++)
        {
            var gpu = gpus[i];
            var at = $"{field}.gpus[{i}]";
            if (gpu is null)
            {
                errors.Add(at, "must be an object");
                continue;
            }

            if (gpu.Index is < 0 or >= MaxGpus)
            {
                errors.Add($"{at}.index", $"must be between 0 and {MaxGpus - 1}");
            }

            Text(errors, $"{at}.uuid", gpu.Uuid, 100);
            Text(errors, $"{at}.name", gpu.Name, 200);
            if (gpu.MemoryMib is < 0 or > MaxGpuMemoryMib)
            {
                errors.Add($"{at}.memory_mib", "must be between 0 and 16 TiB");
            }
        }

        Models(errors, $"{field}.models", inventory.Models);

        if (gpus.Where(g => g is not null).GroupBy(g => g.Index).Any(g => g.Count() > 1))
        {
            errors.Add($"{field}.gpus", "GPU indices must be unique");
        }

        if (gpus.Where(g => g?.Uuid is not null).GroupBy(g => g.Uuid, StringComparer.Ordinal).Any(g => g.Count() > 1))
        {
            errors.Add($"{field}.gpus", "GPU uuids must be unique");
        }
    }

    /// <summary>The model files an agent offers: at most <see cref="MaxModels"/>, absolute paths without control characters, sizes not negative.</summary>
    public static void Models(FieldErrors errors, string field, IReadOnlyList<ModelFile>? models)
    {
        if (models is null)
        {
            return;
        }

        if (models.Count > MaxModels)
        {
            errors.Add(field, $"at most {MaxModels} model files");
            return;
        }

        for (var i = 0; i < models.Count; i++)
        {
            var model = models[i];
            if (model?.Path is not { Length: > 1 and <= MaxModelPath } path || !path.StartsWith('/') || path.Any(char.IsControl)
                || path.Split('/').Any(segment => segment is "." or ".."))
            {
                errors.Add($"{field}[{i}].path", $"must be an absolute path of at most {MaxModelPath} characters without control characters or '.' and '..' segments");
                continue;
            }

            if (model.Bytes is < 0 or > MaxDiskBytes)
            {
                errors.Add($"{field}[{i}].bytes", "must be between 0 and 1 EiB");
            }
        }
    }

    /// <summary>The heartbeat's own fields and telemetry, against the inventory in force (the one sent, else the stored one).</summary>
    public static void Heartbeat(HeartbeatRequest request, MachineInventory inventory, DateTimeOffset now, FieldErrors errors)
    {
        if (request.Sequence < 1)
        {
            errors.Add("sequence", "must be at least 1");
        }

        Text(errors, "agent_version", request.AgentVersion, 64);
        var t = request.Telemetry;
        if (t is null)
        {
            errors.Add("telemetry", "is required");
            return;
        }

        if (t.At < now.AddDays(-1) || t.At > now.AddDays(1))
        {
            errors.Add("telemetry.at", "must be within a day of the server's clock");
        }

        Percent(errors, "telemetry.cpu_percent", t.CpuPercent);
        if (!double.IsFinite(t.Load1) || t.Load1 < 0 || t.Load1 > 1_000_000)
        {
            errors.Add("telemetry.load1", "must be a finite number between 0 and 1000000");
        }

        UsedOfTotal(errors, "telemetry.memory_used_bytes", t.MemoryUsedBytes, "telemetry.memory_total_bytes", t.MemoryTotalBytes, MaxMemoryBytes);
        UsedOfTotal(errors, "telemetry.disk_used_bytes", t.DiskUsedBytes, "telemetry.disk_total_bytes", t.DiskTotalBytes, MaxDiskBytes);
        var samples = t.Gpus ?? [];
        var inventoryGpus = inventory.Gpus ?? [];
        if (samples.Count > MaxGpus)
        {
            errors.Add("telemetry.gpus", $"at most {MaxGpus} GPUs");
            return;
        }

        var seen = new HashSet<int>();
        for (var i = 0; i < samples.Count; i++)
        {
            var gpu = samples[i];
            var at = $"telemetry.gpus[{i}]";
            if (gpu is null)
            {
                errors.Add(at, "must be an object");
                continue;
            }

            var known = inventoryGpus.FirstOrDefault(g => g.Index == gpu.Index);
            if (known is null || !string.Equals(known.Uuid, gpu.Uuid, StringComparison.Ordinal))
            {
                errors.Add($"{at}.uuid", "names a GPU (index and uuid) that is not in the machine's inventory; send the inventory when the hardware changes");
            }
            else if (!seen.Add(gpu.Index))
            {
                errors.Add($"{at}.index", "the same GPU is sampled twice");
            }

            UsedOfTotal(errors, $"{at}.memory_used_mib", gpu.MemoryUsedMib, $"{at}.memory_total_mib", gpu.MemoryTotalMib, MaxGpuMemoryMib);
            if (gpu.UtilizationPercent is { } utilization)
            {
                Percent(errors, $"{at}.utilization_percent", utilization);
            }

            if (gpu.TemperatureC is { } temperature && (!double.IsFinite(temperature) || temperature < -40 || temperature > 150))
            {
                errors.Add($"{at}.temperature_c", "must be between -40 and 150 °C");
            }

            if (gpu.PowerDrawW is { } power && (!double.IsFinite(power) || power < 0 || power > 5000))
            {
                errors.Add($"{at}.power_draw_w", "must be between 0 and 5000 W");
            }

            if (gpu.XidErrors is < 0)
            {
                errors.Add($"{at}.xid_errors", "must not be negative");
            }

            if (gpu.EccErrors is < 0)
            {
                errors.Add($"{at}.ecc_errors", "must not be negative");
            }
        }

        foreach (var missing in inventoryGpus.Where(g => samples.All(s => s is null || s.Index != g.Index)))
        {
            errors.Add("telemetry.gpus", $"GPU {missing.Index} of the inventory is missing from the telemetry; report every GPU (unknown figures as null)");
        }
    }

    /// <summary>Each reported task: known on this machine, once, in a state and reason the protocol defines.</summary>
    public static void Tasks(IReadOnlyList<TaskReport>? tasks, IReadOnlySet<Guid> known, FieldErrors errors)
    {
        tasks ??= [];
        if (tasks.Count > MaxTasks)
        {
            errors.Add("tasks", $"at most {MaxTasks} tasks");
            return;
        }

        var seen = new HashSet<Guid>();
        for (var i = 0; i < tasks.Count; i++)
        {
            var task = tasks[i];
            var at = $"tasks[{i}]";
            if (task is null)
            {
                errors.Add(at, "must be an object");
                continue;
            }

            if (!Guid.TryParse(task.TaskId, out var id) || !known.Contains(id))
            {
                errors.Add($"{at}.task_id", "is not a task of this machine; a machine reports only its own tasks");
                continue;
            }

            if (!seen.Add(id))
            {
                errors.Add($"{at}.task_id", "is reported twice");
            }

            if (task.State is not (TaskStates.Pending or TaskStates.Preparing or TaskStates.Starting or TaskStates.Ready or TaskStates.Terminating or TaskStates.Terminated))
            {
                errors.Add($"{at}.state", "must be pending, preparing, starting, ready, terminating or terminated");
            }

            if (task.Reason is not (null or TaskReasons.Completed or TaskReasons.Failed or TaskReasons.HealthCheckFailed or TaskReasons.MachineLost or TaskReasons.Stopped))
            {
                errors.Add($"{at}.reason", "must be completed, failed, health_check_failed, machine_lost or stopped");
            }

            if (task.Generation < 1)
            {
                errors.Add($"{at}.generation", "must be at least 1");
            }

            if (task.Restarts < 0 || task.InFlight < 0 || task.QueueDepth is < 0)
            {
                errors.Add(at, "restarts, in_flight and queue_depth must not be negative");
            }
        }
    }

    private static void Percent(FieldErrors errors, string field, double value)
    {
        if (!double.IsFinite(value) || value < 0 || value > 100)
        {
            errors.Add(field, "must be a number between 0 and 100");
        }
    }

    private static void UsedOfTotal(FieldErrors errors, string usedField, long used, string totalField, long total, long max)
    {
        if (total < 0 || total > max)
        {
            errors.Add(totalField, "must be between 0 and the largest plausible size");
        }

        if (used < 0 || (total > 0 && used > total))
        {
            errors.Add(usedField, "must be between 0 and the total");
        }
    }

    private static void ServingUrl(FieldErrors errors, string? value, bool allowLoopback)
    {
        if (value is null || value.Length > 500 || !Uri.TryCreate(value, UriKind.Absolute, out var uri))
        {
            errors.Add("serving_url", "must be an absolute https URL of at most 500 characters");
            return;
        }

        if (uri.Scheme != Uri.UriSchemeHttps)
        {
            errors.Add("serving_url", "must use https: the gateway reaches the agent over TLS only, pinned to its certificate");
        }
        else if (uri.Host.Length == 0 || uri.UserInfo.Length > 0 || uri.Query.Length > 0 || uri.Fragment.Length > 0 || uri.AbsolutePath != "/")
        {
            errors.Add("serving_url", "must be https://host[:port] with no user, path, query or fragment");
        }
        else if (Serving.ServingAddressPolicy.Refusal(uri, allowLoopback) is { } refusal)
        {
            errors.Add("serving_url", $"{refusal}; advertise an address the gateway reaches the machine at");
        }
    }

    private static void Text(FieldErrors errors, string field, string? value, int max)
    {
        if (string.IsNullOrWhiteSpace(value) || value.Length > max || value.Any(char.IsControl))
        {
            errors.Add(field, $"is required: 1 to {max} characters without control characters");
        }
    }

    private static void OptionalText(FieldErrors errors, string field, string? value, int max)
    {
        if (value is not null && (value.Length > max || value.Any(char.IsControl)))
        {
            errors.Add(field, $"must be at most {max} characters without control characters");
        }
    }

    [GeneratedRegex("^[0-9a-f]{64}$")]
    private static partial Regex Sha256Hex();

    [GeneratedRegex("^[a-z0-9][a-z0-9._/-]{0,62}$")]
    private static partial Regex LabelKey();
}
