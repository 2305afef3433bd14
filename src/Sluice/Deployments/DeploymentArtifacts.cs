using Sluice.Compute.Protocol;

namespace Sluice.Deployments;

/// <summary>Where a deployment's artifact can be found: the API checks one exists before creating, the scheduler places replicas only where it is.</summary>
public static class DeploymentArtifacts
{
    /// <summary>
    /// Whether a machine with <paramref name="inventory"/> can run <paramref name="deployment"/>'s artifact: a <c>path</c>
    /// artifact must be among the model files its agent reports; other kinds are fetched by the engine (or brought by a
    /// custom engine), so any machine can.
    /// </summary>
    public static bool MachineHas(MachineInventory inventory, Deployment deployment)
    {
        if (deployment.ArtifactKind != ArtifactKinds.Path)
        {
            return true;
        }

        foreach (var model in inventory.Models ?? [])
        {
            if (string.Equals(model.Path, deployment.Artifact, StringComparison.Ordinal))
            {
                return true;
            }
        }

        return false;
    }
}
