using Microsoft.EntityFrameworkCore;
using Sluice.Deployments;
using Sluice.Storage;

namespace Sluice.WebConsole.Pages.Deployments;

/// <summary>Small reads the deployments pages share.</summary>
internal static class ConsoleDeployments
{
    /// <summary>How many replicas of each deployment are ready to serve.</summary>
    public static async Task<IReadOnlyDictionary<Guid, int>> ReadyReplicasAsync(SluiceDbContext db, IReadOnlyCollection<Guid> ids, CancellationToken cancellationToken)
    {
        if (ids.Count == 0)
        {
            return new Dictionary<Guid, int>();
        }

        var list = ids.ToList();
        var ready = await db.DeploymentReplicas.AsNoTracking()
            .Where(r => list.Contains(r.DeploymentId) && r.State == ReplicaStates.Ready)
            .Select(r => r.DeploymentId)
            .ToListAsync(cancellationToken);
        return ready.GroupBy(id => id).ToDictionary(g => g.Key, g => g.Count());
    }

    /// <summary>The GPU types the organization may ask for: its own machines' and the platform pool's (for the form's suggestions).</summary>
    public static async Task<IReadOnlyList<string>> GpuTypesAsync(SluiceDbContext db, Guid organizationId, CancellationToken cancellationToken)
    {
        var inventories = await db.Machines.AsNoTracking()
            .Where(m => (m.OrganizationId == organizationId || m.OrganizationId == null) && m.State != Compute.Protocol.MachineStates.Decommissioned)
            .Select(m => m.Inventory)
            .ToListAsync(cancellationToken);
        return [.. inventories
            .SelectMany(json => System.Text.Json.JsonSerializer.Deserialize(json, Compute.Protocol.ComputeJson.Default.MachineInventory)?.Gpus ?? [])
            .Select(g => g.Name)
            .Distinct(StringComparer.Ordinal)
            .Order(StringComparer.Ordinal)];
    }

    /// <summary>
    /// Puts a service's field errors under the form's own field names: those in <paramref name="renamed"/> (API name →
    /// property) beside their field, those no field shows (<c>organizationId</c>, other <c>launch.*</c>) above the form.
    /// </summary>
    public static void MoveErrors(Microsoft.AspNetCore.Mvc.ModelBinding.ModelStateDictionary state, IReadOnlyDictionary<string, string> renamed, IReadOnlyCollection<string> fields)
    {
        var shown = new HashSet<string>(fields, StringComparer.OrdinalIgnoreCase);
        foreach (var key in state.Keys.ToList())
        {
            if (key.Length == 0 || shown.Contains(key))
            {
                continue;
            }

            var messages = state[key]!.Errors.Select(e => e.ErrorMessage).ToList();
            if (messages.Count == 0)
            {
                continue;
            }

            state.Remove(key);
            foreach (var message in messages)
            {
                if (renamed.TryGetValue(key, out var field))
                {
                    state.AddModelError(field, message);
                }
                else
                {
                    state.AddModelError(string.Empty, $"{key}: {message}");
                }
            }
        }
    }
}
