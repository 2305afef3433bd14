using System.Text.Json;
using Sluice.Crypto;

namespace Sluice.Deployments;

/// <summary>
/// A deployment's secrets (environment variables for its engine, a hub token): one JSON object of names to values,
/// sealed with <see cref="SecretBox"/> bound to the deployment's id, so a sealed value cannot be moved to another row.
/// The scheduler opens them to put in each replica's <see cref="Compute.Protocol.TaskSpec.Secrets"/>.
/// </summary>
public static class DeploymentSecrets
{
    public const int MaxCount = 32;
    public const int MaxValueLength = 8192;

    public static string Binding(Guid deploymentId) => $"deployment:{deploymentId}";

    /// <summary>The sealed form, or null for no secrets.</summary>
    public static string? Seal(SecretBox box, Guid deploymentId, IReadOnlyDictionary<string, string>? secrets) =>
        secrets is null || secrets.Count == 0
            ? null
            : box.Seal(JsonSerializer.Serialize(new Dictionary<string, string>(secrets, StringComparer.Ordinal), DeploymentJson.Default.DictionaryStringString), Binding(deploymentId));

    /// <summary>The deployment's secrets in memory (empty when it has none).</summary>
    public static IReadOnlyDictionary<string, string> Open(SecretBox box, Deployment deployment) =>
        deployment.SecretsSealed is null
            ? new Dictionary<string, string>(StringComparer.Ordinal)
            : new Dictionary<string, string>(
                JsonSerializer.Deserialize(box.Open(deployment.SecretsSealed, Binding(deployment.Id)), DeploymentJson.Default.DictionaryStringString) ?? [],
                StringComparer.Ordinal);
}
